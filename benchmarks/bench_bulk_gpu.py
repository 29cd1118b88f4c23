"""Literature-scale extraction on a GPU (`predict.py --output-dir`): sentences/s for one and several processes.

    python benchmarks/bench_bulk_gpu.py --model runs/ade-fold0 --out runs/bench/bulk_gpu [--repeat 4]

Documents are abstracts rebuilt from the ADE corpus (as in ``bench_bulk.py``), each repeated ``--repeat`` times
under new ids. Runs, one after the other:

1. ``predict.py --output-dir`` with one process, for each ``--dtypes``;
2. ``torchrun --nproc_per_node N predict.py --output-dir`` for each ``--processes`` (N processes share the
   machine's GPUs round-robin; one CPU thread each);
3. the model alone: the abstracts' sentences (once) tokenised up front, sorted by length, forward passes only,
   in bfloat16, at ``--batch-size`` windows: the ceiling that the GPU sets.

Prints a Markdown table and writes ``OUT/bulk_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_bulk import abstracts  # noqa: E402


def run(command: list[str]) -> float:
    """Wall seconds of a command (one CPU thread per process, the GPU visible)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def model_ceiling(model: str, texts: list[str], batch_size: int) -> dict:
    """Sentences/s of the forward passes alone (bfloat16, length-sorted batches, inputs already on the GPU)."""
    import torch
    from transformers import pipeline

    from modeling_ade import AdeExtractionPipeline
    from modeling_ade.bulk_predict import _pad

    extractor = pipeline(
        "ade-extraction", model=model, pipeline_class=AdeExtractionPipeline, dtype=torch.bfloat16, device=0
    )
    params = extractor._sanitize_parameters()[0]
    windows = [w for text in texts for w in extractor.preprocess(text, **params)]
    windows.sort(key=lambda w: w["input_ids"].shape[-1])
    keys = ["input_ids", "attention_mask", "word_index"] + (
        ["token_type_ids"] if "token_type_ids" in windows[0] else []
    )
    batches = [
        {k: _pad([w[k] for w in windows[b : b + batch_size]], 0).cuda() for k in keys}
        for b in range(0, len(windows), batch_size)
    ]
    with torch.inference_mode():
        for batch in batches[:5]:  # warm-up
            extractor.model(**batch)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for batch in batches:
            extractor.model(**batch)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    return {"windows": len(windows), "seconds": seconds, "windows_per_s": len(windows) / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a trained train.py ade folder")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/bulk_gpu"), help="work folder (emptied)")
    parser.add_argument("--data-dir", default=None, help="ADE corpus folder (default: ../shared/data/...)")
    parser.add_argument("--repeat", type=int, default=4, help="copies of each abstract (default: 4)")
    parser.add_argument("--batch-size", type=int, default=256, help="windows per forward pass (default: 256)")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"], help="one-process runs")
    parser.add_argument("--processes", type=int, nargs="*", default=[4, 8, 14], help="several-process runs")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    docs = abstracts(args.data_dir)
    corpus = args.out / "abstracts.jsonl"
    with corpus.open("w", encoding="utf-8") as handle:
        for k in range(args.repeat):
            for d in docs:
                handle.write(json.dumps({"id": f"{d['id']}-{k}", "text": d["text"]}) + "\n")
    n = len(docs) * args.repeat
    import torch

    results: dict = {"documents": n, "gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count()}
    predict = [str(REPO / "predict.py"), str(corpus), "--model", args.model, "--id-column", "id"]
    predict += ["--batch-size", str(args.batch_size)]
    runs = [(f"1 process, {dtype}", [sys.executable], dtype) for dtype in args.dtypes]
    torchrun = str(Path(sys.executable).parent / "torchrun")
    if not Path(torchrun).exists():
        torchrun = shutil.which("torchrun") or torchrun
    runs += [
        (f"{p} processes, bfloat16", [torchrun, "--standalone", "--nproc_per_node", str(p)], "bfloat16")
        for p in args.processes
    ]
    lines = [
        f"{n:,} documents ({len(docs):,} abstracts rebuilt from the ADE corpus x {args.repeat}), "
        f"batch {args.batch_size}, {results['gpu']} x {results['gpus']}",
        "",
        "| run | seconds | documents/s | sentences/s | forward share |",
        "|---|---|---|---|---|",
    ]
    for k, (name, launcher, dtype) in enumerate(runs):
        out = args.out / f"run{k}"
        wall = run([*launcher, *predict, "--dtype", dtype, "--output-dir", str(out)])
        totals = json.loads((out / "manifest.json").read_text())["totals"]
        results[name] = {"seconds": wall, **totals}
        share = totals["forward_seconds"] / (wall * (int(name.split()[0]) if "processes" in name else 1))
        lines.append(
            f"| {name} | {wall:.1f} | {n / wall:,.0f} | {totals['sentences'] / wall:,.0f} | {share:.0%} |"
        )
        print(lines[-1], flush=True)
        shutil.rmtree(out / "parts", ignore_errors=True)
    alone = results["model_alone"] = model_ceiling(args.model, [d["text"] for d in docs], args.batch_size)
    lines.append(
        f"\nmodel alone (bfloat16, batch {args.batch_size}, inputs on the GPU): "
        f"{alone['windows_per_s']:,.0f} windows/s ({alone['windows']:,} windows in {alone['seconds']:.2f} s)"
    )
    (args.out / "bulk_gpu.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
