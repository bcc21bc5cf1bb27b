"""``python -m vsent`` (and ``torchrun ... -m vsent``): the ``vsent`` command line."""

import sys

from vsent.cli import main

sys.exit(main())
