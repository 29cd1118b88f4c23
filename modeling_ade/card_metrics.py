"""A model's ``metrics.json`` as the card's evaluation table and the Hub's ``model-index`` (not Hub code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import EvalResult

from .model_run import ModelRun

# (metrics.json key, model-index metric type, task, human name)
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("ner_f1_micro", "f1", "ner", "NER F1, micro (strict spans + types)"),
    ("ner_precision_micro", "precision", "ner", "NER precision, micro (strict)"),
    ("ner_recall_micro", "recall", "ner", "NER recall, micro (strict)"),
    ("ner_f1_macro", "f1", "ner", "NER F1, macro over entity types (strict)"),
    ("ner_precision_macro", "precision", "ner", "NER precision, macro (strict)"),
    ("ner_recall_macro", "recall", "ner", "NER recall, macro (strict)"),
    ("re_f1_strict", "f1", "re", "RE F1, end-to-end strict (spans + entity types + relation type)"),
    ("re_precision_strict", "precision", "re", "RE precision, end-to-end strict"),
    ("re_recall_strict", "recall", "re", "RE recall, end-to-end strict"),
    ("re_f1_strict_macro", "f1", "re", "RE F1, end-to-end strict, macro over relation types"),
    ("re_f1_boundaries", "f1", "re", "RE F1, end-to-end boundaries (spans + relation type)"),
    ("re_precision_boundaries", "precision", "re", "RE precision, end-to-end boundaries"),
    ("re_recall_boundaries", "recall", "re", "RE recall, end-to-end boundaries"),
    ("re_f1_boundaries_macro", "f1", "re", "RE F1, end-to-end boundaries, macro over relation types"),
    ("re_f1_gold_entities", "f1", "re", "RE F1, gold entities given"),
    ("re_precision_gold_entities", "precision", "re", "RE precision, gold entities given"),
    ("re_recall_gold_entities", "recall", "re", "RE recall, gold entities given"),
    (
        "neg_false_positive_rate",
        "false_positive_rate",
        "sentence",
        "Held-out negative sentences with at least one relation (lower is better)",
    ),
    (
        "neg_entity_rate",
        "entity_rate",
        "sentence",
        "Held-out negative sentences with at least one entity (lower is better)",
    ),
    ("sentence_f1", "f1", "sentence", "Sentence states a relation: F1"),
    ("sentence_precision", "precision", "sentence", "Sentence states a relation: precision"),
    ("sentence_recall", "recall", "sentence", "Sentence states a relation: recall"),
)
TASKS = {
    "ner": ("token-classification", "Named entity recognition"),
    "re": ("relation-extraction", "Relation extraction"),
    "sentence": ("text-classification", "Sentence-level relation detection on real text"),
}
OVERLAP_VARIANTS = {  # the metric blocks of an ADE metrics.json (the real-text block is not an overlap variant)
    "overlap_kept": "overlapping entities kept",
    "overlap_removed": "overlapping entities removed",
    "real_text": "real text: test part + held-out negative sentences",
}


@dataclass
class EvalBlock:
    """One column group of the evaluation: a scope (a test split or a CV mean) and an overlap variant."""

    scope: str  # "fold 3 test part" / "10-fold cross-validation, mean over folds"
    variant: str  # "overlapping entities kept" / "" when the metrics have no overlap variants
    values: dict[str, float]  # metrics.json key -> value (the mean for CV)
    stds: dict[str, float | None] = field(default_factory=dict)  # CV only
    dataset_config: str | None = None
    dataset_split: str | None = None


def _variants(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``[(variant name, block)]``: the two overlap blocks (ADE), else the top level as one block."""
    if any(k in metrics for k in OVERLAP_VARIANTS):
        return [
            (OVERLAP_VARIANTS[k], metrics[k]) for k in OVERLAP_VARIANTS if isinstance(metrics.get(k), dict)
        ]
    return [("", metrics)]


def evaluation_blocks(run: ModelRun) -> list[EvalBlock]:
    """The model's own test results (``metrics.json``), then the cross-validation means (``--cv``)."""
    blocks: list[EvalBlock] = []
    args = run.training_args
    held_out = (run.metrics or {}).get("eval_held_out", True)  # False: trained on the evaluation split too
    if run.metrics and "cross_validation" not in run.metrics and held_out:
        if run.corpus == "ade" and run.fold is not None:
            scope, config, split = f"fold {run.fold} test part", f"fold_{run.fold}", "test"
        elif run.corpus == "chinese_healthner":
            scope, config, split = "dev split (project protocol)", "dev", "validation"
        else:
            split = args.get("eval_split") or "validation"
            scope, config = f"{split} split", args.get("eval_dataset_config") or args.get("dataset_config")
        n = run.metrics.get("num_test_sentences", run.metrics.get("num_eval_sentences"))
        scope += f", {n:,} sentences" if isinstance(n, int) else ""
        for variant, block in _variants(run.metrics):
            values = {k: float(block[k]) for k, *_ in METRICS if _is_number(block.get(k))}
            if values:
                blocks.append(EvalBlock(scope, variant, values, dataset_config=config, dataset_split=split))
    cv = (run.cv_metrics or run.metrics or {}).get("cross_validation")
    if cv:
        folds = (run.cv_metrics or run.metrics or {}).get("folds") or []
        scope = f"{len(folds)}-fold cross-validation, mean over folds" if folds else "cross-validation mean"
        for variant, block in _variants(cv):
            stats = {
                k: block[k] for k, *_ in METRICS if isinstance(block.get(k), dict) and "mean" in block[k]
            }
            if stats:
                blocks.append(
                    EvalBlock(
                        scope,
                        variant,
                        {k: float(s["mean"]) for k, s in stats.items()},
                        {k: s.get("std") for k, s in stats.items()},
                        dataset_split="test",
                    )
                )
    return blocks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_name(key: str, variant: str) -> str:
    """The model-index ``name`` of a metric: its human name + the overlap variant."""
    name = next(n for k, _, _, n in METRICS if k == key)
    return f"{name}; {variant}" if variant else name


def eval_results(blocks: list[EvalBlock], dataset_id: str, dataset_name: str) -> list[EvalResult]:
    """One ``EvalResult`` per (block, metric); ``ModelCardData`` groups them into ``model-index``."""
    results = []
    for block in blocks:
        for key, value in block.values.items():
            _, metric_type, task, _ = next(m for m in METRICS if m[0] == key)
            task_type, task_name = TASKS[task]
            results.append(
                EvalResult(
                    task_type=task_type,
                    task_name=task_name,
                    dataset_type=dataset_id,
                    dataset_name=f"{dataset_name}, {block.scope}",
                    dataset_config=block.dataset_config,
                    dataset_split=block.dataset_split,
                    metric_type=metric_type,
                    metric_value=value,
                    metric_name=metric_name(key, block.variant),
                )
            )
    return results


def evaluation_table(blocks: list[EvalBlock]) -> str:
    """Markdown: one row per metric, one column per block (CV columns show mean ± std)."""
    if not blocks:
        return "_No held-out evaluation: no `metrics.json` with metrics of the evaluation contract was found next to the model, or the model was trained on its evaluation split too (`--train-split train+dev`)._\n"
    keys = [k for k, *_ in METRICS if any(k in b.values for b in blocks)]
    header = ["metric"] + [f"{b.scope}" + (f", {b.variant}" if b.variant else "") for b in blocks]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        cells = [next(n for k, _, _, n in METRICS if k == key)]
        for block in blocks:
            if key not in block.values:
                cells.append("–")
                continue
            cell = f"{block.values[key]:.4f}"
            if block.stds.get(key) is not None:
                cell += f" ± {block.stds[key]:.4f}"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluation_text(blocks: list[EvalBlock], corpus: str | None = None) -> str:
    """What the evaluation columns mean: only the conventions present (``corpus``: ``run.corpus``)."""
    keys = {k for b in blocks for k in b.values}
    parts = [
        "Strict scores from the run's `metrics.json` (also in this repository). NER: exact entity spans and "
        "types (conlleval chunking), micro and macro over entity types."
    ]
    if any(k.startswith("re_") for k in keys):
        parts.append(
            "RE end-to-end *strict*: both entity spans, both entity types and the relation type must match "
            '("RE+"); *boundaries*: spans and relation type, entity types ignored; *gold entities*: relation '
            "classification when the gold entities are given."
        )
    if any(b.variant == OVERLAP_VARIANTS["overlap_removed"] for b in blocks):
        parts.append(
            '"Overlapping entities removed" drops gold entities that overlap another gold entity, their '
            "relations, and predictions over them, as much of the literature does."
        )
    if any(k.endswith("_macro") and k.startswith("re_") for k in keys):
        parts.append("RE micro scores pool every relation type; macro scores average the per-type F1.")
    if corpus == "custom" and any(b.variant == OVERLAP_VARIANTS["real_text"] for b in blocks):
        parts.append(
            "Real text: the evaluation split's sentences with a relation against those without one: a "
            "sentence is flagged when the model extracts at least one relation from it."
        )
    elif any(b.variant == OVERLAP_VARIANTS["real_text"] for b in blocks):
        parts.append(
            "Real text: the literature's test sentences all state an adverse event, real text mostly does not. "
            "The fold's held-out part of the negative sentences (`ADE-NEG.txt`, PubMed-disjoint from those "
            "trained on) is scored with the test part: a sentence is flagged when the model extracts at least "
            "one relation from it."
        )
    if any(b.stds for b in blocks):
        parts.append("Cross-validation columns: mean ± sample standard deviation over folds.")
    return " ".join(parts)
