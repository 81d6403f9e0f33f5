# ImageNet-1k in the usual layout: data/imagenet/{train,val}/ + meta/{train,val}.txt lists and
# meta/classnames.txt (one human-readable name per line, in label order).
imagenet_root = 'data/imagenet'
imagenet_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResize', scale=(384, 384), ratio_range=(0.8, 1.25), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackUP2Inputs', task='classification', data_keys=('gt_label',)),
]
imagenet_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(384, 384), keep_ratio=False),
    dict(type='PackUP2Inputs', task='classification', data_keys=('gt_label',)),
]
imagenet_train = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ImageListDataset', data_root=imagenet_root, ann_file='meta/train.txt',
                 classes='meta/classnames.txt', data_prefix=dict(img='train'),
                 pipeline=imagenet_train_pipeline))
imagenet_val = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ImageListDataset', data_root=imagenet_root, ann_file='meta/val.txt',
                 classes='meta/classnames.txt', data_prefix=dict(img='val'), test_mode=True,
                 pipeline=imagenet_test_pipeline))
imagenet_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
imagenet_task = dict(type='classification', class_names=imagenet_root + '/meta/classnames.txt',
                     prompt='a photo of a {}.')
