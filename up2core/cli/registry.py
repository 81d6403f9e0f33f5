"""``up2 registry``: the names registered per registry, or the runnable configs."""

from __future__ import annotations

import argparse
import json

from up2core.errors import UserError


def add_parser(sub) -> None:
    """Add the command to ``sub`` (the ``up2`` parser's subcommands)."""
    p = sub.add_parser('registry', help='list registered names per registry (or "configs")')
    p.add_argument('kind', nargs='?', help='a registry (tasks, datasets, metrics, models, ...) '
                   'or "configs"; all registries when omitted')
    p.add_argument('--json', action='store_true')
    p.set_defaults(func=cmd_registry)


def cmd_registry(args: argparse.Namespace) -> int:
    from up2core.registry import REGISTRIES, registry_by_name

    if args.kind == 'configs':
        from up2core.config import list_configs

        configs = {name: str(path) for name, path in list_configs().items()}
        print(json.dumps(configs, indent=2) if args.json else
              '\n'.join(f'{n}  {p}' for n, p in configs.items()) or '(no configs)')
        return 0
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    table: dict[str, dict[str, str]] = {}
    for kind in kinds:
        try:
            reg = registry_by_name(kind)
        except KeyError as exc:
            raise UserError(str(exc.args[0])) from None
        reg.import_from_location()
        table[kind] = {name: reg.owners.get(name, '?') for name in sorted(reg.module_dict)}
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    for kind, names in table.items():
        if args.kind is None and not names:
            continue
        print(f'{kind} ({len(names)}):')
        for name, owner in names.items():
            print(f'    {name}  [{owner}]')
        if not names:
            print('    (empty)')
    return 0
