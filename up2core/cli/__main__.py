"""``python -m up2core.cli``: the ``up2`` command (as torchrun launches it: ``-m up2core.cli``)."""

import sys

from up2core.cli import main

sys.exit(main())
