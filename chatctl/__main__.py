"""`python -m chatctl` runs chatctl's command line."""

from chatctl.cli import main

raise SystemExit(main())
