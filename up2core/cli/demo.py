"""``up2 demo``: the local web page (``up2core.demo``), bound to 127.0.0.1 unless asked."""

from __future__ import annotations

import argparse
import contextlib
import sys

from up2core.cli._common import loading_args
from up2core.errors import UserError


def add_parser(sub) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
    p = sub.add_parser('demo', help='a local web page running every task on your images '
                       "(pip install 'up2[demo]')")
    p.add_argument('config', help='config file, or the name of a packaged config')
    p.add_argument('checkpoint', help='checkpoint file (.pth)')
    p.add_argument('--port', type=int, default=7860)
    p.add_argument('--host', default='127.0.0.1', help='address to bind (default: this machine '
                   'only)')
    p.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', default=[])
    loading_args(p, "your own data's dataset file: its names")
    p.set_defaults(func=cmd_demo)


def _check_bindable(host: str, port: int) -> None:
    """Raise a UserError when the demo could not listen on ``host:port`` (in use, no such host)."""
    import socket

    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UserError(f'cannot serve on {host}:{port}: {reason.lower()}; pick another '
                            f'--port (or --host)') from None


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart: FastAPI's form parser)
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UserError(f"up2 demo needs the demo extra ({exc.name} is missing): "
                        f"pip install 'up2[demo]'") from None
    from up2core.demo.app import serve
    from up2core.demo.service import DemoService

    if not 0 < args.port < 65536:
        raise UserError(f'--port {args.port}: give a port from 1 to 65535')
    _check_bindable(args.host, args.port)  # before the model loads, not after
    with contextlib.redirect_stdout(sys.stderr):
        service = DemoService(args.config, args.checkpoint, cfg_options=args.cfg_options,
                              data=args.data, partial=args.partial_load)
    if args.host not in ('127.0.0.1', 'localhost', '::1'):
        print(f'up2: warning: --host {args.host} makes the demo reachable from other machines; '
              f'it has no authentication', file=sys.stderr)
    print(f'UP2 demo of {args.config} ({", ".join(service.model.tasks)}) on '
          f'http://{args.host}:{args.port}/  (Ctrl+C stops it)', flush=True)
    serve(service, host=args.host, port=args.port)
    return 0
