"""``python -m devkit demo`` / ``python -m devkit local-stack``: see :mod:`devkit.cli`."""

import sys

from devkit.cli import main

sys.exit(main())
