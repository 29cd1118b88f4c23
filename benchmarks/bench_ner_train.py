"""BERT-CRF training (``train.py ner``) against the stock ``Trainer`` on the same sentences (issue 17, BENCHMARKS 11.4).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ner_train.py --threads 1 \\
        --output runs/bench/ner_train.json

One epoch over the first ``--train-sentences`` HealthNER training sentences, batch 16, m3e-small, each run in its
own process, runs alternating, medians of ``--repeats``:

- ours: ``train.py ner`` (BERT-CRF: two linear layers + CRF loss; the training step does no Viterbi decoding,
  section 7.1), its own length-grouped batches; time of its training loop (``train_seconds_per_epoch``);
- stock: ``AutoModelForTokenClassification`` (one linear layer, cross-entropy) + ``Trainer`` with length grouping
  (``train_sampling_strategy="group_by_length"``) + ``DataCollatorForTokenClassification``, on the very same
  sub-word ids and labels (``encode_sentences`` of ``train.py ner``), the paper's lr and weight decay; time from
  ``on_train_begin`` to ``on_train_end``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZE = 16


def stock(args) -> dict:
    """One epoch of the stock Trainer (run in its own process by ``main``)."""
    from bench_scale import stock_training_args, train_loop_timer  # the stock runs of BENCHMARKS 5 and 11.3
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
        set_seed,
    )

    sys.path.insert(0, str(REPO_ROOT))
    from datasets_scripts.chinese_healthner import load_healthner
    from modeling_ade.encoders import resolve_model_name
    from modeling_ade.ner_data import (
        bio_label_list,
        encode_sentences,
        load_tokenizer,
        tagged_sentences_from_dataset,
    )

    path = resolve_model_name(args.model)
    data = tagged_sentences_from_dataset(
        load_healthner("train")["train"], "tokens", "ner_tags", "Chinese HealthNER train"
    )
    data = type(data)(data.words[: args.train_sentences], data.tags[: args.train_sentences], data.label_names)
    labels = bio_label_list([data])
    tokenizer = load_tokenizer(args.model, path)
    windows, _ = encode_sentences(
        data, tokenizer, {label: i for i, label in enumerate(labels)}, args.max_length, with_labels=True
    )
    keys = ("input_ids", "attention_mask", "token_type_ids", "labels")
    features = [{k: w.features[k] for k in keys if k in w.features} for w in windows]

    set_seed(42)
    model = AutoModelForTokenClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    timer = train_loop_timer()
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(
            model=model,
            args=stock_training_args(scratch, 4e-5, grouped=True),  # the paper's lr
            train_dataset=features,
            data_collator=DataCollatorForTokenClassification(tokenizer),
            processing_class=tokenizer,
            callbacks=[timer],
        )
        trainer.train()
    return {"seconds": timer.seconds, "sentences": len(features)}


def run(command: list[str], threads: int) -> None:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="m3e-small", help="encoder (default: m3e-small)")
    parser.add_argument("--train-sentences", type=int, default=1000, help="first N training sentences (1000)")
    parser.add_argument(
        "--max-length", type=int, default=512, help="tokens per window, as train.py ner (512)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (default: 3)")
    parser.add_argument("--output", type=Path, default=Path("runs/bench/ner_train.json"), help="JSON result")
    parser.add_argument(
        "--stock-result", type=Path, default=None, help=argparse.SUPPRESS
    )  # the stock process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.stock_result is not None:
        args.stock_result.write_text(json.dumps(stock(args)))
        return
    seconds: dict[str, list[float]] = {"ours": [], "stock_grouped": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            out = Path(scratch) / f"ours_{repeat}"
            run(
                [
                    sys.executable,
                    "train.py",
                    "ner",
                    "--model",
                    args.model,
                    "--max-train-samples",
                    str(args.train_sentences),
                    "--max-eval-samples",
                    "8",
                    "--epochs",
                    "1",
                    "--batch-size",
                    str(BATCH_SIZE),
                    "--max-length",
                    str(args.max_length),
                    "--report-to",
                    "none",
                    "--output-dir",
                    str(out),
                ],
                args.threads,
            )
            metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
            seconds["ours"].append(metrics["train_seconds_per_epoch"])
            result = Path(scratch) / f"stock_{repeat}.json"
            run(
                [
                    sys.executable,
                    __file__,
                    "--model",
                    args.model,
                    "--train-sentences",
                    str(args.train_sentences),
                    "--max-length",
                    str(args.max_length),
                    "--threads",
                    str(args.threads),
                    "--stock-result",
                    str(result),
                ],
                args.threads,
            )
            seconds["stock_grouped"].append(json.loads(result.read_text())["seconds"])
            print(
                f"repeat {repeat}: ours {seconds['ours'][-1]:.1f} s, stock grouped {seconds['stock_grouped'][-1]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    summary = {
        k: {"seconds": v, "sentences_per_s": args.train_sentences / statistics.median(v)}
        for k, v in seconds.items()
    }
    summary["ours / stock_grouped"] = (
        summary["ours"]["sentences_per_s"] / summary["stock_grouped"]["sentences_per_s"]
    )
    summary["settings"] = {k: v for k, v in vars(args).items() if k != "stock_result"}
    summary["settings"]["output"] = str(args.output)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
