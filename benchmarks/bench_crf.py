"""Benchmark modeling_ade.hub.crf.CRF against pytorch-crf (torchcrf) on identical inputs, on CPU.

Both get the same emissions, tags, parameters and left-aligned contiguous masks of random lengths
(pytorch-crf needs the first timestep on and no gaps). Timed: the loss forward + backward and
Viterbi decoding (pytorch-crf returns Python lists, ours a tensor), median over repeats after a
warm-up, the two implementations alternating within each repeat so that they share the machine's
load. Checked: per-sequence log-likelihoods (relative tolerance), emission gradients and decoded
paths. A third row times our CRF on masks with gaps (same active counts), which pytorch-crf
cannot take.

pytorch-crf is needed for this script only, never by the project:

    .venv/bin/pip install pytorch-crf
    .venv/bin/python benchmarks/bench_crf.py --threads 1 --output runs/bench_crf.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from modeling_ade.hub.crf import CRF


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per batch (default: 32)")
    parser.add_argument("--seq-len", type=int, default=64, help="padded sequence length (default: 64)")
    parser.add_argument("--num-tags", type=int, default=21, help="number of tags (default: 21)")
    parser.add_argument(
        "--min-len",
        type=int,
        default=1,
        help="shortest active length of a sequence; lengths are uniform in [min-len, seq-len] (default: 1)",
    )
    parser.add_argument(
        "--repeats", type=int, default=50, help="timed repeats; the median is reported (default: 50)"
    )
    parser.add_argument("--warmup", type=int, default=5, help="untimed repeats before timing (default: 5)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch.set_num_threads for the whole run (default: 1)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed of inputs and parameters (default: 0)"
    )
    parser.add_argument(
        "--rtol",
        type=float,
        default=1e-4,
        help="relative tolerance of the log-likelihood check (default: 1e-4)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="also write the results as JSON to this file"
    )
    return parser.parse_args(argv)


def make_inputs(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(args.seed)
    batch, seq_len, num_tags = args.batch_size, args.seq_len, args.num_tags
    # shape: (B,)
    lengths = torch.randint(args.min_len, seq_len + 1, (batch,), generator=generator)
    # shape: (B, T); left-aligned, contiguous
    mask = torch.arange(seq_len).unsqueeze(0) < lengths.unsqueeze(1)
    # Same active counts, scattered: position 0 off (as [CLS]) where the row leaves room for it.
    scores = torch.rand(batch, seq_len, generator=generator)
    scores[:, 0] += (lengths < seq_len).float()  # position 0 sorts last, so it stays inactive
    ranks = scores.argsort(dim=1).argsort(dim=1)
    gapped_mask = ranks < lengths.unsqueeze(1)
    return {
        "emissions": torch.randn(batch, seq_len, num_tags, generator=generator),
        "tags": torch.randint(num_tags, (batch, seq_len), generator=generator),
        "mask": mask,
        "gapped_mask": gapped_mask,
        "start": torch.randn(num_tags, generator=generator),
        "end": torch.randn(num_tags, generator=generator),
        "transitions": torch.randn(num_tags, num_tags, generator=generator),
    }


def build(module: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.nn.Module:
    with torch.no_grad():
        module.start_transitions.copy_(inputs["start"])
        module.end_transitions.copy_(inputs["end"])
        module.transitions.copy_(inputs["transitions"])
    return module


def loss_step(
    crf: torch.nn.Module, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
) -> Callable[[], None]:
    def step() -> None:
        crf.zero_grad(set_to_none=True)
        emissions.grad = None
        loss = -crf(emissions, tags, mask, reduction="mean")
        loss.backward()

    return step


def time_interleaved(
    functions: dict[str, Callable[[], object]], repeats: int, warmup: int
) -> dict[str, float]:
    """Median milliseconds per call; the order of the functions alternates between repeats."""
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            functions[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            start = time.perf_counter()
            functions[name]()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torchcrf
    except ImportError:
        print(
            "pytorch-crf is not installed; this benchmark compares against it. Install it for the "
            "benchmark only (it is not a project dependency):\n    .venv/bin/pip install pytorch-crf",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    inputs = make_inputs(args)
    ours = build(CRF(args.num_tags), inputs)
    reference = build(torchcrf.CRF(args.num_tags, batch_first=True), inputs)
    emissions, tags, mask, gapped_mask = (
        inputs["emissions"],
        inputs["tags"],
        inputs["mask"],
        inputs["gapped_mask"],
    )

    # ---- identical results
    ours_emissions = emissions.clone().requires_grad_(True)
    reference_emissions = emissions.clone().requires_grad_(True)
    ours_llh = ours(ours_emissions, tags, mask, reduction="none")
    reference_llh = reference(reference_emissions, tags, mask, reduction="none")
    ours_llh.sum().backward()
    reference_llh.sum().backward()
    llh_max_rel = ((ours_llh - reference_llh).abs() / reference_llh.abs()).max().item()
    grad_max_abs = (ours_emissions.grad - reference_emissions.grad).abs().max().item()
    ours_paths = ours.decode(emissions, mask)
    reference_paths = reference.decode(emissions, mask)
    paths_equal = all(
        ours_paths[row, : len(path)].tolist() == path for row, path in enumerate(reference_paths)
    )
    checks = {
        "log_likelihood_max_relative_difference": llh_max_rel,
        "log_likelihood_within_rtol": llh_max_rel <= args.rtol,
        "emission_gradient_max_abs_difference": grad_max_abs,
        "decoded_paths_equal": paths_equal,
    }

    # ---- timings
    ours_emissions = emissions.clone().requires_grad_(True)
    reference_emissions = emissions.clone().requires_grad_(True)
    loss_times = time_interleaved(
        {
            "ours": loss_step(ours, ours_emissions, tags, mask),
            "pytorch-crf": loss_step(reference, reference_emissions, tags, mask),
            "ours, gapped mask": loss_step(ours, ours_emissions, tags, gapped_mask),
        },
        args.repeats,
        args.warmup,
    )
    decode_times = time_interleaved(
        {
            "ours": lambda: ours.decode(emissions, mask),
            "pytorch-crf": lambda: reference.decode(emissions, mask),
            "ours, gapped mask": lambda: ours.decode(emissions, gapped_mask),
        },
        args.repeats,
        args.warmup,
    )

    rows = []
    for operation, times in (("loss forward + backward", loss_times), ("Viterbi decode", decode_times)):
        rows.append(
            {
                "operation": operation,
                "ours_ms": times["ours"],
                "pytorch_crf_ms": times["pytorch-crf"],
                "speedup": times["pytorch-crf"] / times["ours"],
                "ours_gapped_mask_ms": times["ours, gapped mask"],
            }
        )

    print(
        f"CRF benchmark: batch {args.batch_size}, length {args.seq_len}, {args.num_tags} tags, "
        f"lengths in [{args.min_len}, {args.seq_len}], torch {torch.__version__}, pytorch-crf "
        f"{torchcrf.__version__}, {args.threads} thread(s), nproc {os.cpu_count()}, median of "
        f"{args.repeats} after {args.warmup} warm-up\n"
    )
    print(
        "| operation | ours (ms) | pytorch-crf (ms) | speed-up (pytorch-crf / ours) | ours, gapped mask (ms) |"
    )
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['operation']} | {row['ours_ms']:.2f} | {row['pytorch_crf_ms']:.2f} | "
            f"{row['speedup']:.2f}x | {row['ours_gapped_mask_ms']:.2f} |"
        )
    print(
        f"\nchecks: log-likelihood max relative difference {llh_max_rel:.2e} (rtol {args.rtol:g}), "
        f"emission gradient max abs difference {grad_max_abs:.2e}, decoded paths equal: {paths_equal}"
    )

    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "config": {
                key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
            },
            "environment": {
                "torch": torch.__version__,
                "pytorch_crf": torchcrf.__version__,
                "nproc": os.cpu_count(),
                "threads": torch.get_num_threads(),
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "results": rows,
            "checks": checks,
        }
        args.output.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    ok = checks["log_likelihood_within_rtol"] and paths_equal
    if not ok:
        print("FAILED: the two implementations disagree", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
