"""``python -m xcol``: the xcol command line."""

import sys

from xcol.cli import main

sys.exit(main())
