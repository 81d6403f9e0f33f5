# COCO captions with the Karpathy split (dataset_coco.json), images under data/coco/.
coco_caption_root = 'data/coco'
coco_retrieval_train = dict(
    batch_size=128, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CaptionDataset', data_root=coco_caption_root,
                 ann_file='annotations/dataset_coco.json', split='train',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='Resize', scale=(384, 384), keep_ratio=False),
                           dict(type='SampleCaption'),
                           dict(type='PackUP2Inputs', task='retrieval', data_keys=('texts',))]))
coco_retrieval_test = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CaptionDataset', data_root=coco_caption_root,
                 ann_file='annotations/dataset_coco.json', split='test', test_mode=True,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='Resize', scale=(384, 384), keep_ratio=False),
                           dict(type='PackUP2Inputs', task='retrieval', data_keys=('texts',))]))
coco_retrieval_evaluator = dict(type='RetrievalRecall', ks=(1, 5, 10))
coco_retrieval_task = dict(type='retrieval', gather=True)

# Captioning on the same Karpathy split: train on 'train' (+ 'restval'), report on 'test'.
coco_captioning_train = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CaptionDataset', data_root=coco_caption_root,
                 ann_file='annotations/dataset_coco.json', split='train',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='Resize', scale=(384, 384), keep_ratio=False),
                           dict(type='SampleCaption'),
                           dict(type='PackUP2Inputs', task='captioning', data_keys=('texts',))]))
coco_captioning_test = dict(
    batch_size=32, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CaptionDataset', data_root=coco_caption_root,
                 ann_file='annotations/dataset_coco.json', split='test', test_mode=True,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='Resize', scale=(384, 384), keep_ratio=False),
                           dict(type='PackUP2Inputs', task='captioning', data_keys=('texts',))]))
# The COCO caption evaluation tokenises with the PTB tokenizer (Java); 'simple' needs none.
coco_captioning_evaluator = dict(type='CaptionMetric', tokenizer='ptb')
# Candidates: the ~10k tokens of the training captions (the full 50k RoBERTa vocabulary also
# works: vocabulary='full', at about 5x the candidate-encoding cost per step).  Beam 3, as is
# customary for COCO captions.
coco_captioning_task = dict(
    type='captioning', max_length=20, beam_size=3,
    vocabulary=dict(ann_file=coco_caption_root + '/annotations/dataset_coco.json',
                    split='train'))
