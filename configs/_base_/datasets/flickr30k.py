# Flickr30k with the Karpathy split (dataset_flickr30k.json), images under
# data/flickr30k/flickr30k-images/: the paper's zero-shot retrieval test (1k test images, 5
# captions each).  Only a test loader: the paper trains no model on Flickr30k.
flickr30k_root = 'data/flickr30k'
flickr30k_retrieval_test = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='CaptionDataset', data_root=flickr30k_root,
                 ann_file='annotations/dataset_flickr30k.json',
                 data_prefix=dict(img='flickr30k-images'), split='test', test_mode=True,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='Resize', scale=(384, 384), keep_ratio=False),
                           dict(type='PackUP2Inputs', task='flickr30k_retrieval',
                                data_keys=('texts',))]))
flickr30k_retrieval_evaluator = dict(type='RetrievalRecall', ks=(1, 5, 10))
# An evaluation-only task: the retrieval task's parameters and temperature (likelihood group),
# never sampled in training (it has no train loader), scored on Flickr30k.
flickr30k_retrieval_task = dict(type='retrieval', gather=True, likelihood_group='retrieval')
