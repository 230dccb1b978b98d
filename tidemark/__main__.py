"""``python -m tidemark``: the command line."""

import sys

from tidemark.adapters.cli import main

sys.exit(main())
