"""``python -m ravine.cli``: the same as the ``ravine`` command."""

import sys

from ravine.cli import main

sys.exit(main())
