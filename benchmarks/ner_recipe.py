"""Chinese HealthNER recipe search on `dev` (BERT-CRF, m3e-small), continual pre-training at convergence, and
the final model retrained on train + dev: the runs of BENCHMARKS 10, many at once on one GPU.

    python benchmarks/ner_recipe.py --model .cache/models/m3e-small --out runs/bench/ner_recipe \
        [--parallel 16] [--deadline-minutes 8] [--epochs 10] [--learning-rate 4e-5] [--plan search|convergence]

1. ``train.py mlm``: the encoder adapted on the text of HealthNER ``train`` (3 epochs, lr 5e-5, batch 32).
2. One factor at a time from ``base`` (CRF, layer decay 1.0, lr 4e-5, batch 16, --epochs, dev scored after every
   epoch): 3 epochs, lr, head lr, CRF lr (100x the encoder's), warm-up, --max-length; and the
   continual pre-training comparison: unadapted and adapted encoder, seeds 1-3 each, same recipe.
3. ``final_base``: base retrained on train + dev (``--train-split train+dev``; no held-out number), from the
   start; once the factors are done, ``combined``: every factor value that beat ``base`` on dev by more than 0.3
   points, together, and ``final_combined``: that recipe retrained on train + dev.

Runs share the GPU(s), one CPU thread each, at most ``--parallel`` at a time. A run still going at the deadline
is stopped; its per-epoch dev scores so far are kept from its log. Writes ``OUT/results.json`` and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FACTORS: dict[str, list[str]] = {  # name -> flags changed from base
    "3 epochs": ["--epochs", "3"],  # section 3's best setting (the paper's epochs, no decay)
    "lr 2e-5": ["--learning-rate", "2e-5"],
    "lr 1e-4": ["--learning-rate", "1e-4"],
    "head lr 1e-3": ["--head-learning-rate", "1e-3"],
    "CRF lr 4e-3 (100x)": ["--crf-learning-rate", "4e-3"],
    "warm-up 10 %": ["--warmup-ratio", "0.1"],
    "max length 128": ["--max-length", "128"],
}


def slug(name: str) -> str:
    """A factor's run folder: ``CRF lr 4e-3 (100x)`` -> ``CRF_lr_4e-3_100x``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name.split(":")[0].replace("%", "pct")).strip("_")


def base_flags(epochs: int, learning_rate: str = "4e-5") -> list[str]:
    return [
        "--layer-decay",
        "1.0",
        "--learning-rate",
        learning_rate,
        "--epochs",
        str(epochs),
        "--eval-every-epoch",
    ]


def merge(flags: list[str], changes: list[str]) -> list[str]:
    """``flags`` with each ``--name value`` of ``changes`` replacing or added."""
    out = list(flags)
    for name, value in zip(changes[::2], changes[1::2]):
        if name in out:
            out[out.index(name) + 1] = value
        else:
            out += [name, value]
    return out


class Queue:
    """Runs at most ``parallel`` commands at once, one CPU thread each; stops them all at the deadline."""

    def __init__(self, out: Path, parallel: int, deadline: float):
        self.out, self.parallel, self.deadline = out, parallel, deadline
        self.running: dict[str, subprocess.Popen] = {}
        self.waiting: list[tuple[str, list[str]]] = []
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def add(self, name: str, args: list[str]) -> None:
        self.waiting.append((name, args))

    def poll(self) -> None:
        for name, proc in list(self.running.items()):
            if proc.poll() is not None:
                self.seconds[name] = time.time() - self.started[name]
                del self.running[name]
                print(f"[{time.strftime('%H:%M:%S')}] {name}: exit {proc.returncode}", flush=True)
        while self.waiting and len(self.running) < self.parallel and time.time() < self.deadline:
            name, args = self.waiting.pop(0)
            env = {
                **os.environ,
                "OMP_NUM_THREADS": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "HF_HUB_OFFLINE": "1",
            }
            log = (self.out / f"{name}.log").open("w")
            self.running[name] = subprocess.Popen(
                [sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env, stdout=log, stderr=log
            )
            self.started[name] = time.time()
            print(f"[{time.strftime('%H:%M:%S')}] start {name}", flush=True)

    def wait(self, names: list[str]) -> None:
        while any(n in self.running or n in dict(self.waiting) for n in names):
            if time.time() >= self.deadline:
                for name, proc in self.running.items():
                    proc.kill()
                    print(f"{name}: stopped at the deadline", flush=True)
                self.running.clear()
                self.waiting.clear()
                return
            self.poll()
            time.sleep(2)


def result(out: Path, name: str) -> dict:
    """metrics.json of a finished run, else the per-epoch dev scores found in its log."""
    metrics = out / name / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        keys = ("ner_f1_micro", "ner_precision_micro", "ner_recall_micro", "ner_f1_macro", "eval_held_out")
        return {
            "finished": True,
            **{k: m[k] for k in keys},
            "per_type_f1": {t: s["f1"] for t, s in m["per_type"].items()},
            "history": m["train_history"],
            "seconds_per_epoch": m["train_seconds_per_epoch"],
        }
    log = (out / f"{name}.log").read_text() if (out / f"{name}.log").is_file() else ""
    history = [ast.literal_eval(h) for h in re.findall(r"ner epoch \d+: (\{.*\})", log)]
    return {"finished": False, "history": history, "log_tail": log[-1500:]}


def best_epoch(r: dict) -> tuple[int, float]:
    scores = [(h["eval_ner_f1_micro"], h["epoch"]) for h in r.get("history", []) if "eval_ner_f1_micro" in h]
    return max(scores)[::-1] if scores else (0, float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="the m3e-small folder")
    parser.add_argument("--out", type=Path, required=True, help="work folder")
    parser.add_argument("--data-dir", default=None, help="HealthNER folder (default: ../shared/data/...)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of base (default: 10)")
    parser.add_argument("--learning-rate", default="4e-5", help="learning rate of base (default: 4e-5)")
    parser.add_argument(
        "--plan",
        choices=["search", "convergence"],
        default="search",
        help="search: every run above; convergence: only the adaptation and the unadapted / adapted seeds "
        "1-3 at base (with --learning-rate 1e-4 --epochs 5: the chosen recipe of BENCHMARKS 10.3)",
    )
    parser.add_argument("--parallel", type=int, default=16, help="runs at once (default: 16)")
    parser.add_argument("--deadline-minutes", type=float, default=8.0, help="stop everything after this")
    parser.add_argument(
        "--quick", type=int, default=None, help="N training and dev sentences: a check of this script"
    )
    parser.add_argument("--mlm-epochs", type=int, default=3, help="epochs of the adaptation (default: 3)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    queue = Queue(args.out, args.parallel, time.time() + 60 * args.deadline_minutes)
    common = ["--report-to", "none", "--overwrite-output-dir"]
    if args.data_dir:
        common += ["--data-dir", args.data_dir]
    quick = ["--max-train-samples", str(args.quick)] if args.quick else []
    ner_common = common + quick + (["--max-eval-samples", str(args.quick)] if args.quick else [])
    base = base_flags(args.epochs, args.learning_rate)

    def ner(name: str, flags: list[str], model: str = args.model) -> None:
        queue.add(name, ["ner", "--model", model, "--output-dir", str(args.out / name), *ner_common, *flags])

    adapted = str(args.out / "mlm")
    queue.add(
        "mlm",
        [
            "mlm", "--model", args.model, "--output-dir", adapted, "--dataset", "chinese_healthner:train",
            "--epochs", str(args.mlm_epochs), "--learning-rate", "5e-5", "--batch-size", "32", *common,
            *quick,
        ],
    )  # fmt: skip
    if args.plan == "convergence":
        return convergence(args, queue, ner, base, adapted)
    ner("base", base)
    for name, changes in FACTORS.items():
        ner(slug(name), merge(base, changes))
    for seed in (1, 2, 3):
        ner(f"unadapted_seed{seed}", merge(base, ["--seed", str(seed)]))
    ner("final_base", merge(base, ["--train-split", "train+dev"]))  # the final model if nothing beats base
    queue.poll()
    queue.wait(["mlm"])
    for seed in (1, 2, 3):
        ner(f"adapted_seed{seed}", merge(base, ["--seed", str(seed)]), model=adapted)
    factor_names = {n: slug(n) for n in FACTORS}
    queue.wait(["base", *factor_names.values()])

    results = {name: result(args.out, name) for name in ["base", *factor_names.values()]}
    base_f1 = results["base"].get("ner_f1_micro", float("nan"))
    combined = list(base)
    winners = []
    for name, changes in FACTORS.items():
        r = results[factor_names[name]]
        if name != "3 epochs" and r.get("ner_f1_micro", 0) > base_f1 + 0.003:
            combined, winners = merge(combined, changes), [*winners, name]
    later = [f"{k}_seed{s}" for k in ("unadapted", "adapted") for s in (1, 2, 3)] + ["final_base"]
    if winners:
        ner("combined", combined)
        ner("final_combined", merge(combined, ["--train-split", "train+dev"]))
        later += ["combined", "final_combined"]
    queue.wait(later)

    names = [
        "base",
        *factor_names.values(),
        *(["combined", "final_combined"] if winners else []),
        "final_base",
    ]
    names += [f"{k}_seed{s}" for k in ("unadapted", "adapted") for s in (1, 2, 3)]
    results = {name: result(args.out, name) for name in names}
    results["mlm"] = {
        "finished": (Path(adapted) / "config.json").is_file(),
        "seconds": queue.seconds.get("mlm"),
    }
    summary = {"winners": winners, "combined_flags": combined, "runs": results, "seconds": queue.seconds}
    (args.out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("| run | dev micro F1 (last epoch) | best epoch (F1) | P | R | macro F1 | s/epoch |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        r = results[name]
        e, f = best_epoch(r)
        last = f"{r['ner_f1_micro']:.4f}" if r.get("finished") else "(stopped)"
        rest = (
            f"{r['ner_precision_micro']:.4f} | {r['ner_recall_micro']:.4f} | {r['ner_f1_macro']:.4f} | "
            f"{r['seconds_per_epoch']:.1f}"
            if r.get("finished")
            else "| | |"
        )
        print(f"| {name} | {last} | {e} ({f:.4f}) | {rest} |")
    print(f"winners over base: {winners}")
    return 0


def convergence(args: argparse.Namespace, queue: Queue, ner, base: list[str], adapted: str) -> int:
    """Unadapted and adapted encoder, seeds 1-3 each, at ``base``; prints dev micro F1 per epoch, mean ± sd."""
    for seed in (1, 2, 3):
        ner(f"unadapted_seed{seed}", merge(base, ["--seed", str(seed)]))
    queue.poll()
    queue.wait(["mlm"])
    for seed in (1, 2, 3):
        ner(f"adapted_seed{seed}", merge(base, ["--seed", str(seed)]), model=adapted)
    names = [f"{k}_seed{s}" for k in ("unadapted", "adapted") for s in (1, 2, 3)]
    queue.wait(names)
    results = {name: result(args.out, name) for name in names}
    (args.out / "results.json").write_text(
        json.dumps({"runs": results, "seconds": queue.seconds}, indent=1) + "\n"
    )
    print(
        "| epoch | unadapted (seeds 1 / 2 / 3) | mean ± sd | adapted (seeds 1 / 2 / 3) | mean ± sd | gain |"
    )
    print("|---|---|---|---|---|---|")
    for epoch in range(1, args.epochs + 1):
        row, means = [str(epoch)], []
        for kind in ("unadapted", "adapted"):
            scores = [
                h["eval_ner_f1_micro"]
                for s in (1, 2, 3)
                for h in results[f"{kind}_seed{s}"]["history"]
                if h.get("epoch") == epoch and "eval_ner_f1_micro" in h
            ]
            means.append(statistics.mean(scores) if scores else None)
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            row += [
                " / ".join(f"{x:.4f}" for x in scores),
                f"{means[-1]:.4f} ± {spread:.4f}" if scores else "",
            ]
        row.append(f"{100 * (means[1] - means[0]):+.1f}" if None not in means else "")
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
