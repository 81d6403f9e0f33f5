"""A task written outside UP2 reads a user's dataset file through the plugin contract alone
(``Task.data_layout``, ``Task.data_options``, ``register_layout``): nothing in up2core names it."""

from __future__ import annotations

from up2core.config import load_config
from up2core.data.dataset_file import apply_data_file, load_data_file
from up2core.data.layouts import LAYOUTS, DataLayout, register_layout
from up2core.registry import TASKS


class ListFileLayout(DataLayout):
    """A plugin's own layout: ``<image path> <label>`` lines, names in ``names.txt`` beside."""

    name = 'outside_list_file'

    def names(self, source):
        where = source.split('train')
        names = (where.ann.parent / 'names.txt').read_text().split()
        return {'train': names, 'val': names}

    def dataset(self, source, split, base, names):
        return dict(type='ImageListDataset', data_root=str(source.root),
                    ann_file=str(source.split(split).ann), classes=names['train'],
                    pipeline=base['pipeline'])


def test_an_outside_task_and_layout_take_part_without_the_core_knowing_them(tmp_path):
    from up2_classification.task import ClassificationTask

    class OutsideTask(ClassificationTask):
        data_layout = 'outside_list_file'

        @classmethod
        def data_options(cls, layout, source, names):
            return {'class_names': [f'{n} part' for n in names['train']]}

    register_layout(ListFileLayout())
    TASKS.register_module(name='outside_list_task', module=OutsideTask, force=True)
    try:
        (tmp_path / 'names.txt').write_text('gear\nbolt\n')
        (tmp_path / 'train.txt').write_text('a.png 0\n')
        (tmp_path / 'val.txt').write_text('b.png 1\n')
        data = tmp_path / 'data.yaml'
        data.write_text('classification: {train: {ann: train.txt}, val: {ann: val.txt}}\n')
        cfg = load_config('up2_tiny_shapes_classification',
                          ['model.tasks.classification.type=outside_list_task'])
        apply_data_file(cfg, load_data_file(data))
        assert cfg.model.tasks.classification.class_names == ['gear part', 'bolt part']
        dataset = cfg.train_dataloader.classification.dataset
        assert dataset.type == 'ImageListDataset' and dataset.ann_file == str(tmp_path /
                                                                              'train.txt')
        assert dataset.classes == ['gear', 'bolt'] and 'prepare' not in dataset
        assert cfg.val_dataloader.classification.dataset.ann_file.endswith('val.txt')
    finally:
        LAYOUTS.pop('outside_list_file', None)
        TASKS.module_dict.pop('outside_list_task', None)
