import pytest

from up2core import list_tasks
from up2core.plugin import (
    PluginLoadError,
    PluginWarning,
    get_plugin_manager,
    hookimpl,
    list_plugins,
)
from up2core.registry import DATASETS, MODELS, TASKS, RegistryConflictError


def _info(name):
    return {i.name: i for i in list_plugins()}[name]


def test_built_in_up2_plugin_is_discovered_through_its_entry_point(use_plugin_sets):
    use_plugin_sets()
    info = _info('up2')
    assert info.status == 'loaded' and info.distribution == 'up2'
    assert info.hooks == ['up2_config_dirs']


def test_toy_plugin_is_listed_with_distribution_hooks_and_names(use_plugin_sets):
    use_plugin_sets('toy')
    info = _info('toy')
    assert (info.status, info.distribution, info.version) == ('loaded', 'up2-toy', '0.1.0')
    assert info.hooks == ['up2_config_dirs', 'up2_register']
    assert info.registered == {'tasks': ['toy'], 'models': ['ToyRegressor'],
                               'datasets': ['ToyVectors'], 'metrics': ['ToyMSE'],
                               'hooks': ['RecordTrainingHook']}
    assert 'toy' in list_tasks() and TASKS.owners['toy'] == 'toy'
    assert MODELS.get('ToyRegressor').__module__ == 'up2_toy'


def test_broken_plugin_is_reported_and_skipped_while_others_load(use_plugin_sets):
    with pytest.warns(PluginWarning) as record:
        use_plugin_sets('toy', 'broken')
    broken = _info('broken')
    assert broken.status == 'failed'
    assert broken.distribution == 'up2-broken-fixture'
    assert "No module named 'up2_this_dependency_does_not_exist'" in broken.error
    assert _info('toy').status == 'loaded' and TASKS.get('toy') is not None
    message = str(record[0].message)
    assert "UP2 plugin 'broken'" in message and 'UP2_DISABLE_PLUGINS=broken' in message


def test_strict_mode_makes_a_broken_plugin_fatal(use_plugin_sets):
    with pytest.raises(PluginLoadError) as info:
        use_plugin_sets('broken', UP2_STRICT_PLUGINS='1')
    message = str(info.value)
    assert "'broken'" in message and 'up2-broken-fixture 0.1.0' in message
    assert 'UP2_STRICT_PLUGINS=1' in message


def test_disabled_plugins_are_not_imported(use_plugin_sets):
    use_plugin_sets('toy', 'broken', UP2_DISABLE_PLUGINS='toy, broken')
    assert _info('toy').status == 'disabled' and _info('broken').status == 'disabled'
    assert 'toy' not in TASKS


def test_a_hook_that_does_not_exist_fails_validation(use_plugin_sets):
    with pytest.warns(PluginWarning, match='up2_regsiter'):
        use_plugin_sets('badhook')
    info = _info('badhook')
    assert info.status == 'failed' and 'up2_regsiter' in info.error
    assert get_plugin_manager().get_plugin('badhook') is None


def test_two_plugins_registering_one_task_name_is_an_error_naming_both(use_plugin_sets):
    with pytest.raises(RegistryConflictError) as info:
        use_plugin_sets('toy', 'duplicate')
    message = str(info.value)
    assert "'toy' is registered twice in the up2core::task registry" in message
    assert "by 'toy'" in message and "by 'duplicate'" in message


def test_a_plugin_that_fails_half_way_is_rolled_back(use_plugin_sets):
    use_plugin_sets()

    class HalfWay:
        @hookimpl
        def up2_register(self, registry):
            registry.DATASETS.register_module(name='HalfWayDataset', module=dict)
            raise RuntimeError('disk full')

    with pytest.warns(PluginWarning, match='disk full'):
        info = get_plugin_manager().load_object('halfway', HalfWay(), strict=False)
    assert info.status == 'failed' and info.error == 'RuntimeError: disk full'
    assert 'HalfWayDataset' not in DATASETS.module_dict
    assert get_plugin_manager().get_plugin('halfway') is None


def test_hookimpl_may_take_no_arguments(use_plugin_sets):
    use_plugin_sets()
    seen = []

    class NoArgs:
        @hookimpl
        def up2_register(self):
            seen.append(True)

    info = get_plugin_manager().load_object('noargs', NoArgs())
    assert info.status == 'loaded' and seen == [True]


def test_plugin_infer_options_reach_the_parser_and_a_clash_names_the_plugin(use_plugin_sets):
    import types

    from up2core.cli import build_parser
    from up2core.errors import UserError
    from up2core.plugin import get_plugin_manager, hookimpl

    use_plugin_sets('grounding')
    args = build_parser(with_plugin_options=True).parse_args(
        ['infer', 'cfg.py', 'ckpt.pth', 'a.png', '--phrases', 'the red circle'])
    assert args.phrases == ['the red circle'] and args.plugin_infer_options == ('phrases',)

    clash = types.ModuleType('clash')
    clash.up2_infer_arguments = hookimpl(lambda parser: parser.add_argument('--texts'))
    get_plugin_manager().load_object('clash', clash)
    with pytest.raises(UserError, match=r"plugin 'clash' adds an up2 infer option that exists "
                                        r'already: argument --texts'):
        build_parser(with_plugin_options=True)
