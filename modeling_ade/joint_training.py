"""Joint NER + relation extraction fine-tuning shared by ``train.py ade`` (the ADE corpus preset) and
``train.py joint`` (any corpus of entities and relations): settings, encoding, training one fold, evaluation and
the fold loop (not Hub code).

A task gives :func:`run_folds` a function that returns each fold's :class:`FoldData` (records of the project
schema, see ``datasets_scripts.relation_formats``) and the :class:`CorpusTypes` read from its training data.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.logging import get_logger
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from .ade_data import AdeCollator, encode_ade_record
from .alignment import AlignmentCounts
from .encoders import hub_name, resolve_model_name
from .hub.modeling_joint_ner_re import JointNerReForAdeExtraction
from .hub.pipeline_ade_extraction import (
    letter_scripts,
    relation_label_ids,
    relation_probabilities,
    script_filter,
    window_predictions,
)
from .lora import apply_lora_from_settings
from .metrics import (
    aggregate_folds,
    compute_ade_metrics,
    format_cv_table,
    per_type_tables,
    real_text_metrics,
)
from .sampling import LengthGroupedBatchSampler
from .settings import FineTuneSettings
from .training import fit, loggable, run_record, save_run, write_json

logger = get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class JointSettings(FineTuneSettings):
    """What every joint NER + RE run shares (the "joint model" group of ``train.py ade|joint --help``), with the
    paper's defaults. Subclasses (``ade_task.AdeSettings``, ``joint_task.JointCorpusSettings``) add the data."""

    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    epochs: int = 5
    learning_rate: float = 2e-5
    max_length: int = 128
    fold: int = 0
    cv: int | None = None
    folds: tuple[int, ...] | None = None
    ner_loss_weight: float = 0.5
    classifier_dropout: float = 0.1
    relation_negatives: str = "predicted-entities"
    relation_threshold: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.fold <= 9:
            raise ValueError(f"--fold must be between 0 and 9, got {self.fold}")
        if self.cv is not None and not 1 <= self.cv <= 10:
            raise ValueError(f"--cv must be between 1 and 10, got {self.cv}")
        if self.folds is not None:
            object.__setattr__(self, "folds", tuple(self.folds))
            if not self.cv:
                raise ValueError("--folds applies to --cv only")
            outside = [k for k in self.folds if not 0 <= k < self.cv]
            if outside or not self.folds:
                raise ValueError(
                    f"--folds must name folds of --cv {self.cv} (0..{self.cv - 1}), got {list(self.folds)}"
                )
        if self.cv and self.resume_from not in (None, "latest"):
            raise ValueError(
                "--cv resumes with `--resume-from latest` (each fold from its own OUT/fold_K/checkpoints)"
            )
        if not 0.0 < self.relation_threshold < 1.0:
            raise ValueError(f"--relation-threshold must be in (0, 1), got {self.relation_threshold}")
        if self.relation_negatives not in ("gold-pairs", "predicted-entities"):
            raise ValueError(
                f"--relation-negatives must be gold-pairs or predicted-entities, got {self.relation_negatives!r}"
            )

    @property
    def sentence_gate(self) -> bool:
        """Train the sentence gate (a sentence with a relation against one without)."""
        return False

    @property
    def relationless_ner_loss(self) -> bool:
        """Train the NER head on the sentences without a relation too."""
        return True


def add_joint_arguments(parser: argparse.ArgumentParser, fold_help: str, cv_help: str) -> None:
    """The flags of the joint model shared by ``train.py ade`` and ``train.py joint``."""
    d = JointSettings.__dataclass_fields__
    g = parser.add_argument_group("joint model and folds")
    which = g.add_mutually_exclusive_group()
    which.add_argument(
        "--fold", type=int, default=d["fold"].default, choices=range(10), metavar="K", help=fold_help
    )
    which.add_argument("--cv", type=int, default=None, metavar="N", help=cv_help)
    g.add_argument(
        "--folds",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help="with --cv: train only these folds in this run (e.g. share the folds out over machines or sessions); "
        "the others are kept when finished before (--resume-from latest) and the cross-validation summary is "
        "written once OUT holds every fold (default: all folds)",
    )
    g.add_argument(
        "--ner-loss-weight",
        type=float,
        default=d["ner_loss_weight"].default,
        help="λ in loss = λ·L_ner + (1-λ)·L_rel (default: 0.5)",
    )
    g.add_argument(
        "--classifier-dropout",
        type=float,
        default=d["classifier_dropout"].default,
        help="dropout in both heads (default: 0.1)",
    )
    g.add_argument(
        "--relation-negatives",
        choices=["gold-pairs", "predicted-entities"],
        default=d["relation_negatives"].default,
        help="pairs the relation head learns to say 'none' to: gold-pairs = unrelated pairs of gold entities only "
        "(the paper's); predicted-entities = also every pair with an entity the NER head predicts that is not "
        "gold, in the same forward pass (default: predicted-entities)",
    )
    g.add_argument(
        "--relation-threshold",
        type=float,
        default=d["relation_threshold"].default,
        help="a pair is a relation when its best non-'none' label (every label, for a multi-label model) has at "
        "least this probability; stored in the model's config and used by the pipeline (default: 0.5)",
    )


@dataclass
class CorpusTypes:
    """The label sets of a corpus, stored in the model's config (its one source of truth)."""

    entity_types: list[str]
    relation_types: list[str]
    candidate_types: list[list[str]]  # (head type, tail type) pairs that relations may join
    symmetric_relations: list[str] = field(default_factory=list)
    multi_label: bool = False  # some pair holds several relation types


@dataclass
class FoldData:
    """One fold of a run: what is trained on and what is scored."""

    train: list[dict]
    test: list[dict]
    types: CorpusTypes
    description: str
    train_negatives: list[dict] = field(default_factory=list)  # sampled per epoch (the ADE preset)
    held_out_negatives: list[dict] = field(default_factory=list)  # scored for false positives
    language: str = "en"
    notes: list[str] = field(default_factory=list)  # how the data was read (metrics.json "data", the card)


def encode_records(records, tokenizer, config, max_length: int, split: str) -> list[dict]:
    """Encode every record and log what alignment and truncation cost (never silently)."""
    features, counts, truncated, not_candidates, unplaced = [], AlignmentCounts(), 0, 0, 0
    for index, record in enumerate(records):
        encoded = encode_ade_record(record, tokenizer, config, max_length)
        counts.add(encoded.counts)
        truncated += encoded.truncated
        not_candidates += encoded.gold_relations_not_candidates
        unplaced += encoded.gold_relations_unplaced
        features.append({**encoded.features, "index": index, "text": record["text"]})
    logger.info(
        f"{split}: {len(records)} sentences, {truncated} longer than --max-length {max_length} (cut; their "
        f"entities past the cut are counted as missed), entities {counts.entities}: "
        f"{counts.cut_by_truncation} cut by truncation, {counts.overlapping_skipped_in_ner} overlapping "
        f"(relation head only), {counts.not_on_word_boundary} widened to word boundaries, "
        f"{counts.not_found} not found; {not_candidates} gold relations outside the candidate types, "
        f"{unplaced} gold relations without a placed argument (no relation target for them)",
        main_process_only=True,
    )
    return features


def canonical_relation(head: tuple, tail: tuple, label: str, symmetric: Sequence[str]) -> tuple:
    """``(head, tail, label)`` of entity keys ``(type, start, end)``; for a symmetric label the entity that comes
    first in the text (by ``(start, end)``) is the head, so both orders are one relation."""
    if label in symmetric and (tail[1], tail[2]) < (head[1], head[2]):
        head, tail = tail, head
    return (head, tail, label)


def gold_doc(record: dict, symmetric: Sequence[str] = ()) -> dict:
    entities = [(e["type"], e["start"], e["end"]) for e in record["entities"]]
    relations = [
        canonical_relation(entities[r["head"]], entities[r["tail"]], r["type"], symmetric)
        for r in record["relations"]
    ]
    return {"entities": entities, "relations": relations}


def entity_scripts(records) -> list[str]:
    """Unicode scripts of the letters in the training entities (``config.entity_scripts``)."""
    scripts: set[str] = set()
    for record in records:
        for entity in record["entities"]:
            scripts |= letter_scripts(record["text"][entity["start"] : entity["end"]])
    return sorted(scripts)


@torch.no_grad()
def predict(accelerator, model, loader, features: list[dict], config) -> tuple[list[dict], list[dict]]:
    """End-to-end predictions and relation predictions on gold entities, in feature (= record) order.

    ``loader`` is prepared (sharded under several processes); results are gathered once per batch with
    ``gather_for_metrics`` so no sample is duplicated or dropped. Predicted entities get their character
    offsets from the tokenizer's offsets; on the gold-entity pass the entities keep their exact gold
    offsets, so only the relation decision is scored there.
    """
    model.eval()
    end_to_end, on_gold = {}, {}
    for batch in tqdm(loader, desc="evaluate", disable=not accelerator.is_local_main_process):
        indices = batch.pop("index").tolist()
        inputs = {
            k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "word_index") if k in batch
        }
        predicted = model(**inputs)
        gold = model(**inputs, entity_spans=batch["entity_spans"], relation_pairs=batch["relation_pairs"])
        rows = []
        for b, index in enumerate(indices):
            feature = features[index]
            rows.append(
                (
                    index,
                    _predicted_doc(predicted, b, feature["offset_mapping"], feature["text"], config),
                    _gold_entity_doc(gold, b, feature["gold_entities"], config),
                )
            )
        for index, e2e, gold_entities in accelerator.gather_for_metrics(rows, use_gather_object=True):
            end_to_end[index], on_gold[index] = e2e, gold_entities
    order = range(len(features))
    return [end_to_end[i] for i in order], [on_gold[i] for i in order]


def _predicted_doc(output, b: int, offsets: list, text: str, config) -> dict:
    """One sentence's end-to-end prediction, decided as the pipeline decides: relation threshold, labels
    (multi-label, symmetric) and entity scripts from the config."""
    entities, relations = window_predictions(
        offsets,
        len(offsets),
        output.entity_spans[b].tolist(),
        output.entity_scores[b].tolist(),
        output.relation_pairs[b].tolist(),
        relation_probabilities(output.relation_logits[b], config.relation_multi_label).tolist(),
        config.entity_types,
        config.relation_labels,
        relation_threshold=config.relation_threshold,
        sentence_probability=None
        if output.sentence_logits is None
        else float(output.sentence_logits[b].float().softmax(-1)[1]),
        sentence_threshold=config.sentence_threshold,
        sentence_gate_scope=config.sentence_gate_scope,
        multi_label=config.relation_multi_label,
        symmetric_relations=config.symmetric_relations,
    )
    fits = script_filter([text[e["start"] : e["end"]] for e in entities], config.entity_scripts)
    keys = [(e["type"], e["start"], e["end"]) for e in entities]
    return {
        "entities": [key for key, ok in zip(keys, fits) if ok],
        "relations": [
            (keys[h], keys[t], config.relation_labels[label])
            for h, t, label, _ in relations
            if fits[h] and fits[t]
        ],
    }


def _gold_entity_doc(output, b: int, gold_entities: list, config) -> dict:
    keys = [tuple(e) for e in gold_entities]
    probabilities = relation_probabilities(output.relation_logits[b], config.relation_multi_label).tolist()
    relations = []
    for (head, tail), probs in zip(output.relation_pairs[b].tolist(), probabilities):
        if head < 0:
            continue
        for label in relation_label_ids(probs, config.relation_threshold, config.relation_multi_label):
            name = config.relation_labels[label]
            relations.append(canonical_relation(keys[head], keys[tail], name, config.symmetric_relations))
    return {"entities": keys, "relations": relations}


def make_collator(pad_token_id: int, model, **training) -> AdeCollator:
    """The collator of a joint model (its candidate types and, when multi-label, its relation label count)."""
    config = model.config
    return AdeCollator(
        pad_token_id,
        model.candidate_type_ids(),
        num_relation_labels=len(config.relation_labels) if config.relation_multi_label else None,
        **training,
    )


def fold_predictions(
    accelerator, model, tokenizer, features: list[dict], batch_size: int
) -> tuple[list[dict], list[dict]]:
    """:func:`predict` over ``features`` in batches of similar length: (end-to-end predictions, relation
    predictions on gold entities), in feature order. ``model`` may be prepared."""
    unwrapped = accelerator.unwrap_model(model)
    collator = make_collator(tokenizer.pad_token_id, unwrapped)

    def collate_with_index(batch):  # the index finds each sentence's gold data and offsets again
        return {**collator(batch), "index": torch.tensor([f["index"] for f in batch])}

    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    loader = accelerator.prepare(
        DataLoader([features[i] for i in order], batch_size=batch_size, collate_fn=collate_with_index)
    )
    return predict(accelerator, model, loader, features, unwrapped.config)


def score_fold(
    test_records, num_negatives: int, predictions: list[dict], gold_entity_predictions: list[dict], config
) -> dict:
    """Strict metrics on the test part and the ``real_text`` block, from :func:`fold_predictions` over the test
    records followed by ``num_negatives`` held-out negative sentences. Returns :func:`compute_ade_metrics`' blocks
    plus ``real_text`` (:func:`modeling_ade.metrics.real_text_metrics`): the test records with a relation are the
    positives, the test records without one and the held-out negatives the negatives (no block without any)."""
    n_test = len(test_records)
    if len(predictions) != n_test + num_negatives:
        raise ValueError(f"expected {n_test} + {num_negatives} predictions, got {len(predictions)}")
    metrics = compute_ade_metrics(
        [gold_doc(r, config.symmetric_relations) for r in test_records],
        predictions[:n_test],
        gold_entity_predictions[:n_test],
    )
    positive = [bool(r["relations"]) for r in test_records]
    negatives = [p for p, keep in zip(predictions, positive) if not keep] + predictions[n_test:]
    if negatives:  # without a single negative sentence there is no false-positive rate to report
        metrics["real_text"] = real_text_metrics(
            [True] * sum(positive), [p for p, keep in zip(predictions, positive) if keep], negatives
        )
    return metrics


def evaluate_fold(
    accelerator, model, tokenizer, features: list[dict], test_records, num_negatives: int, batch_size: int
) -> dict:
    """:func:`score_fold` of :func:`fold_predictions`: ``features`` encode the test records followed by the
    ``num_negatives`` held-out negative sentences (:func:`encode_records`); ``model`` may be prepared."""
    predictions, on_gold = fold_predictions(accelerator, model, tokenizer, features, batch_size)
    config = accelerator.unwrap_model(model).config
    return score_fold(test_records, num_negatives, predictions, on_gold, config)


def run_fold(settings: JointSettings, fold: FoldData) -> dict:
    """Train on ``fold.train`` (+ ``fold.train_negatives``, sampled per epoch), evaluate on ``fold.test``, score
    false positives on ``fold.held_out_negatives``, save model + tokenizer + metrics to ``settings.output_dir``;
    returns the metrics (DESIGN.md keys, overlap kept and removed, and the ``real_text`` block).

    With ``--lora-r`` the encoder gets LoRA adapters and the heads are trained fully; evaluation runs the
    adapted model and ``output_dir`` holds the adapter folder (:func:`modeling_ade.lora.save_adapter`)."""
    from accelerate.utils import set_seed

    from .training import make_accelerator

    accelerator = make_accelerator(settings)
    if accelerator.is_main_process:
        accelerator.init_trackers(fold.description.replace(" ", "_"), config=loggable(settings.record()))
    set_seed(settings.seed)
    model_path = resolve_model_name(settings.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    encoder_kwargs = {"num_hidden_layers": settings.num_hidden_layers} if settings.num_hidden_layers else {}
    types = fold.types
    model = JointNerReForAdeExtraction.from_encoder(
        model_path,
        encoder_kwargs=encoder_kwargs,
        entity_types=types.entity_types,
        relation_labels=["none", *types.relation_types],
        relation_candidate_types=types.candidate_types,
        relation_multi_label=types.multi_label,
        symmetric_relations=types.symmetric_relations,
        ner_loss_weight=settings.ner_loss_weight,
        classifier_dropout=settings.classifier_dropout,
        relation_threshold=settings.relation_threshold,
        sentence_gate=settings.sentence_gate,
        train_max_length=settings.max_length,
        language=fold.language,
        entity_scripts=entity_scripts(fold.train),
    )
    model.config.encoder_config._name_or_path = hub_name(
        settings.model
    )  # no local path travels with the model
    config = model.config
    train_records, test_records = fold.train, fold.test
    train_negatives, held_out_negatives = fold.train_negatives, fold.held_out_negatives
    with accelerator.main_process_first():
        train_features = encode_records(
            [*train_records, *train_negatives], tokenizer, config, settings.max_length, "train"
        )
        test_features = encode_records(
            [*test_records, *held_out_negatives],
            tokenizer,
            config,
            settings.max_length,
            "test + held-out negatives" if held_out_negatives else "test",
        )
    negatives_per_epoch = (
        round(settings.negatives_per_positive * len(train_records)) if train_negatives else 0
    )
    logger.info(
        f"entity types {types.entity_types}, relation types {types.relation_types} "
        f"({'multi-label' if types.multi_label else 'one label per pair'}; symmetric: "
        f"{types.symmetric_relations or 'none'}), candidate type pairs {types.candidate_types}; "
        f"training on {len(train_records)} sentences + {negatives_per_epoch} of "
        f"{len(train_negatives)} negative sentences per epoch (NER loss on sentences without a relation: "
        f"{'on' if settings.relationless_ner_loss else 'off'}; sentence gate: {'on' if config.sentence_gate else 'off'}); "
        f"relation negatives: {settings.relation_negatives}; "
        f"{len(held_out_negatives)} held-out negative sentences scored for false positives",
        main_process_only=True,
    )
    collator = make_collator(
        tokenizer.pad_token_id,
        model,
        predicted_entity_negatives=settings.relation_negatives == "predicted-entities",
        sentence_labels=config.sentence_gate,
        negatives_ner_loss=settings.relationless_ner_loss,
    )
    model, lora = apply_lora_from_settings(model, settings)  # unchanged without --lora-r
    train_loader = DataLoader(
        train_features,
        batch_sampler=LengthGroupedBatchSampler(
            [len(f["input_ids"]) for f in train_features],
            settings.batch_size,
            settings.seed,
            pool=len(train_negatives),
            pool_per_epoch=negatives_per_epoch,
        ),
        collate_fn=collator,
    )
    history = fit(accelerator, model, train_loader, settings, description=fold.description)

    metrics = evaluate_fold(
        accelerator,
        model,
        tokenizer,
        test_features,
        test_records,
        len(held_out_negatives),
        settings.eval_batch_size,
    )
    metrics["train_history"] = history
    metrics["train_seconds_per_epoch"] = sum(h["epoch_seconds"] for h in history) / max(len(history), 1)
    metrics["num_train_sentences"], metrics["num_test_sentences"] = len(train_records), len(test_records)
    metrics["num_train_negatives"], metrics["num_negatives_per_epoch"] = (
        len(train_negatives),
        negatives_per_epoch,
    )
    if fold.notes:
        metrics["data"] = "; ".join(fold.notes)
    if lora is not None:
        metrics["lora"] = lora
    save_run(accelerator, model, tokenizer, settings, metrics, pipeline_task="ade-extraction")
    return metrics


def run_folds(settings: JointSettings, fold_data: Callable[[int], FoldData]) -> dict:
    """One fold (``settings.fold``) or cross-validation over folds ``0..cv-1``, each fold in ``OUT/fold_K`` and
    mean ± std in ``OUT/metrics.json``; with ``--resume-from latest`` a finished fold is kept. ``fold_data(k)``
    reads fold ``k``. Returns the fold's metrics or the cross-validation summary."""
    out = Path(settings.output_dir)
    folds = list(range(settings.cv)) if settings.cv else [settings.fold]
    per_fold, waiting = [], []
    for fold in folds:
        fold_dir = out / f"fold_{fold}" if settings.cv else out
        if settings.cv and settings.resume_from and (fold_dir / "metrics.json").is_file():
            print(f"fold {fold}: finished before ({fold_dir / 'metrics.json'}), kept (--resume-from latest)")
            per_fold.append(json.loads((fold_dir / "metrics.json").read_text(encoding="utf-8")))
            continue
        if settings.folds is not None and fold not in settings.folds:
            waiting.append(fold)
            continue
        data = fold_data(fold)
        metrics = run_fold(
            settings.replace(fold=fold, output_dir=str(fold_dir)),  # fold recorded in training_args.json
            data,
        )
        per_fold.append(metrics)
        print(
            f"\nfold {fold} (test part, strict):\n"
            + format_cv_table(aggregate_folds([metrics]), keys=summary_keys(metrics))
            + f"\n\n{data.description}, per type (overlap kept):\n"
            + per_type_tables(metrics["overlap_kept"])
        )
    if not settings.cv:
        return per_fold[0]
    if waiting:
        print(
            f"\nfolds {waiting} not trained yet (--folds): the cross-validation summary is written when OUT holds "
            f"all {settings.cv}; train them with --folds and --resume-from latest"
        )
        return {"folds_finished": len(per_fold), "folds_waiting": waiting}
    summary = aggregate_folds(
        [{k: m[k] for k in ("overlap_kept", "overlap_removed", "real_text") if k in m} for m in per_fold]
    )
    write_json(out / "metrics.json", {"cross_validation": summary, "folds": folds})
    write_json(out / "training_args.json", run_record(settings))
    print(
        f"\n{len(folds)}-fold cross-validation (column k = fold k):\n"
        + format_cv_table(summary, keys=summary_keys(summary))
    )
    return summary


SUMMARY_KEYS = [
    f"{overlap}.{key}"
    for overlap in ("overlap_kept", "overlap_removed")
    for key in (
        "ner_f1_micro",
        "ner_f1_macro",
        "re_f1_strict",
        "re_f1_strict_macro",
        "re_f1_boundaries",
        "re_f1_boundaries_macro",
        "re_f1_gold_entities",
    )
] + [
    f"real_text.{key}"
    for key in (
        "neg_false_positive_rate",
        "neg_entity_rate",
        "sentence_precision",
        "sentence_recall",
        "sentence_f1",
    )
]


def summary_keys(metrics: dict) -> list[str]:
    """The :data:`SUMMARY_KEYS` that ``metrics`` has (a fold trained before the real-text metrics lacks them)."""
    return [k for k in SUMMARY_KEYS if k.split(".")[0] in metrics]
