"""The data card: what a finetune replayed is recorded with its checkpoint."""

from __future__ import annotations

from mmengine.config import Config

from up2core.engine.data_card import replay_record


def test_a_replaying_run_records_its_weight_share_step_and_data():
    cfg = Config(dict(
        train_dataloader=dict(
            detection=dict(dataset=dict(data_root='mine', ann_file='a/train.json')),
            replay_detection=dict(dataset=dict(data_root='data/shapes',
                                               ann_file='annotations/inst.json')),
            replay_captioning=dict(dataset=dict(data_root='data/shapes',
                                                ann_file='annotations/caps.json'))),
        train_cfg=dict(groups=dict(
            yours=dict(tasks=['detection'], weight=1.0, mode='mixed'),
            replay=dict(tasks=['replay_detection', 'replay_captioning'], weight=0.3,
                        mode='shared')))))
    assert replay_record(cfg) == {
        'weight': 0.3, 'share_of_steps': round(0.3 / 1.3, 4), 'mode': 'shared',
        'tasks': {'replay_detection': {'data_root': 'data/shapes',
                                       'ann_file': 'annotations/inst.json'},
                  'replay_captioning': {'data_root': 'data/shapes',
                                        'ann_file': 'annotations/caps.json'}}}
    assert replay_record(Config(dict(train_cfg=dict(max_iters=5)))) is None
