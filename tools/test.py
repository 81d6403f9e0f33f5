"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``.

Kept for OpenMMLab's conventions (``mim test up2 CONFIG --checkpoint CKPT`` runs this file); it is
the same as ``up2 test``, whose options it takes.
"""

import sys

from up2core.cli import main

if __name__ == '__main__':
    argv = sys.argv[1:]
    if '--checkpoint' in argv:  # mim passes the checkpoint as an option
        i = argv.index('--checkpoint')
        argv = [*argv[:i], *argv[i + 2:], argv[i + 1]]
    sys.exit(main(['test', *argv]))
