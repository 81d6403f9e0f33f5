"""Make MMEngine checkpoints loadable under torch's ``weights_only=True`` default (torch >= 2.6).

MMEngine 0.10 calls ``torch.load`` without ``weights_only``; torch >= 2.6 then refuses the
checkpoints MMEngine itself writes, because the message hub's state holds
:class:`~mmengine.logging.HistoryBuffer` objects and numpy scalars/arrays.  Rather than turning
``weights_only`` off (which would let a checkpoint run arbitrary code), we allow-list exactly the
globals that ``Runner.save_checkpoint`` produces, found with
``torch.serialization.get_unsafe_globals_in_checkpoint`` on real checkpoints:

* ``mmengine.logging.history_buffer.HistoryBuffer``;
* ``builtins.getattr``: a HistoryBuffer keeps bound methods (``min``, ``max``, ``mean``...) in a
  dict, and pickle rebuilds a bound method as ``getattr(buffer, 'min')``.  Only attribute *reads* on
  objects that were themselves allowed; calling the result would need another allowed global;
* numpy's array/scalar reconstructors and dtypes (under both ``numpy.core`` and ``numpy._core``
  names, so checkpoints written with numpy 1.x load with numpy 2.x and back).
"""

from __future__ import annotations

import builtins

import numpy as np
import torch

_DONE = False


def _numpy_globals() -> list:
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    found: list = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        found += [(fn, f'numpy.core.multiarray.{name}'), (fn, f'numpy._core.multiarray.{name}')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:  # numpy >= 1.25 pickles dtypes by their class
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return found


def allow_mmengine_checkpoints() -> None:
    """Allow-list the globals of MMEngine checkpoints for ``torch.load(weights_only=True)``.

    Idempotent; a no-op on torch versions without ``add_safe_globals``.
    """
    global _DONE
    if _DONE or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    from mmengine.logging.history_buffer import HistoryBuffer

    torch.serialization.add_safe_globals([HistoryBuffer, builtins.getattr, *_numpy_globals()])
    _DONE = True
