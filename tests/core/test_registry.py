import subprocess
import sys

import pytest
from mmengine import registry as mmengine_registry

from tests.conftest import plugin_set
from up2core import registry
from up2core.registry import (
    MODELS,
    REGISTRIES,
    TASKS,
    UnknownNameError,
    explain_missing,
    registry_by_name,
)


@pytest.mark.parametrize('short', [k for k in REGISTRIES
                                   if k not in ('tasks', 'geometric_targets')])
def test_every_registry_is_a_child_of_the_mmengine_root_of_its_kind(short):
    reg = REGISTRIES[short]
    assert reg.scope == 'up2core'
    root_name = next(name for name in dir(mmengine_registry)
                     if getattr(mmengine_registry, name) is reg.parent)
    assert root_name.isupper()
    assert reg.parent.name == reg.name
    assert reg.parent.children['up2core'] is reg


def test_tasks_is_a_root_of_its_own():
    assert TASKS.parent is None and TASKS.scope == 'up2core' and TASKS.name == 'task'


def test_geometric_targets_is_a_root_of_its_own():
    from up2core.registry import GEOMETRIC_TARGETS

    assert GEOMETRIC_TARGETS.parent is None and GEOMETRIC_TARGETS.scope == 'up2core'
    assert REGISTRIES['geometric_targets'] is GEOMETRIC_TARGETS


def test_mmdet_names_resolve_through_the_scope_prefix():
    from mmdet.models.backbones import ResNet

    assert MODELS.get('mmdet.ResNet') is ResNet
    backbone = MODELS.build(dict(type='mmdet.ResNet', depth=18))
    assert isinstance(backbone, ResNet)


def test_mmengine_names_resolve_from_the_parent():
    from torch.optim import SGD

    assert registry.OPTIMIZERS.get('SGD') is SGD


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError) as info:
        MODELS.require('mmdet.ResNett')
    message = str(info.value)
    assert "'mmdet.ResNett' is not in the up2core::model registry" in message
    assert "'mmdet.ResNet'" in message and 'up2 registry models' in message


def test_mmengine_missing_name_error_is_explained_with_close_matches():
    with pytest.raises(KeyError) as info:
        MODELS.build(dict(type='mmdet.RetinaNett'))
    message = explain_missing(info.value)
    assert message is not None and "'mmdet.RetinaNet'" in message
    assert explain_missing(KeyError('something else')) is None


def test_registry_by_name_accepts_plural_and_singular_and_suggests():
    assert registry_by_name('datasets') is registry.DATASETS
    assert registry_by_name('dataset') is registry.DATASETS
    with pytest.raises(KeyError, match="Did you mean 'metrics'"):
        registry_by_name('metricz')


def test_tasks_lookup_loads_plugins_lazily_in_a_fresh_interpreter():
    code = ("from up2core.registry import TASKS\n"
            "import up2core.plugin as p\n"
            "assert p._manager is None, 'loaded too early'\n"
            "cls = TASKS.get('toy')\n"
            "print(cls.__module__, cls.__name__)\n")
    env = {'PYTHONPATH': str(plugin_set('toy'))}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env={**__import__('os').environ, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['up2_toy', 'ToyTask']


def test_mmdet_names_resolve_in_a_fresh_interpreter_as_the_readme_shows():
    # mmdet's registries are empty until its modules are imported: a lookup must import them.
    code = ("from up2core.registry import DATASETS, MODELS\n"
            "print(DATASETS.require('mmdet.CocoDataset').__module__)\n"
            "print(MODELS.require('mmdet.ResNet').__name__)\n"
            "try:\n"
            "    DATASETS.require('CocoDataset')\n"
            "except KeyError as exc:\n"
            "    print('MISS', exc)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith('mmdet.datasets') and lines[1] == 'ResNet'
    assert lines[2].startswith('MISS') and "'mmdet.CocoDataset'" in lines[2]  # the fix
