"""Are decoded captions made of words?  Free decoding vs whole-word decoding, one checkpoint.

    python benchmarks/caption_words.py CHECKPOINT [--config up2_tiny_shapes_generalist]
        [--images 300] [--beam 1] [--out benchmarks/results/caption_words.json]

Captions every val image (Shapes val: the first ``--images``) twice with the same weights: with
the task's word rule off (``whole_words=False, no_repeat_words=False``, every candidate token
free at every step, as before the rule existed) and on (the packaged default,
:mod:`up2_captioning.words`).  For each it prints and saves:

* ``out_of_vocabulary``: the share of captions holding a word that no training caption holds
  (words as the caption metric tokenises them), and the most frequent such words;
* ``repeated_word``: the share with a word written twice in a row ("a small small");
* CIDEr-D (x100) and BLEU-4 against the val references, as ``up2 test`` computes them.

A measurement on a trained checkpoint (the main job's), never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter
from pathlib import Path

import torch


def _val_images(model, count: int) -> tuple[list[Path], dict[str, list[str]]]:
    """The first ``count`` captioning val images and every val image's reference captions."""
    from up2core.data.captions import read_caption_file

    dataset = model.cfg.val_dataloader['captioning']['dataset']
    root = Path(dataset['data_root'])
    folder = root / dataset['data_prefix']['img']
    references = {}
    for file_name, _, captions in read_caption_file(root / dataset['ann_file']):
        references[Path(file_name).name] = list(captions)
    files = sorted(folder / name for name in references)[:count]
    return files, {f.name: references[f.name] for f in files}


def _caption(model, files: list[Path], beam: int, batch: int = 16) -> dict[str, str]:
    from mmengine.dataset import Compose, pseudo_collate
    from up2_captioning.task import detokenize

    task = model.tasks['captioning']
    pipeline = Compose(list(model.cfg.val_dataloader['captioning']['dataset']['pipeline']))
    out = {}
    for start in range(0, len(files), batch):
        chunk = files[start:start + batch]
        samples = [pipeline(dict(img_path=str(f), texts=['unused'])) for f in chunk]
        inputs = model.data_preprocessor(pseudo_collate(samples), False)['inputs']
        generated = task.generate(model, inputs, beam_size=beam)
        for f, ids in zip(chunk, generated.tokens):
            out[f.name] = detokenize(model.text_encoder.tokenizer, ids)
    return out


def word_faults(captions: dict[str, str], known: set[str]) -> dict:
    """Shares of captions with an unknown word and with a word repeated in a row."""
    from up2_captioning.metric import simple_tokenize

    unknown, repeated, unknown_words = 0, 0, Counter()
    for text in captions.values():
        words = simple_tokenize(text).split()
        bad = [w for w in words if w not in known]
        unknown += bool(bad)
        unknown_words.update(bad)
        repeated += any(a == b for a, b in zip(words, words[1:]))
    n = max(len(captions), 1)
    return {'out_of_vocabulary': unknown / n, 'repeated_word': repeated / n,
            'unknown_words': dict(unknown_words.most_common(10))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('--config', default='up2_tiny_shapes_generalist')
    parser.add_argument('--images', type=int, default=300)
    parser.add_argument('--beam', type=int, default=1)
    parser.add_argument('--out', default='benchmarks/results/caption_words.json')
    args = parser.parse_args(argv)

    from up2_captioning.metric import caption_scores, simple_tokenize, tokenize_captions
    from up2_captioning.vocabulary import vocabulary_texts

    from up2core.apis import init_model

    model = init_model(args.config, args.checkpoint)
    task = model.tasks['captioning']
    known = {w for text in vocabulary_texts(task.vocabulary) for w in simple_tokenize(text).split()}
    files, references = _val_images(model, args.images)
    refs = tokenize_captions(references)
    rows = {}
    with torch.no_grad():
        for name, rule in (('free', False), ('whole_words', True)):
            task.whole_words = task.no_repeat_words = rule
            task._words = None
            start = time.perf_counter()
            captions = _caption(model, files, args.beam)
            seconds = time.perf_counter() - start
            scores = caption_scores(tokenize_captions({k: [v] for k, v in captions.items()}),
                                    refs)
            rows[name] = {**word_faults(captions, known), 'CIDEr': scores['CIDEr'] * 100,
                          'BLEU-4': scores['BLEU-4'] * 100, 'seconds': seconds,
                          'examples': dict(list(captions.items())[:5])}
            r = rows[name]
            print(f"{name:12s} captions with an unknown word {r['out_of_vocabulary']:6.1%}  "
                  f"with a repeated word {r['repeated_word']:6.1%}  CIDEr {r['CIDEr']:6.1f}  "
                  f"BLEU-4 {r['BLEU-4']:5.1f}  ({seconds:.1f} s)  unknown: "
                  f"{', '.join(r['unknown_words']) or '-'}", flush=True)
    result = {'checkpoint': args.checkpoint, 'config': args.config, 'images': len(files),
              'beam': args.beam, 'known_words': len(known), 'torch': torch.__version__,
              'machine': platform.machine(), 'rows': rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {args.out}')
    return result


if __name__ == '__main__':
    main()
