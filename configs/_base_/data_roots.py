# Where each dataset family lives.  One override moves a whole family: every path of the config
# under the old root follows (dataloaders, evaluator annotation files, vocabulary files), e.g.
#   up2 train up2_tiny_shapes --cfg-options shapes_data_root=/mnt/data/shapes
# (up2core.config.move_data_root).  The dataset base files spell these paths out, because MMEngine
# lets no two sibling base files share a variable.
shapes_data_root = 'data/shapes'
coco_data_root = 'data/coco'
imagenet_data_root = 'data/imagenet'
flickr30k_data_root = 'data/flickr30k'
