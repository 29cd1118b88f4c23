"""ONNX Runtime against PyTorch: equivalence of the predictions and inference speed (issue 17, BENCHMARKS 11).

    .venv/bin/python benchmarks/bench_onnx.py --ade-model runs/bench/ade_fold0 --ner-model runs/bench/ner_recipe \\
        --threads 1 --output runs/bench/onnx.json

Both models are exported into ``--work`` (copies: the given folders are not touched), fp32 and int8.

1. **Equivalence.** The ADE model on fold 0's test part + its held-out negative sentences (the evaluation of
   ``train.py ade``), and the BERT-CRF model on HealthNER dev (the evaluation of ``train.py ner``), once per backend
   (PyTorch, ONNX fp32, ONNX int8): how many sentences get exactly the same entities and relations (tags) as
   PyTorch, and the strict F1 of each.
2. **Speed** (sentences/s, same sentences, batch size and threads; medians of ``--repeats``, backends alternating):
   - ``ade-extraction`` on PyTorch, ONNX fp32 and ONNX int8 against the stock ``token-classification`` pipeline
     (``aggregation_strategy="simple"``) on a stock ``AutoModelForTokenClassification`` that holds the ADE model's
     own encoder and NER layer (so it finds the same entities, without relations);
   - ``ade-extraction`` on ONNX fp32 without the length groups (``run_cost=0``: the padded batches as given), to
     show what the groups add;
   - the BERT-CRF model in the ``token-classification`` pipeline on PyTorch, ONNX fp32 and ONNX int8.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

BACKENDS = (None, "fp32", "int8")


def name(backend: str | None) -> str:
    return "pytorch" if backend is None else f"onnx_{backend}"


def exported(folder: Path, work: Path) -> Path:
    """A copy of ``folder`` with its ONNX encoders (fp32, int8) under ``work``."""
    from modeling_ade.export import export

    target = work / folder.name
    export(
        folder, int8=True, output=target
    )  # again each time: a copy made from older weights is never reused
    return target


# ---------------------------------------------------------------------------------------------- equivalence


def ade_equivalence(folder: Path, batch_size: int) -> dict:
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from datasets_scripts.ade_corpus import ade_records
    from modeling_ade import JointNerReForAdeExtraction
    from modeling_ade.ade_data import split_negatives
    from modeling_ade.joint_training import encode_records, fold_predictions, score_fold

    args = json.loads((folder / "training_args.json").read_text(encoding="utf-8"))
    fold = int(args.get("fold", 0))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    test = ade_records(f"fold_{fold}")["test"]
    _, held_out = split_negatives(next(iter(ade_records("negatives").values())), fold)
    accelerator = Accelerator(cpu=True)
    result, reference = {"fold": fold, "sentences": len(test) + len(held_out)}, None
    for backend in BACKENDS:
        model = JointNerReForAdeExtraction.from_pretrained(folder, onnx=backend).eval()
        features = encode_records([*test, *held_out], tokenizer, model.config, args["max_length"], "test")
        started = time.perf_counter()
        with torch.inference_mode():
            predictions, on_gold = fold_predictions(accelerator, model, tokenizer, features, batch_size)
        seconds = time.perf_counter() - started
        metrics = score_fold(test, len(held_out), predictions, on_gold, model.config)
        row = {
            "seconds": round(seconds, 2),
            **{
                f"{block}.{key}": metrics[block][key]
                for block in ("overlap_removed", "overlap_kept")
                for key in ("ner_f1_macro", "ner_f1_micro", "re_f1_strict")
            },
            "neg_false_positive_rate": metrics["real_text"]["neg_false_positive_rate"],
        }
        if reference is None:
            reference = predictions
        else:
            same = [
                sorted(a["entities"]) == sorted(b["entities"])
                and sorted(a["relations"]) == sorted(b["relations"])
                for a, b in zip(reference, predictions)
            ]
            row["sentences_identical_to_pytorch"] = sum(same)
        result[name(backend)] = row
        print(f"ade {name(backend)}: {json.dumps(row)}", file=sys.stderr, flush=True)
    return result


def ner_equivalence(folder: Path, batch_size: int) -> dict:
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    from datasets_scripts.chinese_healthner import load_healthner
    from modeling_ade import BertCrfForTokenClassification
    from modeling_ade.metrics import ner_scores_from_tags
    from modeling_ade.ner_data import NerCollator, encode_sentences, tagged_sentences_from_dataset
    from modeling_ade.ner_task import predict_word_tags

    args = json.loads((folder / "training_args.json").read_text(encoding="utf-8"))
    data = tagged_sentences_from_dataset(
        load_healthner("dev")["validation"], "tokens", "ner_tags", "Chinese HealthNER dev"
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    accelerator = Accelerator(cpu=True)
    result, reference = {"sentences": len(data.words)}, None
    for backend in BACKENDS:
        model = BertCrfForTokenClassification.from_pretrained(folder, onnx=backend).eval()
        windows, _ = encode_sentences(
            data, tokenizer, model.config.label2id, args["max_length"], with_labels=False
        )
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].features["input_ids"]))
        loader = DataLoader(
            [{**windows[i].features, "index": i} for i in order],
            batch_size=batch_size,
            collate_fn=NerCollator(tokenizer.pad_token_id),
        )
        started = time.perf_counter()
        with torch.inference_mode():
            tags = predict_word_tags(accelerator, model, loader, windows, data, model.config.id2label)
        seconds = time.perf_counter() - started
        scores = ner_scores_from_tags(data.tags, tags)
        row = {"seconds": round(seconds, 2), **{k: scores[k] for k in ("ner_f1_micro", "ner_f1_macro")}}
        if reference is None:
            reference = tags
        else:
            row["sentences_identical_to_pytorch"] = sum(a == b for a, b in zip(reference, tags))
        result[name(backend)] = row
        print(f"ner {name(backend)}: {json.dumps(row)}", file=sys.stderr, flush=True)
    return result


# ---------------------------------------------------------------------------------------------------- speed


def stock_token_classifier(ade_folder: Path, scratch: Path):
    """A stock ``AutoModelForTokenClassification`` holding the ADE model's encoder and NER layer."""
    from transformers import AutoModelForTokenClassification

    from modeling_ade import JointNerReForAdeExtraction

    ours = JointNerReForAdeExtraction.from_pretrained(ade_folder)
    ours.encoder.save_pretrained(scratch / "encoder")
    stock = AutoModelForTokenClassification.from_pretrained(
        scratch / "encoder", id2label=ours.config.id2label, label2id=ours.config.label2id
    )
    stock.classifier.load_state_dict(ours.ner_classifier.state_dict())
    return stock.eval()


def time_pipeline(pipe, texts: list[str], batch_size: int) -> float:
    with torch.inference_mode():
        pipe(texts[:batch_size], batch_size=batch_size)  # warm-up, untimed
        started = time.perf_counter()
        outputs = pipe(texts, batch_size=batch_size)
        seconds = time.perf_counter() - started
    assert len(outputs) == len(texts)
    return seconds


def speed(args, ade: Path, ner: Path) -> dict:
    from transformers import AutoTokenizer, pipeline

    from datasets_scripts.ade_corpus import ade_records
    from datasets_scripts.chinese_healthner import load_healthner
    from modeling_ade import AdeExtractionPipeline, BertCrfForTokenClassification, JointNerReForAdeExtraction

    fold = int(json.loads((ade / "training_args.json").read_text(encoding="utf-8")).get("fold", 0))
    ade_texts = [r["text"] for r in ade_records(f"fold_{fold}")["test"][: args.sentences]]
    ner_texts = ["".join(words) for words in load_healthner("dev")["validation"]["tokens"][: args.sentences]]
    ade_tokenizer, ner_tokenizer = AutoTokenizer.from_pretrained(ade), AutoTokenizer.from_pretrained(ner)
    with tempfile.TemporaryDirectory() as scratch:
        pipes = {
            "ade/stock_token_classification": pipeline(
                "token-classification",
                model=stock_token_classifier(ade, Path(scratch)),
                tokenizer=ade_tokenizer,
                aggregation_strategy="simple",
            )
        }
    for backend in BACKENDS:
        model = JointNerReForAdeExtraction.from_pretrained(ade, onnx=backend).eval()
        pipes[f"ade/{name(backend)}"] = pipeline(
            "ade-extraction", model=model, tokenizer=ade_tokenizer, pipeline_class=AdeExtractionPipeline
        )
    model = JointNerReForAdeExtraction.from_pretrained(ade, onnx="fp32").eval()
    model.encoder.run_cost = 0  # the padded batches as the pipeline makes them: what the length groups save
    pipes["ade/onnx_fp32_padded"] = pipeline(
        "ade-extraction", model=model, tokenizer=ade_tokenizer, pipeline_class=AdeExtractionPipeline
    )
    for backend in BACKENDS:
        model = BertCrfForTokenClassification.from_pretrained(ner, onnx=backend).eval()
        pipes[f"ner/{name(backend)}"] = pipeline(
            "token-classification", model=model, tokenizer=ner_tokenizer, aggregation_strategy="simple"
        )
    seconds: dict[str, list[float]] = {key: [] for key in pipes}
    for repeat in range(args.repeats):
        for key, pipe in pipes.items():
            texts = ade_texts if key.startswith("ade/") else ner_texts
            seconds[key].append(time_pipeline(pipe, texts, args.batch_size))
            print(f"repeat {repeat}: {key} {seconds[key][-1]:.2f} s", file=sys.stderr, flush=True)
    result = {
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "sentences": {"ade": len(ade_texts), "ner": len(ner_texts)},
    }
    for key, values in seconds.items():
        count = len(ade_texts) if key.startswith("ade/") else len(ner_texts)
        result[key] = {"seconds": values, "sentences_per_s": count / statistics.median(values)}
    stock = result["ade/stock_token_classification"]["sentences_per_s"]
    crf = result["ner/pytorch"]["sentences_per_s"]
    result["ratios"] = {
        **{f"ade/{name(b)} / stock": result[f"ade/{name(b)}"]["sentences_per_s"] / stock for b in BACKENDS},
        "ade/onnx_fp32_padded / stock": result["ade/onnx_fp32_padded"]["sentences_per_s"] / stock,
        **{
            f"ner/{name(b)} / ner/pytorch": result[f"ner/{name(b)}"]["sentences_per_s"] / crf
            for b in BACKENDS
        },
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ade-model", type=Path, required=True, help="a train.py ade --fold output folder")
    parser.add_argument(
        "--ner-model", type=Path, required=True, help="a train.py ner output folder (trained on train)"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("runs/bench/onnx"), help="where the exported copies go"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads (default: 1)")
    parser.add_argument("--batch-size", type=int, default=32, help="pipeline batch size (default: 32)")
    parser.add_argument("--sentences", type=int, default=400, help="sentences per speed run (default: 400)")
    parser.add_argument("--repeats", type=int, default=3, help="speed runs per pipeline (default: 3)")
    parser.add_argument(
        "--eval-batch-size", type=int, default=64, help="equivalence batch size (default: 64)"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["equivalence", "speed"],
        default=["equivalence", "speed"],
        help="what to run",
    )
    parser.add_argument("--output", type=Path, default=Path("runs/bench/onnx.json"), help="JSON result file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import modeling_ade  # noqa: F401  (registers the task models and the pipeline)

    args.work.mkdir(parents=True, exist_ok=True)
    ade, ner = exported(args.ade_model, args.work), exported(args.ner_model, args.work)
    result = {"ade_model": str(args.ade_model), "ner_model": str(args.ner_model)}
    if "equivalence" in args.parts:
        result["equivalence"] = {
            "ade": ade_equivalence(ade, args.eval_batch_size),
            "ner": ner_equivalence(ner, args.eval_batch_size),
        }
    if "speed" in args.parts:
        result["speed"] = speed(args, ade, ner)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
