"""Entity decoding and candidate pairs of the joint model, alone (issue 21: the forward pass on a GPU ran at
1,810 sentences/s because of per-sentence work in Python, BENCHMARKS 9.1).

The model's NER logits for real sentences (all of ADE, batches of ``--batch-size`` sorted by length) are
computed once, untimed; then ``decode_entities`` + ``candidate_pairs`` run over every batch ``--repeat`` times.
Reports the best repeat's microseconds per sentence and sentences per second on one thread. ``--code-from DIR``
imports ``modeling_ade`` from another checkout (``git worktree add /tmp/before REV``) to time older code on the
same logits.

    .venv/bin/python benchmarks/bench_decode.py --model runs/bench/ade_fold0 [--code-from /tmp/before]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a saved joint model folder (train.py ade / joint)")
    parser.add_argument(
        "--data",
        default=str(REPO.parent / "shared/data/ade_corpus_v2/spert_10fold/ade_full.json"),
        help="SpERT JSON file whose sentences are decoded (default: all 4,272 ADE sentences)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="sentences per batch (default: 256)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over all batches (default: 5)")
    parser.add_argument("--code-from", help="checkout whose modeling_ade is timed (default: this one)")
    args = parser.parse_args(argv)
    if not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model}: no config.json there (a saved joint model folder is needed)")
    if not Path(args.data).is_file():
        parser.error(f"--data {args.data}: no such file")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(args.code_from).resolve() if args.code_from else REPO))
    modeling = importlib.import_module("modeling_ade.hub.modeling_joint_ner_re")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = modeling.JointNerReForAdeExtraction.from_pretrained(args.model).eval()
    sentences = sorted((doc["tokens"] for doc in json.loads(Path(args.data).read_text())), key=len)
    batches = []
    with torch.inference_mode():
        for start in range(0, len(sentences), args.batch_size):
            enc = tokenizer(
                sentences[start : start + args.batch_size],
                is_split_into_words=True,
                truncation=True,
                max_length=128,
                padding=True,
                return_tensors="pt",
            )
            word_index = torch.tensor(
                [[0 if w is None else w + 1 for w in enc.word_ids(i)] for i in range(len(enc["input_ids"]))]
            )
            hidden = model.encoder(enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            batches.append((model.ner_classifier(hidden), word_index))
    seconds = []
    with torch.inference_mode():
        for _ in range(args.repeat):
            begin = time.perf_counter()
            for logits, word_index in batches:
                spans, _ = model.decode_entities(logits, word_index)
                model.candidate_pairs(spans)
            seconds.append(time.perf_counter() - begin)
    best = min(seconds)
    print(
        json.dumps(
            {
                "code": modeling.__file__,
                "sentences": len(sentences),
                "batch_size": args.batch_size,
                "best_seconds": round(best, 4),
                "microseconds_per_sentence": round(best / len(sentences) * 1e6, 1),
                "sentences_per_second": round(len(sentences) / best),
            }
        )
    )


if __name__ == "__main__":
    main()
