"""Data the core provides to every task: the embedded Shapes dataset generator."""

from up2core.data.shapes import ShapesSpec, ensure_shapes, generate_shapes

__all__ = ['ShapesSpec', 'ensure_shapes', 'generate_shapes']
