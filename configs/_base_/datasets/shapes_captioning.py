# Shapes image captioning (4 reference captions per image); generated on first use.
captioning_data_root = 'data/shapes'
captioning_prepare = dict(type='shapes', num_train=2000, num_val=300, image_size=128, seed=0)

captioning_train = dict(
    batch_size=32, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CaptionDataset', data_root=captioning_data_root,
                 prepare=captioning_prepare, ann_file='annotations/captions_train.json',
                 data_prefix=dict(img='images/train'),
                 pipeline=[dict(type='LoadImageFromFile'), dict(type='SampleCaption'),
                           dict(type='LimitImageSize', max_side=128),
                           dict(type='PackUP2Inputs', task='captioning', data_keys=('texts',))]))
captioning_val = dict(
    batch_size=50, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CaptionDataset', data_root=captioning_data_root,
                 prepare=captioning_prepare, ann_file='annotations/captions_val.json',
                 data_prefix=dict(img='images/val'), test_mode=True,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LimitImageSize', max_side=128),
                           dict(type='PackUP2Inputs', task='captioning', data_keys=('texts',))]))
captioning_evaluator = dict(type='CaptionMetric', tokenizer='simple')
# The restricted vocabulary: the tokens of the training captions (about 60), read when training
# starts and then saved in every checkpoint.  Shapes captions run to about 40 tokens.
captioning_task = dict(
    type='captioning', max_length=48, beam_size=1,
    vocabulary=dict(ann_file=captioning_data_root + '/annotations/captions_train.json'))
