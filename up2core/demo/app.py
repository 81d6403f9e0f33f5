"""The demo's web server: one page and a small JSON API, on FastAPI (``pip install 'up2[demo]'``).

Routes:

* ``GET /``: the page (``page.html`` beside this file: plain HTML and JavaScript, nothing
  fetched from elsewhere, so it works offline);
* ``GET /api/info``: the model's tasks, their default names and the examples;
* ``GET /api/examples/{name}``: an example image;
* ``POST /api/predict``: form fields ``image`` (a file) or ``example`` (a name), optional
  ``classes`` (comma-separated names to look for), ``texts`` (candidate captions, one per line)
  and ``score_threshold``; answers :meth:`DemoService.predict`'s JSON, or ``{"error": ...}``
  with status 400 (not an image, a bad field, too many names), 413 (too large) or 503 (busy:
  too many requests already wait for the model; ``Retry-After`` says when to try again).

FastAPI runs these handlers in a thread pool, so requests are served concurrently; the model
itself takes one image at a time (:class:`~up2core.demo.service.DemoService`).

A page on ``127.0.0.1`` can still be reached by other sites through the user's browser, so
every request is checked before it is read:

* its ``Host`` must be one this server answers to (``127.0.0.1``, ``localhost``, ``[::1]`` or
  the ``--host`` given, with the port it serves): a DNS-rebinding page names its own host, and
  gets 403;
* a request that changes something (``POST``) from a page of another origin (its ``Origin``
  is not ``http://<Host>``, or the browser says ``Sec-Fetch-Site: cross-site``) gets 403.
  Clients that are not browsers (curl, scripts) send no ``Origin`` and are served.

Served on a wildcard address (``--host 0.0.0.0``, with a warning), any ``Host`` is accepted:
the demo cannot know the names other machines reach it by; the origin check still holds.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations,
# which name classes imported inside create_app (FastAPI is an optional extra).
from importlib.resources import files
from typing import Annotated, Any

from up2core.demo.service import (
    MAX_BYTES,
    MAX_NAME_CHARS,
    MAX_NAMES,
    DemoService,
    RequestError,
    decode_image,
    field_list,
)

#: request bodies larger than this are refused unread
HARD_LIMIT = 4 * MAX_BYTES


#: the names a loopback server answers to
LOOPBACK_NAMES = ('127.0.0.1', 'localhost', '[::1]')
#: addresses that mean every interface
WILDCARD_HOSTS = ('0.0.0.0', '::', '[::]')


def allowed_hosts(host: str = '127.0.0.1') -> set[str] | None:
    """The host names a server bound to ``host`` answers to in a ``Host`` header (IPv6
    addresses in brackets), or ``None`` (any) for a wildcard address."""
    if host in WILDCARD_HOSTS:
        return None
    name = f'[{host}]' if ':' in host and not host.startswith('[') else host
    return set(LOOPBACK_NAMES) | {name.lower()}


def host_allowed(header: str, names: set[str] | None, port: int | None) -> bool:
    """Whether a ``Host`` header names this server: one of ``names`` (None: any) with the port
    it serves (None: any; no port in the header means 80)."""
    if names is None:
        return True
    header = header.strip().lower()
    if header.startswith('['):
        name, _, rest = header.partition(']')
        name, given = name + ']', rest.removeprefix(':') or None
    else:
        name, _, given = header.partition(':')
        given = given or None
    if name not in names:
        return False
    return port is None or (given or '80') == str(port)


def _cross_site(request) -> str | None:
    """Why a state-changing request comes from another site's page, or None."""
    origin = request.headers.get('origin')
    host = request.headers.get('host', '')
    if origin is not None and origin.strip().lower() != f'http://{host.strip().lower()}':
        return f'origin {origin}'
    if request.headers.get('sec-fetch-site', '').lower() == 'cross-site':
        return 'a cross-site request (Sec-Fetch-Site)'
    return None


def create_app(service: DemoService, host: str = '127.0.0.1', port: int | None = None) -> Any:
    """The FastAPI application serving ``service`` (built once: the model is loaded once) on
    ``host:port`` (what the ``Host`` check accepts, see the module doc)."""
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title='UP2 demo', docs_url=None, redoc_url=None)
    page = files('up2core.demo').joinpath('page.html').read_text(encoding='utf-8')
    hosts = allowed_hosts(host)
    served = f'http://{host}:{port}/' if port is not None else f'http://{host}/'

    @app.middleware('http')
    async def refuse_other_sites(request: Request, call_next):
        # Checked before anything is read: a DNS-rebinding page names its own host, and a
        # page of another origin may not make the browser post to this one.
        if not host_allowed(request.headers.get('host', ''), hosts, port):
            return JSONResponse({'error': f"host {request.headers.get('host', '(none)')!r} is "
                                          f'not this demo: refused (open {served})'},
                                status_code=403)
        if request.method not in ('GET', 'HEAD', 'OPTIONS'):
            why = _cross_site(request)
            if why is not None:
                return JSONResponse({'error': f'refused: {why} is not this demo\'s page '
                                              f'({served}); the demo answers its own page '
                                              f'and clients that are not browsers'},
                                    status_code=403)
        return await call_next(request)

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
        headers = {'Retry-After': str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse({'error': str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # what Starlette refuses itself (a form part over its 1 MiB limit, a body it cannot
        # parse): the page's {"error"} shape, not {"detail"}
        detail = str(exc.detail)
        if 'maximum size' in detail:
            return JSONResponse({'error': f'a form field is larger than the form parser takes '
                                          f'({detail}); the demo takes up to {MAX_NAMES} names '
                                          f'of up to {MAX_NAME_CHARS} characters'},
                                status_code=413)
        return JSONResponse({'error': f'{detail[:1].lower()}{detail[1:]}'},
                            status_code=exc.status_code, headers=getattr(exc, 'headers', None))

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
        names = field_list(classes, ',', 'classes') or None
        candidates = field_list(texts, '\n', 'texts') or None
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

    return uvicorn.Config(create_app(service, host, port), host=host, port=port,
                          log_level=log_level, log_config=None)


def serve(service: DemoService, host: str = '127.0.0.1', port: int = 7860) -> None:
    """Serve the demo until interrupted (uvicorn)."""
    import uvicorn

    uvicorn.Server(server_config(service, host, port)).run()


__all__ = ['allowed_hosts', 'create_app', 'host_allowed', 'serve', 'server_config']
