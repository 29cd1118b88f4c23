"""Literature-scale extraction (`predict.py --output-dir`): scaling over processes, memory growth, overhead.

    python benchmarks/bench_bulk.py --model runs/ade-fold0 --out runs/bench/bulk [--data-dir DIR]

Documents are abstracts rebuilt from the ADE corpus: every sentence of one PubMed id (``DRUG-AE.rel`` and
``ADE-NEG.txt``), in file order, joined by a space. Runs, one after the other (never two jobs at once):

1. ``predict.py --output-dir`` with 1 process and with 2 processes (``torchrun``), ``OMP_NUM_THREADS=1`` each;
2. today's single-file path, ``predict.py --output`` (one process, the machine's threads), on the same file;
3. memory: peak RSS of one process for ``--memory-docs`` and 10x as many one-sentence documents, with the model
   cut to one encoder layer (reading, batching and writing dominate there).

Prints a Markdown table and writes ``OUT/bulk.json``. The overhead is the share of the 1-process job's wall
time spent outside the model's forward passes (manifest ``forward_seconds``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def abstracts(data_dir: str | None) -> list[dict]:
    from datasets_scripts.ade_corpus import ade_records

    by_pmid: dict[str, list[str]] = {}
    for config in ("relations", "negatives"):
        for record in next(iter(ade_records(config, data_dir=data_dir).values())):
            by_pmid.setdefault(record["id"].split("-", 1)[0], []).append(record["text"])
    return [{"id": pmid, "text": " ".join(sentences)} for pmid, sentences in by_pmid.items()]


def run(command: list[str], threads: str | None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB, of the largest process, from /usr/bin/time) and stderr of a command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES="")
    if threads:
        env["OMP_NUM_THREADS"] = threads
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command], cwd=REPO, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return wall, rss, result.stderr


def one_layer_model(model: str, out: Path) -> Path:
    from transformers import AutoTokenizer

    from modeling_ade import JointNerReForAdeExtraction

    cut = JointNerReForAdeExtraction.from_pretrained(model)
    cut.encoder.encoder.layer = cut.encoder.encoder.layer[:1]
    cut.config.encoder_config.num_hidden_layers = 1
    cut.save_pretrained(out)
    AutoTokenizer.from_pretrained(model).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a trained train.py ade folder (full size)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/bulk"), help="work folder (emptied)")
    parser.add_argument("--data-dir", default=None, help="ADE corpus folder (default: ../shared/data/...)")
    parser.add_argument("--memory-docs", type=int, default=20_000, help="documents of the small memory run")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    docs = abstracts(args.data_dir)
    corpus = args.out / "abstracts.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    py, torchrun = sys.executable, str(Path(sys.executable).parent / "torchrun")
    predict = [str(REPO / "predict.py"), str(corpus), "--model", args.model, "--id-column", "id"]
    results: dict = {"documents": len(docs), "sentences": None}

    wall, rss, _ = run([py, *predict, "--output-dir", str(args.out / "p1")], "1")
    totals = json.loads((args.out / "p1" / "manifest.json").read_text())["totals"]
    results["sentences"] = totals["sentences"]
    results["one_process"] = {"seconds": wall, "peak_rss_kib": rss, **totals}
    wall, rss, _ = run(
        [torchrun, "--standalone", "--nproc_per_node", "2", *predict, "--output-dir", str(args.out / "p2")],
        "1",
    )
    results["two_processes"] = {"seconds": wall, "peak_rss_kib": rss}
    wall, rss, _ = run(
        [
            py,
            str(REPO / "predict.py"),
            str(corpus),
            "--model",
            args.model,
            "--output",
            str(args.out / "single.jsonl"),
        ],
        None,
    )
    results["single_file_path"] = {"seconds": wall, "peak_rss_kib": rss}

    small = one_layer_model(args.model, args.out / "one_layer")
    sentences = [s for d in docs for s in d["text"].split(". ") if s.strip()]
    for n in (args.memory_docs, 10 * args.memory_docs):
        path = args.out / f"short_{n}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for i in range(n):
                handle.write(json.dumps({"id": f"s{i}", "text": sentences[i % len(sentences)]}) + "\n")
        wall, rss, _ = run(
            [
                py,
                str(REPO / "predict.py"),
                str(path),
                "--model",
                str(small),
                "--id-column",
                "id",
                "--output-dir",
                str(args.out / f"m{n}"),
            ],
            "1",
        )
        results[f"memory_{n}"] = {"seconds": wall, "peak_rss_kib": rss}
        path.unlink()

    one, two, single = results["one_process"], results["two_processes"], results["single_file_path"]
    n = results["documents"]
    lines = [
        f"{n:,} documents, {results['sentences']:,} sentences (abstracts rebuilt from the ADE corpus)",
        "",
        "| run | seconds | documents/s | peak RSS (MiB) |",
        "|---|---|---|---|",
        f"| `--output-dir`, 1 process, 1 thread | {one['seconds']:.1f} | {n / one['seconds']:.1f} | {one['peak_rss_kib'] / 1024:.0f} |",
        f"| `--output-dir`, 2 processes (torchrun), 1 thread each | {two['seconds']:.1f} | {n / two['seconds']:.1f} | {two['peak_rss_kib'] / 1024:.0f} (largest) |",
        f"| `--output` (one file, one process, all threads) | {single['seconds']:.1f} | {n / single['seconds']:.1f} | {single['peak_rss_kib'] / 1024:.0f} |",
        "",
        f"- 2 processes / 1 process: {one['seconds'] / two['seconds']:.2f}x; 2 processes / single-file path: "
        f"{single['seconds'] / two['seconds']:.2f}x",
        f"- outside the forward passes (1 process): {1 - one['forward_seconds'] / one['seconds']:.1%} of the wall "
        f"time (forward {one['forward_seconds']:.1f} s of {one['seconds']:.1f} s)",
    ]
    small_n, big_n = args.memory_docs, 10 * args.memory_docs
    small_rss, big_rss = (
        results[f"memory_{small_n}"]["peak_rss_kib"],
        results[f"memory_{big_n}"]["peak_rss_kib"],
    )
    lines.append(
        f"- peak RSS, one-layer model, one process: {small_n:,} documents {small_rss / 1024:.0f} MiB, "
        f"{big_n:,} documents {big_rss / 1024:.0f} MiB ({big_rss / small_rss - 1:+.1%}); "
        f"{big_n / results[f'memory_{big_n}']['seconds']:.0f} documents/s"
    )
    (args.out / "bulk.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
