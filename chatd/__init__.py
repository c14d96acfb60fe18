"""chatd: a self-hosted TLS chat daemon."""

__version__ = "0.3.0"
