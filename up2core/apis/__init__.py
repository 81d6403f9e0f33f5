"""Python entry points for using a trained generalist: :func:`init_model`, :func:`inference`."""

from up2core.apis.inference import inference, init_model

__all__ = ['inference', 'init_model']
