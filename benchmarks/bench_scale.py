"""Scale benchmark of the joint ADE model: throughput, FLOP utilisation, memory and growth, against stock HF.

What is measured (one run, every ratio from the same run, medians over ``--repeats``):

1. Training throughput (sentences/s), one epoch on the first N fold-0 training sentences, batch 16, lr 2e-5,
   max length 128, same encoder:
   - ours: ``train.py ade`` (joint NER + RE, length-grouped batches); its ``metrics.json`` gives
     ``train_seconds_per_epoch`` (the training loop only, not data loading or evaluation);
   - stock: ``AutoModelForTokenClassification`` + ``transformers.Trainer`` + ``DataCollatorForTokenClassification``,
     NER only, on the very same sub-word ids and BIO labels (``modeling_ade.ade_data.encode_ade_record``),
     timed from ``on_train_begin`` to ``on_train_end``; once in random order and once grouped by length
     (``group_by_length=True``; ``train_sampling_strategy="group_by_length"`` in transformers 5).
2. Inference throughput (sentences/s): the ``ade-extraction`` pipeline vs the stock ``token-classification``
   pipeline (``aggregation_strategy="simple"``), ``batch_size=32``, first M fold-0 test sentences, untrained
   heads (the number of predicted entities is reported: an untrained head may predict many).
3. Model FLOP utilisation: analytic encoder FLOPs over real (non-padding) tokens divided by the measured time
   and by the machine's matmul peak (best of ``torch.mm`` 2048^3 and a model-shaped product, same thread
   count); cross-checked on one padded batch with ``torch.utils.flop_counter.FlopCounterMode``.
4. Peak memory: ``ru_maxrss`` of each subprocess (every training and inference run is its own process).
5. Growth: (a) ours' seconds per epoch vs training sentences (fold-0 train has 3,845 sentences, the largest
   possible N); (b) one forward + backward of the joint model on a synthetic batch (16 sentences x 64 tokens)
   vs entities per sentence (half Drug, half Adverse-Effect: E^2/4 candidate pairs per sentence).

Every subprocess runs with ``OMP_NUM_THREADS=MKL_NUM_THREADS=--threads`` and ``torch.set_num_threads(--threads)``.
The results go to ``--output`` (JSON) and, as Markdown tables, to stdout and to the same path with suffix
``.md``.

Full run (the numbers for BENCHMARKS.md; roughly 30-60 minutes on one free core, about half of it the
sentence growth runs, which ``--skip-growth`` leaves out):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \\
        .venv/bin/python benchmarks/bench_scale.py --threads 1 --output runs/bench/scale.json

Quick check (about 2 minutes; one encoder layer, tiny sizes):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \\
        .venv/bin/python benchmarks/bench_scale.py --num-hidden-layers 1 --train-sentences 64 \\
        --infer-sentences 32 --repeats 1 --growth-sizes 32 64 --output /tmp/bench_quick/scale.json

Hidden subcommands (run by the script itself, one process each): ``_ours``, ``_stock``, ``_infer``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_LENGTH = 128
BATCH_SIZE = 16
INFER_BATCH_SIZE = 32
LEARNING_RATE = 2e-5
FOLD0_TRAIN_SENTENCES = 3845
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


# ----------------------------------------------------------------------------------------------- helpers


def max_rss_mib() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(path: str, payload: dict) -> None:
    """A worker's result, with its peak RSS and thread count, as JSON for the parent."""
    payload = {**payload, "max_rss_mib": max_rss_mib(), "torch_threads": torch.get_num_threads()}
    Path(path).write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


def encoder_kwargs(num_hidden_layers: int | None) -> dict:
    """``from_pretrained`` kwargs that keep only the first N encoder layers (none: all)."""
    return {"num_hidden_layers": num_hidden_layers} if num_hidden_layers else {}


@functools.cache
def _fold0_splits():
    from datasets_scripts.ade_corpus import ade_records

    return ade_records("fold_0")


def fold0(split: str, limit: int) -> list[dict]:
    """The first ``limit`` records of fold 0's ``train`` or ``test`` part (loaded once per process)."""
    return _fold0_splits()[split][:limit]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


# ----------------------------------------------------------------------------------------------- workers


def worker_ours(argv: list[str]) -> None:
    """``_ours --threads T --result FILE -- <train.py argv>``: run ``train.main`` in this process, report RSS."""
    parser = argparse.ArgumentParser(prog="bench_scale.py _ours")
    parser.add_argument("--threads", type=int, required=True, help="torch threads")
    parser.add_argument("--result", required=True, help="JSON file for the result")
    parser.add_argument("train_argv", nargs=argparse.REMAINDER, help="arguments of train.py, after --")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO_ROOT))
    import train

    train_argv = args.train_argv[1:] if args.train_argv[:1] == ["--"] else args.train_argv
    started = time.perf_counter()
    metrics = train.main(train_argv)
    write_result(
        args.result,
        {
            "train_seconds_per_epoch": metrics["train_seconds_per_epoch"],
            "num_train_sentences": metrics["num_train_sentences"],
            "train_history": metrics["train_history"],
            "process_seconds": time.perf_counter() - started,
        },
    )


def stock_features(model_path: str, num_sentences: int) -> tuple[list[dict], object, object]:
    """Fold-0 training sentences encoded exactly as ``train.py ade`` encodes them, NER fields only."""
    from transformers import AutoTokenizer

    from modeling_ade.ade_data import encode_ade_record
    from modeling_ade.hub.configuration_joint_ner_re import JointNerReConfig

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    config = JointNerReConfig()  # only its label map and entity types are used here
    keys = ("input_ids", "attention_mask", "token_type_ids", "labels")
    features = []
    for record in fold0("train", num_sentences):
        encoded = encode_ade_record(record, tokenizer, config, MAX_LENGTH).features
        features.append({k: encoded[k] for k in keys if k in encoded})
    return features, tokenizer, config


def sampling_kwargs(grouped: bool) -> dict:
    """Length grouping for ``TrainingArguments``: ``group_by_length`` up to transformers 4,
    ``train_sampling_strategy`` in transformers 5 (where ``group_by_length`` is gone)."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "group_by_length" in names:
        return {"group_by_length": grouped}
    return {"train_sampling_strategy": "group_by_length" if grouped else "random"}


def train_loop_timer():
    """A ``Trainer`` callback whose ``seconds`` is the wall time of the training loop (``on_train_begin`` ->
    ``on_train_end``)."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        seconds = None

        def on_train_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_train_end(self, *_, **__):
            self.seconds = time.perf_counter() - self.started

    return Timer()


def stock_training_args(output_dir: str, learning_rate: float, grouped: bool):
    """The stock runs' ``TrainingArguments``: one epoch, batch 16, CPU, nothing saved or logged, weight decay as
    ``train.py``'s, length grouping or the default random order."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=BATCH_SIZE,
        num_train_epochs=1,
        learning_rate=learning_rate,
        weight_decay=5e-3,  # as train.py
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=42,
        **sampling_kwargs(grouped),
    )


def worker_stock(argv: list[str]) -> None:
    """``_stock``: one epoch of stock ``Trainer`` NER training; sentences/s from a timing callback."""
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
        set_seed,
    )

    parser = argparse.ArgumentParser(prog="bench_scale.py _stock")
    parser.add_argument("--model", required=True, help="encoder folder or Hub id")
    parser.add_argument("--num-hidden-layers", type=int, default=None, help="keep the first N layers")
    parser.add_argument("--train-sentences", type=int, required=True, help="first N fold-0 sentences")
    parser.add_argument("--group-by-length", action="store_true", help="Trainer's length grouping")
    parser.add_argument("--threads", type=int, required=True, help="torch threads")
    parser.add_argument("--workdir", required=True, help="Trainer output_dir (nothing is saved)")
    parser.add_argument("--result", required=True, help="JSON file for the result")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    features, tokenizer, config = stock_features(args.model, args.train_sentences)
    set_seed(42)
    model = AutoModelForTokenClassification.from_pretrained(
        args.model,
        num_labels=len(config.id2label),
        id2label=config.id2label,
        label2id=config.label2id,
        **encoder_kwargs(args.num_hidden_layers),
    )
    timer = train_loop_timer()
    trainer = Trainer(
        model=model,
        args=stock_training_args(args.workdir, LEARNING_RATE, args.group_by_length),
        train_dataset=features,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        processing_class=tokenizer,
        callbacks=[timer],
    )
    output = trainer.train()
    write_result(
        args.result,
        {
            "train_seconds": timer.seconds,
            "num_train_sentences": len(features),
            "training_loss": output.training_loss,
            "global_step": output.global_step,
            "sampling": sampling_kwargs(args.group_by_length),
        },
    )


def build_inference_pipeline(kind: str, model_path: str, num_hidden_layers: int | None):
    """``ade-extraction`` on an untrained joint model (ours) or stock ``token-classification`` (simple)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    import modeling_ade  # noqa: F401  (registers the ade-extraction pipeline)
    from modeling_ade.hub.configuration_joint_ner_re import JointNerReConfig
    from modeling_ade.hub.modeling_joint_ner_re import JointNerReForAdeExtraction

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    torch.manual_seed(0)  # the untrained heads
    if kind == "ours":
        model = JointNerReForAdeExtraction.from_encoder(
            model_path, encoder_kwargs=encoder_kwargs(num_hidden_layers)
        )
        return pipeline("ade-extraction", model=model.eval(), tokenizer=tokenizer)
    config = JointNerReConfig()
    model = AutoModelForTokenClassification.from_pretrained(
        model_path,
        num_labels=len(config.id2label),
        id2label=config.id2label,
        label2id=config.label2id,
        **encoder_kwargs(num_hidden_layers),
    )
    return pipeline(
        "token-classification", model=model.eval(), tokenizer=tokenizer, aggregation_strategy="simple"
    )


def worker_infer(argv: list[str]) -> None:
    """``_infer --kind ours|stock``: pipeline throughput over the first M fold-0 test sentences."""
    parser = argparse.ArgumentParser(prog="bench_scale.py _infer")
    parser.add_argument("--kind", choices=["ours", "stock"], required=True, help="which pipeline")
    parser.add_argument("--model", required=True, help="encoder folder or Hub id")
    parser.add_argument("--num-hidden-layers", type=int, default=None, help="keep the first N layers")
    parser.add_argument("--infer-sentences", type=int, required=True, help="first M fold-0 test sentences")
    parser.add_argument("--threads", type=int, required=True, help="torch threads")
    parser.add_argument("--result", required=True, help="JSON file for the result")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    texts = [record["text"] for record in fold0("test", args.infer_sentences)]
    pipe = build_inference_pipeline(args.kind, args.model, args.num_hidden_layers)
    with torch.inference_mode():
        pipe(texts[:INFER_BATCH_SIZE], batch_size=INFER_BATCH_SIZE)  # warm-up, untimed
        started = time.perf_counter()
        outputs = pipe(texts, batch_size=INFER_BATCH_SIZE)
        seconds = time.perf_counter() - started
    if args.kind == "ours":
        entities = sum(len(o["entities"]) for o in outputs)
        relations = sum(len(o["relations"]) for o in outputs)
    else:
        entities, relations = sum(len(o) for o in outputs), None
    write_result(
        args.result,
        {
            "seconds": seconds,
            "num_sentences": len(texts),
            "entities_predicted": entities,
            "relations_predicted": relations,
        },
    )


WORKERS = {"_ours": worker_ours, "_stock": worker_stock, "_infer": worker_infer}


# ------------------------------------------------------------------------------------- running workers


def worker_env(threads: int) -> dict:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE=env.get("HF_HUB_OFFLINE", "1"),
    )
    return env


def run_worker(name: str, worker_args: list[str], workdir: Path, tag: str, threads: int) -> dict:
    """Run one hidden subcommand in a fresh process; its log goes to ``workdir/tag.log``. Returns its result,
    plus ``wall_seconds`` of the whole process."""
    result = workdir / f"{tag}.json"
    log = workdir / f"{tag}.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        name,
        "--threads",
        str(threads),
        "--result",
        str(result),
        *worker_args,
    ]
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        done = subprocess.run(
            command, cwd=REPO_ROOT, env=worker_env(threads), stdout=handle, stderr=subprocess.STDOUT
        )
    wall = time.perf_counter() - started
    if done.returncode != 0 or not result.is_file():
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-40:])
        raise RuntimeError(f"{tag} failed (exit {done.returncode}); last lines of {log}:\n{tail}")
    payload = json.loads(result.read_text(encoding="utf-8"))
    payload["wall_seconds"] = wall
    print(f"  {tag}: {wall:.1f} s", file=sys.stderr, flush=True)
    return payload


def run_ours(args, model_path: str, num_sentences: int, workdir: Path, tag: str) -> dict:
    """``train.py ade`` for one epoch on the first ``num_sentences`` fold-0 sentences."""
    train_argv = [
        "ade",
        "--fold",
        "0",
        "--max-train-samples",
        str(num_sentences),
        "--max-eval-samples",
        "8",
        "--no-negatives",  # the same sentences as the stock runs (by default each epoch adds as many negatives)
        "--epochs",
        "1",
        "--batch-size",
        str(BATCH_SIZE),
        "--report-to",
        "none",
        "--output-dir",
        str(workdir / tag),
        "--model",
        model_path,
    ]
    if args.num_hidden_layers:
        train_argv += ["--num-hidden-layers", str(args.num_hidden_layers)]
    result = run_worker("_ours", ["--", *train_argv], workdir, tag, args.threads)
    result["sentences_per_second"] = result["num_train_sentences"] / result["train_seconds_per_epoch"]
    return result


def run_stock(args, model_path: str, grouped: bool, workdir: Path, tag: str) -> dict:
    worker_args = ["--model", model_path, "--train-sentences", str(args.train_sentences), "--workdir"]
    worker_args += [str(workdir / tag)]
    if args.num_hidden_layers:
        worker_args += ["--num-hidden-layers", str(args.num_hidden_layers)]
    if grouped:
        worker_args.append("--group-by-length")
    result = run_worker("_stock", worker_args, workdir, tag, args.threads)
    result["sentences_per_second"] = result["num_train_sentences"] / result["train_seconds"]
    return result


def run_infer(args, model_path: str, kind: str, workdir: Path, tag: str) -> dict:
    worker_args = ["--kind", kind, "--model", model_path, "--infer-sentences", str(args.infer_sentences)]
    if args.num_hidden_layers:
        worker_args += ["--num-hidden-layers", str(args.num_hidden_layers)]
    result = run_worker("_infer", worker_args, workdir, tag, args.threads)
    result["sentences_per_second"] = result["num_sentences"] / result["seconds"]
    return result


# ------------------------------------------------------------------------------------------------ FLOPs


def measure_peak_flops(repeats: int = 7) -> dict:
    """Matmul FLOP/s of this process (its thread count): median time of ``torch.mm`` on a square 2048^3
    product and on a model-shaped (1024 tokens x H) @ (H x 4H) product with H = 384; peak = the best."""
    shapes = {"mm 2048x2048 @ 2048x2048": (2048, 2048, 2048), "mm (1024x384) @ (384x1536)": (1024, 384, 1536)}
    measured = {}
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(2):
            torch.mm(a, b)
        times = []
        for _ in range(repeats if m == 2048 else repeats * 5):
            started = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - started)
        measured[name] = 2 * m * k * n / statistics.median(times)
    return {"flops_per_second": measured, "peak_flops_per_second": max(measured.values())}


def forward_flops_per_token(config, seq_len: int) -> float:
    """Analytic forward FLOPs of one token of a BERT encoder in a sequence of ``seq_len`` tokens: 2 x the
    non-embedding linear weights (4H^2 + 2HI per layer; biases, norms, softmax, embeddings, heads left out)
    + the attention score and value matmuls (2 x 2 x seq_len x H per layer)."""
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return layers * (2 * (4 * hidden * hidden + 2 * hidden * inter) + 2 * 2 * seq_len * hidden)


def sentence_flops(config, lengths: list[int], training: bool) -> float:
    """Encoder FLOPs over sentences of these token lengths (no padding); training = 3 x forward."""
    forward = sum(n * forward_flops_per_token(config, n) for n in lengths)
    return 3 * forward if training else forward


def token_lengths(tokenizer, texts: list[str], max_length: int) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]


def flop_counter_check(model_path: str, num_hidden_layers: int | None, tokenizer, config, texts) -> dict:
    """FlopCounterMode on one padded batch (forward, then forward + backward of ``last_hidden_state.sum()``)
    of the plain encoder, eager and SDPA attention, next to the analytic count with and without padding."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModel

    from modeling_ade.hub.encoder_utils import no_pooler_kwargs

    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    padded = batch["input_ids"].shape[1]
    lengths = batch["attention_mask"].sum(-1).tolist()
    no_pooler = no_pooler_kwargs(config)
    check = {
        "batch_sentences": len(texts),
        "padded_length": padded,
        "real_tokens": sum(lengths),
        "analytic_forward_padded": len(texts) * padded * forward_flops_per_token(config, padded),
        "analytic_forward_real_tokens": sentence_flops(config, lengths, training=False),
    }
    check["analytic_train_padded"] = 3 * check["analytic_forward_padded"]
    check["analytic_train_real_tokens"] = 3 * check["analytic_forward_real_tokens"]
    for attention in ("eager", "sdpa"):
        model = AutoModel.from_pretrained(
            model_path, attn_implementation=attention, **no_pooler, **encoder_kwargs(num_hidden_layers)
        ).train()
        with torch.no_grad(), FlopCounterMode(display=False) as forward:
            model(**batch)
        with FlopCounterMode(display=False) as both:
            model(**batch).last_hidden_state.sum().backward()
        check[f"flop_counter_forward_{attention}"] = forward.get_total_flops()
        check[f"flop_counter_train_{attention}"] = both.get_total_flops()
    return check


def flops_summary(args, model_path: str, tokenizer) -> dict:
    """Analytic FLOPs of one training epoch (N sentences) and one inference pass (M sentences)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path, **encoder_kwargs(args.num_hidden_layers))
    train_texts = [r["text"] for r in fold0("train", args.train_sentences)]
    test_texts = [r["text"] for r in fold0("test", args.infer_sentences)]
    infer_max = min(int(tokenizer.model_max_length), config.max_position_embeddings, 512)
    train_lengths = token_lengths(tokenizer, train_texts, MAX_LENGTH)
    test_lengths = token_lengths(tokenizer, test_texts, infer_max)
    return {
        "counted": "encoder only: non-embedding linear layers + attention matmuls; embeddings, norms, "
        "softmax, biases and both task heads (NER linear, relation head) not counted; real tokens only "
        "(no padding); training = 3 x forward",
        "encoder": {
            "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size,
            "num_hidden_layers": config.num_hidden_layers,
        },
        "train_sentences": len(train_lengths),
        "train_tokens": sum(train_lengths),
        "train_epoch_flops": sentence_flops(config, train_lengths, training=True),
        "infer_sentences": len(test_lengths),
        "infer_tokens": sum(test_lengths),
        "infer_forward_flops": sentence_flops(config, test_lengths, training=False),
        "flop_counter_check": flop_counter_check(
            model_path, args.num_hidden_layers, tokenizer, config, train_texts[:BATCH_SIZE]
        ),
    }


# ------------------------------------------------------------------------------------ entity growth


def synthetic_batch(model, tokenizer, num_entities: int, batch: int = 16, seq_len: int = 64) -> dict:
    """16 sentences x 64 tokens, every token its own word, ``num_entities`` one-token entities per sentence
    spread evenly, alternating Drug / Adverse-Effect; gold BIO labels, every candidate pair labelled (one ADE
    per sentence, the rest ``none``)."""
    config = model.config
    generator = torch.Generator().manual_seed(num_entities)
    input_ids = torch.randint(1000, config.encoder_config.vocab_size, (batch, seq_len), generator=generator)
    input_ids[:, 0], input_ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    word_index = torch.arange(seq_len).expand(batch, -1).clone()
    word_index[:, -1] = 0
    labels = torch.full((batch, seq_len), config.label2id["O"])
    labels[:, 0] = labels[:, -1] = -100
    spans = torch.full((batch, num_entities, 3), -1, dtype=torch.long)
    for e in range(num_entities):
        position = 1 + (e * (seq_len - 2)) // num_entities
        type_index = e % 2
        spans[:, e] = torch.tensor([position, position, type_index])
        labels[:, position] = config.label2id[f"B-{config.entity_types[type_index]}"]
    pairs = model.candidate_pairs(spans)
    relation_labels = torch.where(pairs[..., 0] >= 0, 0, -100)
    if pairs.shape[1]:
        relation_labels[:, 0] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "word_index": word_index,
        "labels": labels,
        "entity_spans": spans,
        "relation_pairs": pairs,
        "relation_labels": relation_labels,
    }


def entity_growth(
    model_path: str, num_hidden_layers: int | None, entity_counts: list[int], steps: int
) -> list:
    """Median milliseconds of one forward + backward of the joint model per entity count (2 warm-up steps)."""
    from transformers import AutoTokenizer

    from modeling_ade.hub.modeling_joint_ner_re import JointNerReForAdeExtraction

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    torch.manual_seed(0)
    model = JointNerReForAdeExtraction.from_encoder(
        model_path, encoder_kwargs=encoder_kwargs(num_hidden_layers)
    ).train()
    rows = []
    for num_entities in entity_counts:
        inputs = synthetic_batch(model, tokenizer, num_entities)
        times = []
        for step in range(2 + steps):
            model.zero_grad(set_to_none=True)
            started = time.perf_counter()
            model(**inputs).loss.backward()
            if step >= 2:
                times.append(time.perf_counter() - started)
        rows.append(
            {
                "entities_per_sentence": num_entities,
                "candidate_pairs_per_sentence": int((inputs["relation_pairs"][0, :, 0] >= 0).sum()),
                "candidate_pairs_in_batch": int((inputs["relation_pairs"][..., 0] >= 0).sum()),
                "median_ms": 1e3 * statistics.median(times),
                "steps": steps,
            }
        )
        print(f"  entities {num_entities}: {rows[-1]['median_ms']:.0f} ms", file=sys.stderr, flush=True)
    return rows


# ------------------------------------------------------------------------------------------- the run


def summarize(runs: list[dict], seconds_key: str) -> dict:
    return {
        "runs": runs,
        "median_sentences_per_second": median([r["sentences_per_second"] for r in runs]),
        "median_seconds": median([r[seconds_key] for r in runs]),
        "median_max_rss_mib": median([r["max_rss_mib"] for r in runs]),
    }


def throughput(args, model_path: str, workdir: Path) -> tuple[dict, dict]:
    """Training and inference runs, alternating within each repeat: ours, stock, stock grouped, then the two
    pipelines."""
    training = {"ours": [], "stock": [], "stock_grouped": []}
    inference = {"ours": [], "stock": []}
    for repeat in range(args.repeats):
        print(f"repeat {repeat + 1}/{args.repeats}", file=sys.stderr, flush=True)
        training["ours"].append(run_ours(args, model_path, args.train_sentences, workdir, f"ours_{repeat}"))
        training["stock"].append(run_stock(args, model_path, False, workdir, f"stock_{repeat}"))
        training["stock_grouped"].append(
            run_stock(args, model_path, True, workdir, f"stock_grouped_{repeat}")
        )
        for kind in ("ours", "stock"):
            inference[kind].append(run_infer(args, model_path, kind, workdir, f"infer_{kind}_{repeat}"))
    train_summary = {
        "ours": summarize(training["ours"], "train_seconds_per_epoch"),
        "stock": summarize(training["stock"], "train_seconds"),
        "stock_grouped": summarize(training["stock_grouped"], "train_seconds"),
    }
    infer_summary = {kind: summarize(runs, "seconds") for kind, runs in inference.items()}
    for summary in infer_summary.values():
        summary["median_entities_predicted"] = median([r["entities_predicted"] for r in summary["runs"]])
    return train_summary, infer_summary


def sentence_growth(args, model_path: str, workdir: Path, reuse: list[dict]) -> list[dict]:
    """Ours' seconds per epoch for each ``--growth-sizes`` N (runs at N = --train-sentences are reused)."""
    sizes = []
    for n in args.growth_sizes:
        if n > FOLD0_TRAIN_SENTENCES:
            print(
                f"growth size {n} > {FOLD0_TRAIN_SENTENCES} (all of fold-0 train): skipped", file=sys.stderr
            )
        elif n not in sizes:
            sizes.append(n)
    runs: dict[int, list[dict]] = {n: list(reuse) if n == args.train_sentences else [] for n in sizes}
    for repeat in range(args.repeats):
        for n in sizes:
            if len(runs[n]) <= repeat:
                runs[n].append(run_ours(args, model_path, n, workdir, f"growth_{n}_{repeat}"))
    rows = []
    for n in sizes:
        seconds = median([r["train_seconds_per_epoch"] for r in runs[n]])
        rows.append(
            {
                "train_sentences": n,
                "median_seconds_per_epoch": seconds,
                "sentences_per_second": n / seconds,
                "median_max_rss_mib": median([r["max_rss_mib"] for r in runs[n]]),
                "seconds_per_epoch_runs": [r["train_seconds_per_epoch"] for r in runs[n]],
            }
        )
    return rows


def add_mfu(results: dict) -> None:
    """Model FLOP utilisation of every throughput measurement (analytic FLOPs / median seconds / peak)."""
    peak, flops = results["peak"]["peak_flops_per_second"], results["flops"]
    for summary in results["training"].values():
        summary["mfu"] = flops["train_epoch_flops"] / summary["median_seconds"] / peak
        summary["achieved_flops_per_second"] = flops["train_epoch_flops"] / summary["median_seconds"]
    for summary in results["inference"].values():
        summary["mfu"] = flops["infer_forward_flops"] / summary["median_seconds"] / peak
        summary["achieved_flops_per_second"] = flops["infer_forward_flops"] / summary["median_seconds"]


def add_ratios(results: dict) -> None:
    t, i = results["training"], results["inference"]
    results["ratios"] = {
        "training_ours_over_stock": ratio(
            t["ours"]["median_sentences_per_second"], t["stock"]["median_sentences_per_second"]
        ),
        "training_ours_over_stock_grouped": ratio(
            t["ours"]["median_sentences_per_second"], t["stock_grouped"]["median_sentences_per_second"]
        ),
        "inference_ours_over_stock": ratio(
            i["ours"]["median_sentences_per_second"], i["stock"]["median_sentences_per_second"]
        ),
    }


# ------------------------------------------------------------------------------------------- Markdown


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def markdown(results: dict) -> str:
    """All tables of the run as Markdown."""
    s, t, i, r = results["settings"], results["training"], results["inference"], results["ratios"]
    f, peak = results["flops"], results["peak"]
    lines = [
        f"## Scale benchmark: {s['model']} ({f['encoder']['num_hidden_layers']} layers), "
        f"{s['threads']} thread(s), median of {s['repeats']} repeat(s)",
        "",
        f"Training: first {s['train_sentences']} fold-0 train sentences, 1 epoch, batch {BATCH_SIZE}, "
        f"max length {MAX_LENGTH}, lr {LEARNING_RATE}. Inference: first {s['infer_sentences']} fold-0 test "
        f"sentences, batch {INFER_BATCH_SIZE}, untrained heads.",
        "",
        "| training | ours (`train.py ade`, joint NER+RE) | stock Trainer (NER) | stock Trainer, grouped |",
        "|---|---|---|---|",
        "| sentences/s | "
        + " | ".join(fmt(t[k]["median_sentences_per_second"], 2) for k in ("ours", "stock", "stock_grouped"))
        + " |",
        "| seconds / epoch | "
        + " | ".join(fmt(t[k]["median_seconds"], 2) for k in ("ours", "stock", "stock_grouped"))
        + " |",
        f"| ours / this | 1.00 | {fmt(r['training_ours_over_stock'], 2)} | "
        f"{fmt(r['training_ours_over_stock_grouped'], 2)} |",
        "| MFU (encoder FLOPs, real tokens) | "
        + " | ".join(f"{100 * t[k]['mfu']:.1f} %" for k in ("ours", "stock", "stock_grouped"))
        + " |",
        "| peak RSS (MiB) | "
        + " | ".join(fmt(t[k]["median_max_rss_mib"], 0) for k in ("ours", "stock", "stock_grouped"))
        + " |",
        "",
        "| inference | ours (`ade-extraction`) | stock (`token-classification`, simple) | ours / stock |",
        "|---|---|---|---|",
        f"| sentences/s | {fmt(i['ours']['median_sentences_per_second'], 2)} | "
        f"{fmt(i['stock']['median_sentences_per_second'], 2)} | {fmt(r['inference_ours_over_stock'], 2)} |",
        f"| MFU (encoder forward FLOPs) | {100 * i['ours']['mfu']:.1f} % | {100 * i['stock']['mfu']:.1f} % | |",
        f"| peak RSS (MiB) | {fmt(i['ours']['median_max_rss_mib'], 0)} | "
        f"{fmt(i['stock']['median_max_rss_mib'], 0)} | |",
        f"| entities predicted | {fmt(i['ours']['median_entities_predicted'], 0)} | "
        f"{fmt(i['stock']['median_entities_predicted'], 0)} | |",
        "",
        "| FLOPs | value |",
        "|---|---|",
    ]
    for name, value in peak["flops_per_second"].items():
        lines.append(f"| {name} | {value / 1e9:.1f} GFLOP/s |")
    lines += [
        f"| peak used for MFU | {peak['peak_flops_per_second'] / 1e9:.1f} GFLOP/s |",
        f"| training epoch ({f['train_sentences']} sentences, {f['train_tokens']:,} tokens) | "
        f"{f['train_epoch_flops'] / 1e12:.3f} TFLOP |",
        f"| inference ({f['infer_sentences']} sentences, {f['infer_tokens']:,} tokens) | "
        f"{f['infer_forward_flops'] / 1e12:.4f} TFLOP |",
    ]
    c = f["flop_counter_check"]
    lines += [
        "",
        f"FlopCounterMode check, one batch of {c['batch_sentences']} sentences padded to {c['padded_length']} "
        f"tokens ({c['real_tokens']} real), plain encoder (GFLOP):",
        "",
        "| | analytic, padded | analytic, real tokens | FlopCounter eager | FlopCounter SDPA |",
        "|---|---|---|---|---|",
    ]
    for phase in ("forward", "train"):
        lines.append(
            f"| {'forward' if phase == 'forward' else 'forward + backward'} | "
            f"{c[f'analytic_{phase}_padded'] / 1e9:.2f} | {c[f'analytic_{phase}_real_tokens'] / 1e9:.2f} | "
            f"{c[f'flop_counter_{phase}_eager'] / 1e9:.2f} | {c[f'flop_counter_{phase}_sdpa'] / 1e9:.2f} |"
        )
    lines += ["", f"Counted: {f['counted']}."]
    growth = results.get("growth")
    if growth:
        lines += [
            "",
            f"Growth with training sentences (ours; fold-0 train has {FOLD0_TRAIN_SENTENCES:,} sentences):",
            "",
            "| sentences | seconds / epoch | sentences/s | peak RSS (MiB) |",
            "|---|---|---|---|",
        ]
        for row in growth["sentences"]:
            lines.append(
                f"| {row['train_sentences']:,} | {row['median_seconds_per_epoch']:.2f} | "
                f"{row['sentences_per_second']:.2f} | {row['median_max_rss_mib']:.0f} |"
            )
        lines += [
            "",
            "Growth with entities per sentence (joint model, one forward + backward, synthetic batch of 16 x 64 "
            "tokens):",
            "",
            "| entities / sentence | candidate pairs / sentence | ms / step |",
            "|---|---|---|",
        ]
        for row in growth["entities"]:
            lines.append(
                f"| {row['entities_per_sentence']} | {row['candidate_pairs_per_sentence']} | "
                f"{row['median_ms']:.1f} |"
            )
    env = results["environment"]
    lines += [
        "",
        f"Load average at start / end: {env['loadavg_start']} / {env['loadavg_end']}; "
        f"wall time of the benchmark {env['benchmark_seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"encoder name, Hub id or folder (default: {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--num-hidden-layers",
        type=int,
        default=None,
        help="keep only the first N encoder layers everywhere (a quick check); default: all",
    )
    parser.add_argument(
        "--train-sentences",
        type=int,
        default=1000,
        help="first N fold-0 training sentences for the throughput runs (default: 1000)",
    )
    parser.add_argument(
        "--infer-sentences",
        type=int,
        default=400,
        help="first M fold-0 test sentences for the pipelines (default: 400; fold-0 test has 427)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="repeats of every measurement; medians are reported (default: 3)",
    )
    parser.add_argument(
        "--growth-sizes",
        type=int,
        nargs="+",
        default=[1000, 2000, FOLD0_TRAIN_SENTENCES],
        metavar="N",
        help=f"training sentences for the growth runs (default: 1000 2000 {FOLD0_TRAIN_SENTENCES}, "
        f"the last = all of fold-0 train)",
    )
    parser.add_argument(
        "--entity-counts",
        type=int,
        nargs="+",
        default=[2, 4, 8, 16, 32],
        metavar="E",
        help="entities per synthetic sentence for the entity growth (default: 2 4 8 16 32; at most 62)",
    )
    parser.add_argument(
        "--entity-steps",
        type=int,
        default=10,
        help="timed forward + backward steps per entity count, after 2 warm-up steps (default: 10)",
    )
    parser.add_argument("--skip-growth", action="store_true", help="leave out both growth measurements")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("runs/bench/scale.json"),
        help="JSON results; the Markdown tables go next to it with suffix .md (default: runs/bench/scale.json)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (and OMP/MKL threads) of this process and every subprocess (default: 1)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the subprocesses' outputs and logs here (default: a temporary folder, deleted at the end)",
    )
    args = parser.parse_args(argv)
    if any(not 1 <= e <= 62 for e in args.entity_counts):
        parser.error("--entity-counts must be between 1 and 62 (one-token entities in 62 positions)")
    return args


def run_benchmark(args: argparse.Namespace, workdir: Path) -> dict:
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from modeling_ade.encoders import resolve_model_name

    hf_logging.set_verbosity_error()  # no load reports of the truncated / head-less encoders
    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    torch.set_num_threads(args.threads)
    model_path = resolve_model_name(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    print("measuring matmul peak and counting FLOPs", file=sys.stderr, flush=True)
    results: dict = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "workdir"}, "model_path": model_path},
        "peak": measure_peak_flops(),
        "flops": flops_summary(args, model_path, tokenizer),
    }
    results["settings"]["output"] = str(args.output)
    results["training"], results["inference"] = throughput(args, model_path, workdir)
    if not args.skip_growth:
        print("growth with training sentences", file=sys.stderr, flush=True)
        sentences = sentence_growth(args, model_path, workdir, results["training"]["ours"]["runs"])
        print("growth with entities per sentence", file=sys.stderr, flush=True)
        entities = entity_growth(model_path, args.num_hidden_layers, args.entity_counts, args.entity_steps)
        results["growth"] = {"sentences": sentences, "entities": entities}
    add_mfu(results)
    add_ratios(results)
    import transformers

    results["environment"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "loadavg_start": loadavg_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "benchmark_seconds": time.perf_counter() - started,
    }
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in WORKERS:
        WORKERS[argv[0]](argv[1:])
        return 0
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = run_benchmark(args, workdir)
    table = markdown(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    args.output.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)
    print(f"written: {args.output}, {args.output.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
