"""BERT-CRF training step with and without decoding (issue 14: no Viterbi in training steps).

A training step needs the CRF loss only. Before, every step also ran Viterbi and the two max-marginal
passes (for ``tags`` and ``logits``) and threw them away; ``decode_tags=True`` in training mode still does
exactly that, so both sides run the same code on the same inputs:

- *CRF part*: random emissions ``(B, T, C)`` with a gold BIO path, BIO constraints; the loss forward +
  backward, with and without ``decode`` + ``max_marginals`` + ``path_logits``;
- *full step*: ``BertCrfForTokenClassification`` on m3e-small (``--model``), forward + backward + AdamW
  step in training mode, ``decode_tags`` left to its default (no decoding) or forced on.

Median over repeats after a warm-up, the two variants alternating within each repeat.

    .venv/bin/python benchmarks/bench_crf_step.py --threads 1 --output runs/bench/crf_step.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from modeling_ade.hub.crf import CRF, bio_constraints
from modeling_ade.hub.modeling_bert_crf import path_logits

TYPES = ["BODY", "SYMP", "INST", "EXAM", "CHEM", "DISE", "DRUG", "SUPP", "TREAT", "TIME"]
LABELS = ["O", *[f"{p}-{t}" for t in TYPES for p in ("B", "I")]]  # 21 tags, as HealthNER


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per batch (default: 16)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default: 128)")
    parser.add_argument(
        "--repeats", type=int, default=30, help="timed repeats; the median is reported (default: 30)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed repeats first (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default: 1)")
    parser.add_argument(
        "--model",
        default="moka-ai/m3e-small",
        help="encoder of the full step; 'none' skips it (default: m3e-small)",
    )
    parser.add_argument("--output", default=None, help="also write the results as JSON here")
    return parser.parse_args(argv)


def gold_path(batch_size: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """``(B, T)`` long: random valid BIO paths (an entity of 1-4 tokens starts with probability 0.15)."""
    tags = torch.zeros(batch_size, seq_len, dtype=torch.long)
    for b in range(batch_size):
        t = 0
        while t < seq_len:
            if torch.rand((), generator=generator) < 0.15:
                kind = int(torch.randint(len(TYPES), (), generator=generator))
                span = int(torch.randint(1, 5, (), generator=generator))
                tags[b, t] = 1 + 2 * kind
                tags[b, t + 1 : t + span] = 2 + 2 * kind
                t += span
            else:
                t += 1
    return tags


def median_ms(variants: dict[str, Callable[[], None]], repeats: int, warmup: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(warmup + repeats):
        for name, run in variants.items():
            started = time.perf_counter()
            run()
            if repeat >= warmup:
                times[name].append((time.perf_counter() - started) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def crf_part(args: argparse.Namespace) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    allowed_start, allowed_transitions = bio_constraints(LABELS)
    crf = CRF(len(LABELS), allowed_transitions=allowed_transitions, allowed_start=allowed_start)
    emissions = torch.randn(
        args.batch_size, args.seq_len, len(LABELS), generator=generator, requires_grad=True
    )
    tags = gold_path(args.batch_size, args.seq_len, generator)
    mask = torch.ones(args.batch_size, args.seq_len, dtype=torch.bool)
    mask[:, 0] = False  # [CLS]

    def step(decode: bool) -> None:
        loss = -crf(emissions, tags, mask=mask, reduction="mean")
        loss.backward()
        if decode:
            path = crf.decode(emissions.detach(), mask=mask, pad_tag=-100)
            path_logits(emissions.detach(), path, mask, crf.max_marginals(emissions.detach(), mask))
        emissions.grad = None

    return median_ms(
        {"with decoding (before)": lambda: step(True), "loss only (after)": lambda: step(False)},
        args.repeats,
        args.warmup,
    )


def full_step(args: argparse.Namespace) -> dict[str, float]:
    from transformers import AutoTokenizer

    from modeling_ade import BertCrfForTokenClassification
    from modeling_ade.encoders import resolve_model_name

    path = resolve_model_name(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = BertCrfForTokenClassification.from_encoder(
        path,
        tokenizer=tokenizer,
        id2label=dict(enumerate(LABELS)),
        label2id={t: i for i, t in enumerate(LABELS)},
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(
        1000, tokenizer.vocab_size, (args.batch_size, args.seq_len), generator=generator
    )
    labels = gold_path(args.batch_size, args.seq_len, generator)
    labels[:, 0] = -100

    def step(decode: bool) -> None:
        out = model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            labels=labels,
            decode_tags=decode or None,
        )
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return median_ms(
        {"with decoding (before)": lambda: step(True), "loss only (after)": lambda: step(False)},
        args.repeats,
        args.warmup,
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {
        "settings": {
            **vars(args),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "crf_part_ms": crf_part(args),
    }
    if args.model != "none":
        results["full_step_ms"] = full_step(args)
    for part in ("crf_part_ms", "full_step_ms"):
        if part in results:
            before, after = results[part].values()
            print(
                f"{part}: with decoding {before:.2f} ms, loss only {after:.2f} ms, speed-up {before / after:.2f}x"
            )
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
