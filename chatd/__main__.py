"""`python -m chatd` runs the daemon's command line."""

from chatd.cli import main

raise SystemExit(main())
