"""``up2 demo``: a local web page that runs every task of a trained model on an image.

:class:`~up2core.demo.service.DemoService` (the model, loaded once) and
:func:`~up2core.demo.app.create_app` (the FastAPI server and its page).  The server is an
optional extra: ``pip install 'up2[demo]'``.
"""

from up2core.demo.service import DemoService, RequestError, decode_image, describe

__all__ = ['DemoService', 'RequestError', 'decode_image', 'describe']
