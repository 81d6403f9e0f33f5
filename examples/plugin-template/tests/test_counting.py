"""Run inside an environment where UP2 and this plugin are installed (tox env `plugin`)."""

import subprocess
import sys

from up2core.registry import DATASETS, METRICS


def test_plugin_is_discovered_and_listed():
    import up2core

    info = {p.name: p for p in up2core.list_plugins()}['counting']
    assert info.status == 'loaded' and info.distribution == 'up2-example-counting'
    assert info.registered == {'datasets': ['ShapesCountDataset'], 'metrics': ['CountAccuracy']}
    out = subprocess.run([sys.executable, '-m', 'up2core.cli', 'plugins'], capture_output=True,
                         text=True, check=True).stdout
    assert 'counting  [loaded]  up2-example-counting 0.1.0' in out


def test_names_resolve_and_work(tmp_path):
    from up2core.data.shapes import ShapesSpec, generate_shapes

    generate_shapes(tmp_path, ShapesSpec(num_train=0, num_val=5, image_size=64))
    dataset = DATASETS.build(dict(type='ShapesCountDataset', data_root=str(tmp_path),
                                  ann_file='annotations/instances_val.json',
                                  data_prefix=dict(img='images/val/')))
    assert len(dataset) == 5 and all(1 <= s['gt_count'] <= 4 for s in dataset)
    metric = METRICS.build(dict(type='CountAccuracy'))
    metric.process(None, [dict(pred_count=s['gt_count'], gt_count=s['gt_count']) for s in dataset])
    assert metric.evaluate(5) == {'counting/accuracy': 100.0, 'counting/mae': 0.0}
