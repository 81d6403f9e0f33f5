"""``up2 plugins``: the installed task plugins, their hooks and what they registered."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
    p = sub.add_parser('plugins', help='list task plugins, their hooks and registered names')
    p.add_argument('--json', action='store_true')
    p.set_defaults(func=cmd_plugins)


def cmd_plugins(args: argparse.Namespace) -> int:
    from up2core import PLUGIN_API_VERSION, __version__
    from up2core.plugin import list_plugins

    infos = list_plugins()
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    if not infos:
        print('No UP2 plugins installed (entry-point group "up2.plugins").')
    print(f'UP2 {__version__}, plugin API {PLUGIN_API_VERSION}')
    for info in infos:
        dist = f'{info.distribution} {info.version}' if info.distribution else '(not installed)'
        api = f'api {info.api_version or "?"}'
        print(f'{info.name}  [{info.status}]  {dist}  {api}  -> {info.value}')
        if info.status == 'loaded' and info.api_status != 'current':
            print(f'    warning: {info.api_note}')
        if info.hooks:
            print(f"    hooks: {', '.join(info.hooks)}")
        for kind, names in info.registered.items():
            print(f"    {kind}: {', '.join(names)}")
        if info.error:
            print(f'    error: {info.error}')
    return 0
