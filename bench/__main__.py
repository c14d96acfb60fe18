"""`python -m bench` → bench.cli.main() (what `make bench` runs)."""

import sys

from bench.cli import main

sys.exit(main())
