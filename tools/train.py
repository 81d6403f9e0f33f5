"""Train with MMEngine's Runner: ``python tools/train.py CONFIG [options]``.

Kept for OpenMMLab's conventions (``mim train up2 CONFIG`` runs this file from the installed
package's ``.mim/tools``); it is the same as ``up2 train``, whose options it takes.
"""

import sys

from up2core.cli import main

if __name__ == '__main__':
    sys.exit(main(['train', *sys.argv[1:]]))
