# Shapes classification (dominant shape of the image, 8 classes); generated on first use.
classification_data_root = 'data/shapes'
classification_prepare = dict(type='shapes', num_train=2000, num_val=300, image_size=128, seed=0)

classification_pipeline = [
    dict(type='LoadImageFromFile'),
    # photos met at inference are brought to the training size (128); Shapes itself is untouched
    dict(type='LimitImageSize', max_side=128),
    dict(type='PackUP2Inputs', task='classification', data_keys=('gt_label',)),
]
classification_train = dict(
    batch_size=32, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ImageListDataset', data_root=classification_data_root, prepare=classification_prepare,
                 ann_file='classification/train.txt', classes='classification/classes.txt',
                 pipeline=classification_pipeline))
classification_val = dict(
    batch_size=50, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ImageListDataset', data_root=classification_data_root, prepare=classification_prepare,
                 ann_file='classification/val.txt', classes='classification/classes.txt',
                 test_mode=True, pipeline=classification_pipeline))
classification_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
# The Shapes categories (classification/classes.txt once generated), listed here because the
# model is built before the datasets generate the data.
classification_task = dict(
    type='classification', prompt='a picture dominated by a {}.',
    class_names=['circle', 'square', 'triangle', 'diamond', 'pentagon', 'hexagon', 'star',
                 'cross'])
