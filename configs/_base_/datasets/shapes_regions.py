# Shapes detection and instance segmentation with colour-shape category names ("red star"):
# annotations/instances_colour_*.json, written by the Shapes generator (generated on first use).
# The four held-out names never occur in train: training scores proposals against the 52 seen
# names, evaluation against all 56, and AP is reported for seen and novel names apart.
regions_data_root = 'data/shapes'
shapes_prepare = dict(type='shapes', num_train=2000, num_val=300, image_size=128, seed=0)

#: every colour-shape name, in the category order of instances_colour_*.json
shapes_all_names = [
    'red circle', 'red square', 'red triangle', 'red diamond', 'red pentagon', 'red hexagon',
    'red star', 'red cross', 'green circle', 'green square', 'green triangle', 'green diamond',
    'green pentagon', 'green hexagon', 'green star', 'green cross', 'blue circle', 'blue square',
    'blue triangle', 'blue diamond', 'blue pentagon', 'blue hexagon', 'blue star', 'blue cross',
    'yellow circle', 'yellow square', 'yellow triangle', 'yellow diamond', 'yellow pentagon',
    'yellow hexagon', 'yellow star', 'yellow cross', 'purple circle', 'purple square',
    'purple triangle', 'purple diamond', 'purple pentagon', 'purple hexagon', 'purple star',
    'purple cross', 'orange circle', 'orange square', 'orange triangle', 'orange diamond',
    'orange pentagon', 'orange hexagon', 'orange star', 'orange cross', 'white circle',
    'white square', 'white triangle', 'white diamond', 'white pentagon', 'white hexagon',
    'white star', 'white cross',
]
#: the colour-shape pairs that never occur in the train split
shapes_novel_names = ['red star', 'blue circle', 'green triangle', 'yellow hexagon']
shapes_seen_names = [
    'red circle', 'red square', 'red triangle', 'red diamond', 'red pentagon', 'red hexagon',
    'red cross', 'green circle', 'green square', 'green diamond', 'green pentagon',
    'green hexagon', 'green star', 'green cross', 'blue square', 'blue triangle', 'blue diamond',
    'blue pentagon', 'blue hexagon', 'blue star', 'blue cross', 'yellow circle', 'yellow square',
    'yellow triangle', 'yellow diamond', 'yellow pentagon', 'yellow star', 'yellow cross',
    'purple circle', 'purple square', 'purple triangle', 'purple diamond', 'purple pentagon',
    'purple hexagon', 'purple star', 'purple cross', 'orange circle', 'orange square',
    'orange triangle', 'orange diamond', 'orange pentagon', 'orange hexagon', 'orange star',
    'orange cross', 'white circle', 'white square', 'white triangle', 'white diamond',
    'white pentagon', 'white hexagon', 'white star', 'white cross',
]
shapes_seen_novel = dict(seen=shapes_seen_names, novel=shapes_novel_names)


def _pipeline(task, train, with_mask):
    steps = [dict(type='mmdet.LoadImageFromFile')]
    if train:
        steps += [dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=with_mask),
                  dict(type='RandomFlip', prob=0.5)]
    # Test images of any size are resized as the training images are (128 px).
    steps += [dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=True),
              dict(type='mmdet.PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                              'flip', 'flip_direction')),
              dict(type='PackUP2Inputs', task=task)]
    return steps


def _loader(task, split, with_mask):
    train = split == 'train'
    return dict(
        batch_size=8 if train else 50, num_workers=2, persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=train),
        collate_fn=dict(type='pseudo_collate'),
        dataset=dict(type='CocoInstances', data_root=regions_data_root, prepare=shapes_prepare,
                     ann_file=f'annotations/instances_colour_{split}.json',
                     data_prefix=dict(img=f'images/{split}/'),
                     classes=shapes_seen_names if train else shapes_all_names,
                     filter_cfg=dict(filter_empty_gt=train), test_mode=not train,
                     pipeline=_pipeline(task, train, with_mask)))


detection_train = _loader('detection', 'train', False)
detection_val = _loader('detection', 'val', False)
segmentation_train = _loader('segmentation', 'train', True)
segmentation_val = _loader('segmentation', 'val', True)
detection_evaluator = dict(type='GroupedCocoMetric', metric='bbox',
                           ann_file=f'{regions_data_root}/annotations/instances_colour_val.json',
                           category_groups=shapes_seen_novel)
segmentation_evaluator = dict(type='GroupedCocoMetric', metric='segm',
                              ann_file=f'{regions_data_root}/annotations/instances_colour_val.json',
                              category_groups=shapes_seen_novel)
detection_task = dict(type='detection', class_names=shapes_seen_names,
                      test_class_names=shapes_all_names)
segmentation_task = dict(type='segmentation', class_names=shapes_seen_names,
                         test_class_names=shapes_all_names)
