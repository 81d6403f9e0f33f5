import pytest
from mmengine.config import Config

from tests.conftest import ROOT
from up2core.config import (
    ConfigError,
    apply_cfg_options,
    find_config,
    list_configs,
    load_config,
    parse_cfg_options,
)


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / 'my_config.py'
    path.write_text("model = dict(type='X', depth=2, heads=[dict(a=1), dict(a=2)])\n"
                    "train_cfg = dict(max_iters=10, val_interval=5)\n")
    return path


def test_find_config_accepts_a_path(cfg_file):
    assert find_config(cfg_file) == cfg_file


def test_find_config_accepts_a_plugin_config_name(use_plugin_sets):
    use_plugin_sets('toy')
    assert 'toy_regression' in list_configs()
    assert find_config('toy_regression').name == 'toy_regression.py'
    assert find_config('toy_regression.py').name == 'toy_regression.py'


def test_missing_config_suggests_close_names(use_plugin_sets):
    use_plugin_sets('toy')
    with pytest.raises(ConfigError, match="Config 'toy_regresion' not found.*Did you mean "
                                          "toy_regression"):
        find_config('toy_regresion')
    with pytest.raises(ConfigError, match='not found'):
        find_config('/no/such/dir/config.py')


def test_cfg_options_parse_like_mmengine():
    assert parse_cfg_options(['a=1', 'b.c=[1,2]', 'd=(1,2)', 'e=True', 'f=x']) == {
        'a': 1, 'b.c': [1, 2], 'd': (1, 2), 'e': True, 'f': 'x'}


@pytest.mark.parametrize('bad', ['novalue', '=3', 'a=[1,2', 'a=(1,2]'])
def test_malformed_cfg_options_are_rejected_with_the_item(bad):
    with pytest.raises(ConfigError, match='Malformed') as info:
        parse_cfg_options([bad])
    assert bad in str(info.value)


def test_known_keys_are_merged_including_list_items(cfg_file):
    cfg = load_config(cfg_file, ['train_cfg.max_iters=3', 'model.heads.1.a=7'])
    assert cfg.train_cfg.max_iters == 3 and cfg.model.heads[1].a == 7


def test_unknown_key_is_an_error_with_a_suggestion(cfg_file):
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file, ['train_cfg.max_iter=3'])
    message = str(info.value)
    assert "Unknown config key 'train_cfg.max_iter'" in message
    assert 'Did you mean train_cfg.max_iters' in message and "'+train_cfg.max_iter=...'" in message


def test_plus_prefix_adds_a_new_key_on_purpose(cfg_file):
    cfg = Config.fromfile(str(cfg_file))
    apply_cfg_options(cfg, {'+model.extra': 5, '+new_top': 'x'})
    assert cfg.model.extra == 5 and cfg.new_top == 'x'


def test_a_config_with_a_syntax_error_names_the_file(tmp_path):
    bad = tmp_path / 'broken.py'
    bad.write_text('model = dict(type=\n')
    with pytest.raises(ConfigError, match='broken.py'):
        load_config(bad)


@pytest.mark.parametrize('name', sorted(n for n in list_configs() if n.startswith('up2_')))
def test_every_packaged_config_loads_and_names_its_tasks_consistently(name):
    from up2core.config import check_config
    from up2core.registry import TASKS

    cfg = load_config(name)
    check_config(cfg)
    tasks = set(cfg.model.tasks)
    assert tasks, name
    trained = set(cfg.train_dataloader)
    assert trained and trained <= tasks, name
    # a task without a train loader is evaluation-only (e.g. Flickr30k zero-shot retrieval)
    for key in ('val_dataloader', 'val_evaluator'):
        assert set(cfg[key]) == tasks, (name, key)
    assert set(cfg.train_cfg.get('sampling_weights') or trained) == trained
    for task in cfg.model.tasks.values():
        assert TASKS.get(task['type']) is not None, task['type']
    for task, loader in cfg.train_dataloader.items():
        assert loader.dataset.pipeline[-1] == dict(type='PackUP2Inputs', task=task) or \
            loader.dataset.pipeline[-1]['task'] == task


def test_dict_calls_in_cfg_options_are_parsed_as_configs_write_them():
    from up2core.config import parse_cfg_options

    parsed = parse_cfg_options(["model.tasks.classification=dict(type='classification', "
                                "topk=(1, 5), names=['a', 'b'], sub=dict(x=None, y=-1.5))"])
    assert parsed == {'model.tasks.classification': dict(
        type='classification', topk=(1, 5), names=['a', 'b'], sub=dict(x=None, y=-1.5))}
    with pytest.raises(ConfigError, match='is not a literal'):
        parse_cfg_options(['a=dict(type=os.system(1))'])
    # a dict literal too (it was kept as a string before)
    assert parse_cfg_options(["a={'num_dn_queries': 20, 'b': [1, 2]}"]) == \
        {'a': {'num_dn_queries': 20, 'b': [1, 2]}}


@pytest.mark.parametrize('option,fragments', [
    ('optim_wrapper.optimizer.type=MTAdamWW', ['optim_wrapper.optimizer.type', "'MTAdamW'"]),
    ('val_evaluator.classification.type=TopKAcc', ['val_evaluator.classification.type',
                                                  "'TopKAccuracy'"]),
    ('param_scheduler.1.type=CosineAnnealing', ['param_scheduler.1.type']),
    ('model.tasks.retrieval.type=retreival', ['model.tasks.retrieval.type', "'retrieval'"]),
    ('train_dataloader.retrieval.dataset.pipeline.3.task=retrievl',
     ["packs samples for task 'retrievl'", "set it to 'retrieval'"]),
    ('+val_dataloader.captioning=dict(batch_size=1)', ["'captioning' is not a task of this model",
                                                       'model.tasks']),
])
def test_check_config_names_the_key_and_the_fix(option, fragments):
    from up2core.config import check_config
    from up2core.registry import UnknownNameError

    cfg = load_config('up2_tiny_shapes', [option])
    with pytest.raises((ConfigError, UnknownNameError)) as info:
        check_config(cfg)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize('name', ['up2_tiny_shapes_five_tasks', 'up2_base_swinb_in1k_coco'])
def test_one_override_moves_a_whole_dataset_family(name):
    cfg = load_config(name, ['shapes_data_root=/mnt/shapes', 'coco_data_root=/mnt/coco/',
                             'imagenet_data_root=/mnt/in1k', 'flickr30k_data_root=/mnt/f30k'])
    text = cfg.pretty_text
    for old in ('data/shapes', 'data/coco', 'data/imagenet', 'data/flickr30k'):
        assert old not in text, old
    loaders = [loader for key in ('train_dataloader', 'val_dataloader')
               for loader in cfg[key].values()]
    assert all(loader.dataset.data_root.startswith('/mnt/') for loader in loaders)
    if name == 'up2_tiny_shapes_five_tasks':
        assert cfg.val_evaluator.detection.ann_file == \
            '/mnt/shapes/annotations/instances_colour_val.json'
        assert cfg.model.tasks.captioning.vocabulary.ann_file == \
            '/mnt/shapes/annotations/captions_train.json'
    else:
        assert cfg.val_evaluator.detection.ann_file.startswith('/mnt/coco/annotations/')


def test_a_config_outside_the_checkout_inherits_base_configs_through_up2_scope(tmp_path):
    import up2core  # noqa: F401  (installs the scope, as the CLI does)
    from up2core.registry import MODELS

    (tmp_path / 'mine.py').write_text(
        "_base_ = ['up2::_base_/models/up2_tiny.py', 'up2::_base_/default_runtime.py']\n"
        "model = dict(tasks=dict())\n")
    cfg = load_config(tmp_path / 'mine.py')
    assert cfg.model.type == 'UP2Generalist' and cfg.default_scope == 'up2core'
    # MMEngine stamps the package scope on inherited dicts; under the default scope up2core it
    # is redundant, and it would reach collate functions and task constructors: it is dropped.
    assert '_scope_' not in cfg.pretty_text
    assert MODELS.get(cfg.model.type) is not None
    from mmengine.config import Config

    raw = Config.fromfile(str(tmp_path / 'mine.py'))  # what MMEngine alone makes of it
    assert raw.model._scope_ == 'up2core'  # the registries' scope, not 'up2'


def test_a_misspelt_up2_base_config_names_the_file_and_the_close_names(tmp_path):
    (tmp_path / 'typo.py').write_text("_base_ = ['up2::_base_/models/up2_tiy.py']\n")
    with pytest.raises(ConfigError, match=r"typo\.py.*'up2::_base_/models/up2_tiy\.py' does not "
                                          r"exist.*Did you mean up2::_base_/models/up2_tiny\.py"):
        load_config(tmp_path / 'typo.py')


@pytest.mark.parametrize('option', ['train_cfg.max_iters=60', 'max_iters=60'])
def test_the_schedule_follows_a_shortened_run(option):
    full = load_config('up2_tiny_shapes_captioning')
    assert full.train_cfg.max_iters == 600
    cfg = load_config('up2_tiny_shapes_captioning', [option])
    assert cfg.train_cfg.max_iters == 60 and cfg.train_cfg.val_interval == 60
    warmup, cosine = cfg.param_scheduler
    assert (warmup.begin, warmup.end) == (0, round(full.param_scheduler[0].end / 10))
    assert (cosine.begin, cosine.end) == (warmup.end, 60)  # decays to its floor at the last step


def test_very_short_runs_keep_a_valid_schedule():
    cfg = load_config('up2_tiny_shapes_captioning', ['train_cfg.max_iters=1'])
    assert all(s.end > s.begin for s in cfg.param_scheduler)


def test_overriding_the_schedule_keeps_it_as_written():
    # How a run is stopped early on purpose: the schedule stays the full run's.
    cfg = load_config('up2_tiny_shapes_captioning',
                      ['train_cfg.max_iters=60', 'param_scheduler.0.end=50'])
    assert cfg.param_scheduler[1].end == 600


def test_tasks_keeps_a_subset_and_drops_every_entry_of_the_others():
    cfg = load_config('up2_tiny_shapes_generalist', tasks='detection,captioning')
    for section in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
                    'test_evaluator'):
        assert list(cfg[section]) == ['detection', 'captioning'], section
    assert list(cfg.model.tasks) == ['detection', 'captioning']
    assert set(cfg.train_cfg.sampling_weights) == {'detection', 'captioning'}
    assert {k.split('/')[0] for k in cfg.targets} == {'detection', 'captioning'}
    from up2core.config import check_config

    check_config(cfg)
    with pytest.raises(ConfigError, match=r'--tasks: grounding is not a task of this config '
                                          r'\(model.tasks: classification, retrieval'):
        load_config('up2_tiny_shapes_generalist', tasks=['detection', 'grounding'])


def test_a_sampling_weight_of_zero_means_the_task_is_not_built():
    cfg = load_config('up2_tiny_shapes_generalist',
                      ['train_cfg.sampling_weights.retrieval=0', 'train_cfg.sampling_weights.'
                       'captioning=0'])
    assert list(cfg.model.tasks) == ['classification', 'detection', 'segmentation']
    assert 'retrieval' not in cfg.val_evaluator and 'captioning' not in cfg.test_dataloader


def test_a_plugin_config_is_inheritable_through_the_plugin_scope(use_plugin_sets, tmp_path):
    use_plugin_sets('grounding')
    cfg = load_config(ROOT / 'tests' / 'fixtures' / 'configs' / 'tiny_grounding_e2e.py')
    assert cfg.model.tasks.grounding.type == 'grounding'
    assert cfg.train_dataloader.grounding.batch_size == 4  # the child's override on top
    (tmp_path / 'by_module.py').write_text("_base_ = ['up2_grounding::grounding_shapes_joint.py']\n")
    assert 'grounding' in load_config(tmp_path / 'by_module.py').model.tasks
    (tmp_path / 'typo.py').write_text("_base_ = ['grounding::grounding_shapes_jiont.py']\n")
    with pytest.raises(ConfigError, match=r"does not exist in the configs of plugin 'grounding'"
                                          r'.*Did you mean grounding::grounding_shapes_joint.py'):
        load_config(tmp_path / 'typo.py')


def test_shapes_of_another_spec_are_used_as_found_or_regenerated_on_request(tmp_path):
    from up2core.data.prepare import prepare_data
    from up2core.data.shapes import ShapesSpec, generate_shapes, read_meta

    root = tmp_path / 'shapes'
    generate_shapes(root, ShapesSpec(num_train=2, num_val=2, image_size=64, seed=3))
    wanted = dict(type='shapes', num_train=3, num_val=2, image_size=64, seed=0)
    prepare_data(str(root), wanted)
    assert read_meta(root)['spec']['seed'] == 3  # used as it is
    prepare_data(str(root), wanted, overwrite=True)
    assert read_meta(root)['spec'] == {k: v for k, v in wanted.items() if k != 'type'}
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'notes.txt').write_text('not shapes')
    with pytest.raises(FileExistsError, match='not empty and does not hold Shapes'):
        prepare_data(str(tmp_path / 'other'), wanted)


def test_a_schedule_that_ends_before_it_begins_is_one_config_error():
    from up2core.config import ConfigError, check_config, load_config, parse_cfg_options

    cfg = load_config('up2_tiny_shapes_classification',
                      parse_cfg_options(['max_iters=20', 'param_scheduler.1.end=20']))
    with pytest.raises(ConfigError, match=r'param_scheduler.1 \(CosineAnnealingLR\) ends at step '
                                          r'20, not after it begins at step 50: shift'):
        check_config(cfg)
    check_config(load_config('up2_tiny_shapes_classification'))  # the packaged one is fine
