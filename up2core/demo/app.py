"""The demo's web server: one page and a small JSON API, on FastAPI (``pip install 'up2[demo]'``).

Routes:

* ``GET /``: the page (``page.html`` beside this file: plain HTML and JavaScript, nothing
  fetched from elsewhere, so it works offline);
* ``GET /api/info``: the model's tasks, their default names and the examples;
* ``GET /api/examples/{name}``: an example image;
* ``POST /api/predict``: form fields ``image`` (a file) or ``example`` (a name), optional
  ``classes`` (comma-separated names to look for), ``texts`` (candidate captions, one per line)
  and ``score_threshold``; answers :meth:`DemoService.predict`'s JSON, or ``{"error": ...}``
  with status 400 (not an image, a bad field) or 413 (too large).

FastAPI runs these handlers in a thread pool, so requests are served concurrently; the model
itself takes one image at a time (:class:`~up2core.demo.service.DemoService`).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations,
# which name classes imported inside create_app (FastAPI is an optional extra).
from importlib.resources import files
from typing import Annotated, Any

from up2core.demo.service import MAX_BYTES, DemoService, RequestError, decode_image

#: request bodies larger than this are refused unread
HARD_LIMIT = 4 * MAX_BYTES


def create_app(service: DemoService) -> Any:
    """The FastAPI application serving ``service`` (built once: the model is loaded once)."""
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    app = FastAPI(title='UP2 demo', docs_url=None, redoc_url=None)
    page = files('up2core.demo').joinpath('page.html').read_text(encoding='utf-8')

    @app.middleware('http')
    async def refuse_huge_bodies(request: Request, call_next):
        # Uploads a little over the limit are read and refused by decode_image, so the page
        # gets the message (a browser still sending its body reads no early answer).  A client
        # that says it sends far more is turned away before a byte of it is stored.
        length = request.headers.get('content-length')
        if length is not None and length.isdigit() and int(length) > HARD_LIMIT:
            return JSONResponse({'error': f'the upload is {int(length) / 2**20:.1f} MiB; the '
                                          f'demo takes images up to {MAX_BYTES // 2**20} MiB'},
                                status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        return JSONResponse({'error': str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError):
        fields = ', '.join('.'.join(str(p) for p in e.get('loc', ())[1:]) or 'the request'
                           for e in exc.errors())
        return JSONResponse({'error': f'malformed request ({fields}): send a form with an '
                                      f"'image' file or an 'example' name"}, status_code=400)

    @app.get('/', response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get('/api/info')
    def info() -> dict:
        return service.info()

    @app.get('/api/examples/{name}')
    def example(name: str) -> Response:
        return Response(service.example_bytes(name), media_type='image/png')

    @app.post('/api/predict')
    def predict(image: Annotated[UploadFile | None, File()] = None,
                example: Annotated[str, Form()] = '', classes: Annotated[str, Form()] = '',
                texts: Annotated[str, Form()] = '',
                score_threshold: Annotated[str, Form()] = '0.3') -> dict:
        if image is not None and image.filename:
            name = image.filename
            if image.size is not None and image.size > MAX_BYTES:
                raise RequestError(f"'{name}' is {image.size / 2**20:.1f} MiB; the demo takes "
                                   f'images up to {MAX_BYTES // 2**20} MiB', status=413)
            data = image.file.read(MAX_BYTES + 1)
        elif example:
            data, name = service.example_bytes(example), example
        else:
            raise RequestError('no image: drop or choose an image file, or pick an example')
        try:
            threshold = float(score_threshold)
        except ValueError:
            raise RequestError(f'score threshold {score_threshold!r} is not a number') from None
        names = [c.strip() for c in classes.split(',') if c.strip()] or None
        candidates = [t.strip() for t in texts.splitlines() if t.strip()] or None
        return service.predict(decode_image(data, name), name, classes=names,
                               texts=candidates, score_threshold=threshold)

    return app


def server_config(service: DemoService, host: str = '127.0.0.1', port: int = 7860,
                  log_level: str = 'warning'):
    """The uvicorn configuration that serves ``service``.

    uvicorn's default logging setup goes through ``logging.config.dictConfig``, which closes
    every handler already open in the process, MMEngine's log file among them (a later
    ``init_weights`` then fails writing to it). ``log_config=None`` leaves logging as it was;
    uvicorn's warnings still reach stderr through Python's last-resort handler.
    """
    import uvicorn

    return uvicorn.Config(create_app(service), host=host, port=port, log_level=log_level,
                          log_config=None)


def serve(service: DemoService, host: str = '127.0.0.1', port: int = 7860) -> None:
    """Serve the demo until interrupted (uvicorn)."""
    import uvicorn

    uvicorn.Server(server_config(service, host, port)).run()


__all__ = ['create_app', 'serve', 'server_config']
