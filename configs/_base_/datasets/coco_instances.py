# COCO 2017 instances (detection and instance segmentation) in mmdet's usual layout:
# data/coco/{train2017,val2017}/ and data/coco/annotations/instances_{train,val}2017.json.
coco_root = 'data/coco'
coco_classes = [
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich',
    'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
    'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book',
    'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush',
]


def _coco_pipeline(task, train, with_mask):
    steps = [dict(type='mmdet.LoadImageFromFile')]
    if train:
        steps += [dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=with_mask),
                  dict(type='RandomFlip', prob=0.5),
                  # mmdet's Resize (boxes and masks too): a bare 'Resize' would resolve to
                  # mmcv's, which cannot scale mmdet's box structures
                  dict(type='mmdet.RandomChoiceResize', resize_type='mmdet.Resize',
                       keep_ratio=True,
                       scales=[(1333, s) for s in range(480, 801, 32)])]
    else:
        steps += [dict(type='mmdet.Resize', scale=(1333, 800), keep_ratio=True)]
    steps += [dict(type='mmdet.PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                              'flip', 'flip_direction')),
              dict(type='PackUP2Inputs', task=task)]
    return steps


def _coco_loader(task, split, with_mask):
    train = split == 'train'
    return dict(
        batch_size=2 if train else 1, num_workers=4, persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=train),
        collate_fn=dict(type='pseudo_collate'),
        dataset=dict(type='CocoInstances', data_root=coco_root,
                     ann_file=f'annotations/instances_{split}2017.json',
                     data_prefix=dict(img=f'{split}2017/'), classes=coco_classes,
                     filter_cfg=dict(filter_empty_gt=train, min_size=32), test_mode=not train,
                     pipeline=_coco_pipeline(task, train, with_mask)))


coco_detection_train = _coco_loader('detection', 'train', False)
coco_detection_val = _coco_loader('detection', 'val', False)
coco_segmentation_train = _coco_loader('segmentation', 'train', True)
coco_segmentation_val = _coco_loader('segmentation', 'val', True)
coco_detection_evaluator = dict(type='GroupedCocoMetric', metric='bbox',
                                ann_file=coco_root + '/annotations/instances_val2017.json')
coco_segmentation_evaluator = dict(type='GroupedCocoMetric', metric='segm',
                                   ann_file=coco_root + '/annotations/instances_val2017.json')
coco_detection_task = dict(type='detection', class_names=coco_classes)
coco_segmentation_task = dict(type='segmentation', class_names=coco_classes)
