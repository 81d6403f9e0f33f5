"""Dataset files (``--data``): parsing, errors that name the key, and the config they make."""

from __future__ import annotations

import json

import pytest

from up2core.config import load_config
from up2core.data.dataset_file import apply_data_file, load_data_file
from up2core.data.example import CATEGORY_IDS, write_example_data
from up2core.errors import DataError


@pytest.fixture(scope='module')
def example(tmp_path_factory):
    """A small dataset in a user's layouts (new names, ids 3..999, captions JSONL, folders)."""
    return write_example_data(tmp_path_factory.mktemp('own') / 'mydata', num_train=12,
                              num_val=4)


def write(tmp_path, text: str):
    path = tmp_path / 'data.yaml'
    path.write_text(text)
    return path


def test_paths_resolve_against_path_and_every_task_is_read(example):
    data = load_data_file(example)
    assert sorted(data.tasks) == ['captioning', 'classification', 'detection', 'retrieval',
                                  'segmentation']
    assert data.tasks['detection'].split('train').ann == example.parent / 'annotations' / \
        'train.json'
    assert data.tasks['classification'].split('val').images == example.parent / 'cls' / 'val'
    assert data.name == 'mydata'


def test_the_documented_example_reads_the_example_data(example, tmp_path):
    """EXAMPLE (what ``up2 data --help`` prints) is the layout ``up2 data example`` writes."""
    from up2core.data.dataset_file import EXAMPLE

    path = write(tmp_path, EXAMPLE.replace('/data/mine', str(example.parent)))
    data = load_data_file(path)
    assert data.name == 'my-parts' and len(data.tasks) == 5
    assert data.tasks['retrieval'].split('val').ann == example.parent / 'captions_val.jsonl'


@pytest.mark.parametrize('text, message', [
    ('detection: {train: {ann: a.json, imges: imgs}}', "unknown key 'imges'"),
    ('detection: {trian: {ann: a.json}}', "Did you mean 'train'?"),
    ('detection: {train: {ann: nowhere.json, images: .}}', "file '"),
    ('path: /no/such/folder\ndetection: {train: x}', "'path': folder '/no/such/folder'"),
    ('detection: [1, 2]', "'detection' must be a mapping"),
    ('- just\n- a list', 'expected a mapping'),
    ('detection: {train: {ann: [a', 'not readable as YAML'),
    ('path: .\n', 'names no task'),
    ('detection: {filter_empty: maybe, train: .}', 'filter_empty must be true or false'),
    ('settings: {image_sise: 3}\ndetection: {train: .}', "Did you mean 'image_size'?"),
    ('settings: {max_iters: -5}\ndetection: {train: .}', 'settings.max_iters must be a positive'),
    ('detection: {train: ., options: [1]}', 'detection.options must be a mapping'),
])
def test_a_bad_dataset_file_is_one_error_naming_the_key(tmp_path, text, message):
    with pytest.raises(DataError, match='data.yaml') as caught:
        load_data_file(write(tmp_path, text))
    assert message in str(caught.value)


def test_a_task_the_config_cannot_train_is_an_error(example, tmp_path):
    (tmp_path / 'a.jsonl').write_text('{"image": "x.png", "caption": "a thing"}\n')
    path = write(tmp_path, 'captionig: {train: {ann: a.jsonl}}')
    cfg = load_config('up2_tiny_shapes_generalist')
    with pytest.raises(DataError, match="'captionig' is not a task of this config.*Did you mean "
                                        "'captioning'"):
        apply_data_file(cfg, load_data_file(path))
    cfg = load_config('up2_tiny_shapes_classification')
    with pytest.raises(DataError, match="'captioning' is not a task of this config"):
        apply_data_file(cfg, load_data_file(write(tmp_path, 'captioning: {train: {ann: a.jsonl}}')))


def test_the_config_takes_the_data_names_and_drops_the_other_tasks(example, tmp_path):
    text = example.read_text().split('classification:')[0]  # detection + segmentation only
    path = tmp_path / 'regions.yaml'
    path.write_text(text.replace('path: .', f'path: {example.parent}'))
    cfg = load_config('up2_tiny_shapes_generalist')
    dropped = apply_data_file(cfg, load_data_file(path))
    assert sorted(dropped) == ['captioning', 'classification', 'retrieval']
    assert sorted(cfg.model.tasks) == ['detection', 'segmentation']
    assert sorted(cfg.train_cfg.sampling_weights) == ['detection', 'segmentation']
    # the categories in id order (3, 8, 15, ...): the label order mmdet gives them
    categories = json.loads((example.parent / 'annotations' / 'train.json').read_text())
    by_id = sorted(categories['categories'], key=lambda c: c['id'])
    assert [c['id'] for c in by_id] == list(CATEGORY_IDS)
    names = [c['name'] for c in by_id]
    assert cfg.model.tasks.detection.class_names == names
    assert cfg.model.tasks.segmentation.test_class_names == names
    dataset = cfg.train_dataloader.detection.dataset
    assert dataset.type == 'CocoInstances' and 'prepare' not in dataset
    assert dataset.ann_file.endswith('annotations/train.json')
    assert dataset.filter_cfg == {'filter_empty_gt': False}  # negatives kept
    assert cfg.test_evaluator.segmentation.ann_file.endswith('annotations/val.json')
    assert cfg.test_evaluator.segmentation.category_groups is None  # no held-out names
    # the pipelines stay the config's
    original = load_config('up2_tiny_shapes_generalist')
    assert dataset.pipeline == original.train_dataloader.detection.dataset.pipeline
    assert cfg.train_cfg.mode == 'mixed' and cfg.val_cfg.shared_images is False
    assert 'targets' not in cfg  # the config's targets are for Shapes


def test_val_names_never_trained_on_are_scored_as_a_novel_group(example, tmp_path):
    root = example.parent
    val = json.loads((root / 'annotations' / 'val.json').read_text())
    val['categories'].append({'id': 5000, 'name': 'gear'})
    (root / 'annotations' / 'val_more.json').write_text(json.dumps(val))
    path = write(tmp_path, f'path: {root}\ndetection:\n'
                           '  train: {ann: annotations/train.json, images: images/train}\n'
                           '  val: {ann: annotations/val_more.json, images: images/val}\n')
    cfg = load_config('up2_tiny_shapes_generalist')
    apply_data_file(cfg, load_data_file(path))
    assert 'gear' not in cfg.model.tasks.detection.class_names
    assert cfg.model.tasks.detection.test_class_names[-1] == 'gear'
    assert cfg.val_evaluator.detection.category_groups['novel'] == ['gear']


def test_image_folders_take_readable_names_from_classes_txt(example):
    cfg = load_config('up2_tiny_shapes_generalist')
    apply_data_file(cfg, load_data_file(example))
    readable = (example.parent / 'cls' / 'classes.txt').read_text().split('\n')[:8]
    assert cfg.model.tasks.classification.class_names == readable
    dataset = cfg.train_dataloader.classification.dataset
    assert dataset.type == 'ImageFolderDataset'
    assert dataset.classes == sorted(p.name for p in (example.parent / 'cls' / 'train').iterdir())
    assert cfg.model.tasks.captioning.vocabulary.ann_file.endswith('captions_train.jsonl')
    assert cfg.model.tasks.captioning.vocabulary_source == 'union'


def test_a_classes_txt_of_the_wrong_length_is_an_error(example, tmp_path):
    root = example.parent
    bad = tmp_path / 'classes.txt'
    bad.write_text('one\ntwo\n')
    path = write(tmp_path, f'path: {root}\nclassification: {{train: cls/train, val: cls/val, '
                           f'classes: {bad}}}\n')
    cfg = load_config('up2_tiny_shapes_generalist')
    with pytest.raises(DataError, match='2 names for 8 class folders'):
        apply_data_file(cfg, load_data_file(path))


def test_the_datasets_read_the_users_files(example):
    """Every task's train set, built from the config the data file made, yields samples."""
    from mmengine.registry import init_default_scope

    from up2core.registry import DATASETS

    cfg = load_config('up2_tiny_shapes_generalist')
    apply_data_file(cfg, load_data_file(example))
    init_default_scope('up2core')
    sizes = {}
    for task, loader in cfg.train_dataloader.items():
        dataset = DATASETS.build(loader.dataset)
        sample = dataset[0]
        assert sample['data_samples'].task == task
        sizes[task] = len(dataset)
    assert sizes['detection'] == 12  # the negative image is kept
    assert sizes['captioning'] == 12 and sizes['classification'] == 12


def test_replay_keeps_every_task_of_the_config_on_its_own_data(example, tmp_path, monkeypatch):
    """``--replay``: the config's tasks stay, as ``replay_<task>``, on the config's data (train
    and val), drawn on ``W : 1`` of the steps (a group with the config's own step, shared
    images); their batches hold the config's samples, packed for them."""
    from mmengine.registry import init_default_scope

    from tests.conftest import TINY_GENERALIST
    from up2core.registry import DATASETS, MODELS

    monkeypatch.chdir(tmp_path)  # the config's Shapes images are generated under data/
    text = example.read_text().split('classification:')[0]  # detection + segmentation only
    path = tmp_path / 'regions.yaml'
    path.write_text(text.replace('path: .', f'path: {example.parent}'))
    original = load_config(str(TINY_GENERALIST))
    cfg = load_config(str(TINY_GENERALIST))
    apply_data_file(cfg, load_data_file(path), replay=0.5)
    tasks = ['captioning', 'classification', 'detection', 'retrieval', 'segmentation']
    assert sorted(cfg.model.tasks) == sorted(['detection', 'segmentation'] +
                                             [f'replay_{t}' for t in tasks])
    weights, before = cfg.train_cfg.sampling_weights, original.train_cfg.sampling_weights
    assert weights.detection == before.detection
    assert all(weights[f'replay_{t}'] == before[t] for t in tasks)
    groups = cfg.train_cfg.groups
    assert groups.yours == dict(tasks=['detection', 'segmentation'], weight=1.0, mode='mixed')
    assert groups.replay.weight == 0.5 and groups.replay.mode == original.train_cfg.mode
    assert sorted(groups.replay.tasks) == [f'replay_{t}' for t in tasks]
    assert cfg.model.tasks.replay_detection.likelihood_group == 'detection'
    # the user's data trains no captioning here: the replayed captioner keeps its own words
    assert 'vocabulary_of' not in cfg.model.tasks.replay_captioning
    assert cfg.val_evaluator.replay_detection.ann_file == original.val_evaluator.detection.ann_file
    # the base's val images, encoded once for its replayed tasks; the user's read their own
    for key in ('val', 'test'):
        assert cfg[f'{key}_cfg'].shared_images == [
            [t for t in cfg[f'{key}_dataloader'] if t.startswith('replay_')]]
    init_default_scope('up2core')
    replayed = DATASETS.build(cfg.train_dataloader.replay_detection.dataset)[0]['data_samples']
    mine = DATASETS.build(cfg.train_dataloader.detection.dataset)[0]['data_samples']
    assert replayed.task == 'replay_detection' and mine.task == 'detection'
    assert 'shapes_generalist_e2e' in replayed.img_path
    assert mine.img_path.startswith(str(example.parent))
    captions = DATASETS.build(cfg.val_dataloader.replay_captioning.dataset)[0]['data_samples']
    assert captions.task == 'replay_captioning'
    # one model holds them; a replay task scores with its task's learned temperature
    model = MODELS.build(cfg.model)
    assert model.tasks['replay_classification'].likelihood_group == 'classification'
    # the whole example (captions too): the replayed captioner describes the base's images
    # among the finetuned captioner's words (Task.replay_options), its detector keeps its names
    both = load_config(str(TINY_GENERALIST))
    whole = tmp_path / 'whole.yaml'
    whole.write_text(example.read_text().replace('path: .', f'path: {example.parent}'))
    apply_data_file(both, load_data_file(whole), replay=0.5)
    assert both.model.tasks.replay_captioning.vocabulary_of == 'captioning'
    assert both.model.tasks.replay_captioning.vocabulary == \
        original.model.tasks.captioning.vocabulary
    assert both.model.tasks.replay_detection.class_names == \
        original.model.tasks.detection.class_names
    with pytest.raises(DataError, match='--replay 0: give a weight > 0'):
        apply_data_file(load_config(str(TINY_GENERALIST)), load_data_file(path), replay=0)


def test_keep_names_scores_the_configs_training_names_after_the_datas(example, tmp_path,
                                                                      capsys):
    """``--keep-names``: a named task trains among the data's names then the config's own
    training names (``Task.kept_names_options``): the data's labels keep their indices,
    evaluation keeps the data's names, the config's held-out (novel) names stay out, and tasks
    without names are left as they are."""
    from mmengine.registry import init_default_scope

    from tests.conftest import TINY_GENERALIST
    from up2core.registry import DATASETS
    from up2core.task import keep_names

    assert keep_names(['b', 'a'], ['a', 'c', 'c']) == ['b', 'a', 'c']
    path = tmp_path / 'data.yaml'
    path.write_text(example.read_text().replace('path: .', f'path: {example.parent}'))
    original = load_config(str(TINY_GENERALIST))
    plain, kept = load_config(str(TINY_GENERALIST)), load_config(str(TINY_GENERALIST))
    apply_data_file(plain, load_data_file(path))
    apply_data_file(kept, load_data_file(path), keep_names=True)
    for task in ('detection', 'segmentation', 'classification'):
        mine, base = list(plain.model.tasks[task].class_names), \
            list(original.model.tasks[task].class_names)
        assert list(kept.model.tasks[task].class_names) == \
            mine + [n for n in base if n not in mine], task
        assert kept.model.tasks[task].get('test_class_names') == \
            plain.model.tasks[task].get('test_class_names')
    novel = set(original.model.tasks.detection.test_class_names) - \
        set(original.model.tasks.detection.class_names)
    assert novel and not novel & set(kept.model.tasks.detection.class_names)
    assert kept.model.tasks.captioning == plain.model.tasks.captioning
    init_default_scope('up2core')
    built = DATASETS.build(kept.train_dataloader.detection.dataset)
    labels = {int(label) for i in range(len(built))
              for label in built[i]['data_samples'].gt_instances.labels}
    assert labels and max(labels) < len(plain.model.tasks.detection.class_names)
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith('up2: --keep-names: '))
    assert {'detection', 'segmentation', 'classification'} <= set(
        line.split(': ', 2)[2].split(' also ')[0].split(', ')), line
    assert 'captioning' not in line and 'retrieval' not in line


def test_the_data_file_changes_what_is_about_the_data_and_says_what_it_keeps(example, tmp_path,
                                                                            capsys):
    """``settings`` (image size, steps) and a task's ``options`` (its prompt) go into the
    config, the command line's own keys win, and one ``up2:`` line says what stays."""
    text = example.read_text().replace(
        'classification: {train: cls/train, val: cls/val}',
        "classification: {train: cls/train, val: cls/val, options: {prompt: 'a {} shape.'}}")
    text = text.replace('path: .', f'path: {example.parent}')
    text += 'settings: {image_size: 160, max_iters: 50}\n'
    data = load_data_file(write(tmp_path, text))
    cfg = load_config('up2_tiny_shapes_generalist')
    apply_data_file(cfg, data)
    sides = {step['max_side'] for loader in cfg.train_dataloader.values()
             for step in loader.dataset.pipeline if step['type'] == 'LimitImageSize'}
    assert sides == {160}
    assert cfg.train_cfg.max_iters == 50 and cfg.param_scheduler[-1]['end'] == 50
    assert cfg.model.tasks.classification.prompt == 'a {} shape.'
    err = capsys.readouterr().err
    assert ("up2: --data data.yaml keeps of the config: images at most 160 px a side, 30 "
            "proposals per image, 50 steps, classification's prompt 'a {} shape.'") in err, err
    cfg = load_config('up2_tiny_shapes_generalist', ['train_cfg.max_iters=70'])
    apply_data_file(cfg, data, overridden={'train_cfg.max_iters'})
    assert cfg.train_cfg.max_iters == 70  # the command line wins


def test_each_split_of_a_caption_file_reads_its_own_split(example):
    """A Karpathy json names every split; the readers of --data are told which to read."""
    cfg = load_config('up2_tiny_shapes_generalist')
    apply_data_file(cfg, load_data_file(example))
    assert cfg.train_dataloader.captioning.dataset.split == 'train'
    assert cfg.val_dataloader.retrieval.dataset.split == 'val'
