"""Data the core provides to every task: the Shapes generator and the packing transform."""

from up2core.data.shapes import ShapesSpec, ensure_shapes, generate_shapes
from up2core.data.transforms import PackUP2Inputs

__all__ = ['PackUP2Inputs', 'ShapesSpec', 'ensure_shapes', 'generate_shapes']
