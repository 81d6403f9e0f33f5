"""Export one task's inference graph (``up2 export``) and run it again.

* :mod:`up2core.export.graph`: :func:`export_task`, :class:`TaskGraph` (what is exported),
  :class:`ExportedGraph` (runs an ONNX file or a ``.pt2``), :func:`prepare_image`;
* :mod:`up2core.export.head`: the task's part of the graph (:class:`ExportHead`);
* :mod:`up2core.export.traceable`: export-friendly stand-ins for what ``torch.export`` cannot
  trace as it is (mmcv's deformable attention).
"""

from up2core.export.graph import FORMATS, ExportedGraph, TaskGraph, export_task, prepare_image
from up2core.export.head import CandidateScoresHead, ExportHead, RegionsHead
from up2core.export.traceable import TraceableDeformableAttention, traceable

__all__ = ['FORMATS', 'CandidateScoresHead', 'ExportHead', 'ExportedGraph', 'RegionsHead',
           'TaskGraph', 'TraceableDeformableAttention', 'export_task', 'prepare_image',
           'traceable']
