# Reads the Shapes val split (generate it with `up2 data shapes --out data/shapes`).
default_scope = 'up2core'
dataset = dict(type='ShapesCountDataset', data_root='data/shapes',
               ann_file='annotations/instances_val.json', data_prefix=dict(img='images/val/'))
evaluator = dict(type='CountAccuracy')
