# Shapes image-caption retrieval (4 captions per image); generated on first use.
retrieval_data_root = 'data/shapes'
retrieval_prepare = dict(type='shapes', num_train=2000, num_val=300, image_size=128, seed=0)

retrieval_train = dict(
    batch_size=32, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CaptionDataset', data_root=retrieval_data_root, prepare=retrieval_prepare,
                 ann_file='annotations/captions_train.json', data_prefix=dict(img='images/train'),
                 pipeline=[dict(type='LoadImageFromFile'), dict(type='SampleCaption'),
                           dict(type='LimitImageSize', max_side=128),
                           dict(type='PackUP2Inputs', task='retrieval', data_keys=('texts',))]))
retrieval_val = dict(
    batch_size=50, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CaptionDataset', data_root=retrieval_data_root, prepare=retrieval_prepare,
                 ann_file='annotations/captions_val.json', data_prefix=dict(img='images/val'),
                 test_mode=True,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LimitImageSize', max_side=128),
                           dict(type='PackUP2Inputs', task='retrieval', data_keys=('texts',))]))
retrieval_evaluator = dict(type='RetrievalRecall', ks=(1, 5, 10))
retrieval_task = dict(type='retrieval')
