"""Evaluate saved ADE models again with today's evaluation: strict metrics on the fold's test part and the
real-text block (held-out negative part of the fold: false-positive rate, sentence-level P/R/F1).

Made for models trained before the real-text metrics existed (the "before" column of BENCHMARKS.md), and for
checking a threshold without retraining. Reads RUN/fold_K (a --cv run) or RUN itself (a --fold run, the
fold from its training_args.json); writes RUN[/fold_K]/evaluation.json (metrics.json is left as it is;
with a config override, evaluation-<field>=<value>....json) and prints the cross-validation table.

    .venv/bin/python benchmarks/ade_evaluate.py runs/ade-cv [--relation-threshold 0.5] [--sentence-threshold 0.5]
        [--sentence-gate-scope all|relations] [--folds 0 1 ...] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from accelerate import Accelerator
from transformers import AutoTokenizer

from datasets_scripts.ade_corpus import ade_records
from modeling_ade import JointNerReForAdeExtraction
from modeling_ade.ade_data import split_negatives
from modeling_ade.joint_training import SUMMARY_KEYS, encode_records, evaluate_fold
from modeling_ade.metrics import aggregate_folds, format_cv_table
from modeling_ade.training import write_json


def fold_dirs(run: Path) -> list[tuple[int, Path]]:
    folds = sorted(run.glob("fold_*/config.json"))
    if folds:
        return [(int(p.parent.name.removeprefix("fold_")), p.parent) for p in folds]
    args = json.loads((run / "training_args.json").read_text(encoding="utf-8"))
    return [(int(args["fold"]), run)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a train.py ade output folder (--fold or --cv)")
    parser.add_argument("--data-dir", default=None, help="ADE corpus folder (default: as train.py)")
    parser.add_argument(
        "--relation-threshold", type=float, default=None, help="override the config's relation_threshold"
    )
    parser.add_argument(
        "--sentence-threshold", type=float, default=None, help="override the config's sentence_threshold"
    )
    parser.add_argument(
        "--sentence-gate-scope",
        choices=["all", "relations"],
        default=None,
        help="override the config's sentence_gate_scope (what a sentence the gate rejects loses)",
    )
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="score these folds only")
    parser.add_argument("--batch-size", type=int, default=64, help="evaluation batch size (default: 64)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the evaluation.json of folds scored before (same threshold); score only the others",
    )
    args = parser.parse_args()
    if not (args.run / "training_args.json").is_file() and not list(args.run.glob("fold_*/config.json")):
        parser.error(
            f"{args.run} is not a train.py ade output folder (no training_args.json, no fold_K/config.json)"
        )
    folds = fold_dirs(args.run)
    missing = sorted(set(args.folds or ()) - {fold for fold, _ in folds})
    if missing:
        parser.error(f"--folds {missing}: not in {args.run} (it holds folds {[fold for fold, _ in folds]})")
    accelerator = Accelerator(cpu=True)
    negatives = next(iter(ade_records("negatives", data_dir=args.data_dir).values()))
    per_fold = []
    overrides = {
        field: value
        for field, value in (
            ("relation_threshold", args.relation_threshold),
            ("sentence_threshold", args.sentence_threshold),
            ("sentence_gate_scope", args.sentence_gate_scope),
        )
        if value is not None
    }
    name = "".join(f"-{field}={value}" for field, value in overrides.items())
    for fold, folder in folds:
        if args.folds is not None and fold not in args.folds:
            continue
        done = folder / f"evaluation{name}.json"
        if args.reuse and done.is_file():
            metrics = json.loads(done.read_text(encoding="utf-8"))
            per_fold.append({k: metrics[k] for k in ("overlap_kept", "overlap_removed", "real_text")})
            print(f"fold {fold}: scored before ({done}), kept", flush=True)
            continue
        model = JointNerReForAdeExtraction.from_pretrained(folder, **overrides).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        max_length = json.loads((folder / "training_args.json").read_text(encoding="utf-8"))["max_length"]
        test = ade_records(f"fold_{fold}", data_dir=args.data_dir)["test"]
        _, held_out = split_negatives(negatives, fold)
        features = encode_records([*test, *held_out], tokenizer, model.config, max_length, f"fold {fold}")
        metrics = evaluate_fold(accelerator, model, tokenizer, features, test, len(held_out), args.batch_size)
        for field in ("relation_threshold", "sentence_threshold", "sentence_gate_scope"):
            metrics[field] = getattr(model.config, field)
        write_json(done, metrics)
        per_fold.append({k: metrics[k] for k in ("overlap_kept", "overlap_removed", "real_text")})
        print(f"fold {fold}: {json.dumps(metrics['real_text'])}", flush=True)
    print(format_cv_table(aggregate_folds(per_fold), keys=SUMMARY_KEYS))


if __name__ == "__main__":
    main()
