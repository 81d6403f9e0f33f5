"""The core's modules import each other one way: no cycle, not even through a lazy import or a
type-only import."""

import ast

from tests.conftest import ROOT

CORE = ROOT / 'up2core'


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(tree, package):
    """up2core modules imported anywhere in ``tree`` (in functions and ``if TYPE_CHECKING:``
    blocks too)."""
    found = set()

    def visit(node):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith('up2core'))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:  # relative
                base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1]
                                + ([base] if base else []))
            if base.startswith('up2core'):
                for alias in node.names:  # `from up2core import plugin` imports a module
                    candidate = f'{base}.{alias.name}'
                    found.add(candidate if candidate in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


MODULES = {_module_name(p): p for p in CORE.rglob('*.py')}


def _graph():
    graph = {}
    for name, path in MODULES.items():
        package = name if path.name == '__init__.py' else name.rpartition('.')[0]
        graph[name] = {m for m in _imports(ast.parse(path.read_text()), package)
                       if m in MODULES and m != name}
    return graph


def test_core_imports_have_no_cycle():
    graph = _graph()
    state, stack, cycles = {}, [], []

    def walk(node):
        state[node] = 'open'
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 'open':
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 'done'

    for node in sorted(graph):
        if node not in state:
            walk(node)
    assert not cycles, '\n'.join(' -> '.join(c) for c in cycles)


def test_the_graph_sees_lazy_and_type_only_imports():
    graph = _graph()
    assert 'up2core.registry' in graph['up2core.plugin']  # module level
    assert 'up2core.models.decoder' in graph['up2core.task']  # under TYPE_CHECKING
    assert 'up2core.apis.inference' in graph['up2core.cli.infer']  # inside a function


#: packages and the ones they must never import (not even lazily or for types): the layers of
#: the core, bottom up -- structures, the models, the task contract, the engine, the entry
#: points (apis, export, demo, cli)
LAYERS = {
    'up2core.structures': ('up2core.',),
    'up2core.models': ('up2core.task', 'up2core.regions', 'up2core.engine', 'up2core.apis',
                       'up2core.export', 'up2core.demo', 'up2core.cli'),
    'up2core.task': ('up2core.regions', 'up2core.engine', 'up2core.apis', 'up2core.demo',
                     'up2core.cli'),
    'up2core.engine': ('up2core.apis', 'up2core.export', 'up2core.demo', 'up2core.cli'),
    'up2core.data': ('up2core.apis', 'up2core.export', 'up2core.demo', 'up2core.cli'),
}


def test_no_layer_imports_one_above_it():
    graph = _graph()
    broken = [f'{module} -> {target}' for module, targets in graph.items()
              for layer, above in LAYERS.items()
              if module == layer or module.startswith(layer + '.')
              for target in targets if target.startswith(above)]
    assert not broken, '\n'.join(sorted(broken))


def test_the_command_line_is_one_module_per_command_and_old_names_still_resolve():
    import warnings

    from up2core import cli

    assert {c.__name__.rsplit('.', 1)[1] for c in cli.COMMANDS} == {
        'train', 'test', 'infer', 'export', 'merge', 'compare', 'demo', 'plugins', 'registry',
        'data'}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert cli.cmd_train is cli.train.cmd_train
    assert any(issubclass(w.category, DeprecationWarning) and 'up2core.cli.train.cmd_train'
               in str(w.message) for w in caught)
