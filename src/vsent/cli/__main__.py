"""``python -m vsent.cli``: the ``vsent`` command."""

import sys

from vsent.cli import main

sys.exit(main())
