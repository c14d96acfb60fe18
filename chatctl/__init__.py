"""chatctl: certificates, the terminal client and operator commands for chatd."""
