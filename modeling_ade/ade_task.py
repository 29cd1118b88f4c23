"""``train.py ade``: joint NER + RE on the ADE corpus, one fold or cross-validation (not Hub code).

The task shape every ``*_task.py`` module follows: ``HELP`` and ``DESCRIPTION`` for ``train.py --help``, a
settings dataclass (:class:`AdeSettings`), :func:`add_arguments` for the task's own flags, and :func:`run`.
Data code lives in :mod:`modeling_ade.ade_data`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
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
from .hub.pipeline_ade_extraction import letter_scripts, relation_label, script_filter, window_predictions
from .lora import apply_lora_from_settings
from .metrics import compute_ade_metrics, real_text_metrics
from .sampling import LengthGroupedBatchSampler
from .settings import FineTuneSettings, add_lora_arguments, positive_float
from .training import fit, loggable, make_accelerator, run_record, save_run, write_json

logger = get_logger(__name__)

HELP = "joint NER + relation extraction of adverse drug events (ADE corpus)"
DESCRIPTION = (
    "Joint NER + RE on the ADE corpus with the standard 10-fold split. Defaults are the paper's: max length "
    "128, batch 16, lr 2e-5, 5 epochs, dropout 0.1, weight decay 5e-3."
)


@dataclass(frozen=True, kw_only=True)
class AdeSettings(FineTuneSettings):
    """``train.py ade``: the shared settings with the paper's defaults, plus the fields below (one per flag of
    the "ADE task" and "real text" groups of ``train.py ade --help``)."""

    task = "ade"
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    epochs: int = 5
    learning_rate: float = 2e-5
    max_length: int = 128
    fold: int = 0
    cv: int | None = None
    folds: tuple[int, ...] | None = None
    ner_loss_weight: float = 0.5
    classifier_dropout: float = 0.1
    no_negatives: bool = False
    negatives_per_positive: float = 1.0
    relation_negatives: str = "predicted-entities"
    no_sentence_gate: bool = False
    negatives_ner_loss: bool = False
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``train.py ade`` beyond the shared ones."""
    d = AdeSettings.__dataclass_fields__
    g = parser.add_argument_group("ADE task")
    which = g.add_mutually_exclusive_group()
    which.add_argument(
        "--fold",
        type=int,
        default=d["fold"].default,
        choices=range(10),
        metavar="K",
        help="train on fold K's train part, evaluate on its test part (default: 0)",
    )
    which.add_argument(
        "--cv",
        type=int,
        default=None,
        metavar="N",
        help="cross-validation over folds 0..N-1 (10 = the full protocol); per-fold results in "
        "OUT/fold_K and mean ± std in OUT/metrics.json",
    )
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
    g = parser.add_argument_group(
        "real text (README: Real text): negative sentences, relation negatives, threshold"
    )
    g.add_argument(
        "--no-negatives",
        action="store_true",
        help="train on the sentences with relations only, the literature's setting (by default the ADE-NEG.txt "
        "sentences of the other nine negative parts are trained on as all-O sentences without relations; "
        "held-out negatives are scored for false positives either way)",
    )
    g.add_argument(
        "--negatives-per-positive",
        type=positive_float,
        default=d["negatives_per_positive"].default,
        metavar="R",
        help="negative sentences per sentence with relations in each epoch, drawn in turn from a seeded order "
        "so successive epochs see different ones (default: 1.0)",
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
        "--no-sentence-gate",
        action="store_true",
        help="leave out the sentence gate (a [CLS] classifier trained on sentences with relations against "
        "negative sentences; a sentence it rejects yields no entity and no relation)",
    )
    g.add_argument(
        "--negatives-ner-loss",
        action="store_true",
        help="also train the NER head on the negative sentences as all-O (by default they train the sentence "
        "gate and the relation head only)",
    )
    g.add_argument(
        "--relation-threshold",
        type=float,
        default=d["relation_threshold"].default,
        help="a pair is a relation when its best non-'none' label has at least this probability; stored in the "
        "model's config and used by the pipeline (default: 0.5)",
    )
    add_lora_arguments(parser)


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


def gold_doc(record: dict) -> dict:
    entities = [(e["type"], e["start"], e["end"]) for e in record["entities"]]
    relations = [(entities[r["head"]], entities[r["tail"]], r["type"]) for r in record["relations"]]
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
    """One sentence's end-to-end prediction, decided as the pipeline decides: relation threshold and entity
    scripts from the config."""
    entities, relations = window_predictions(
        offsets,
        len(offsets),
        output.entity_spans[b].tolist(),
        output.entity_scores[b].tolist(),
        output.relation_pairs[b].tolist(),
        output.relation_logits[b].float().softmax(-1).tolist(),
        config.entity_types,
        config.relation_labels,
        relation_threshold=config.relation_threshold,
        sentence_probability=None
        if output.sentence_logits is None
        else float(output.sentence_logits[b].float().softmax(-1)[1]),
        sentence_threshold=config.sentence_threshold,
        sentence_gate_scope=config.sentence_gate_scope,
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
    relations = []
    for (head, tail), probs in zip(
        output.relation_pairs[b].tolist(), output.relation_logits[b].float().softmax(-1).tolist()
    ):
        label = relation_label(probs, config.relation_threshold)
        if head >= 0 and label != 0:
            relations.append((keys[head], keys[tail], config.relation_labels[label]))
    return {"entities": keys, "relations": relations}


def evaluate_fold(
    accelerator, model, tokenizer, features: list[dict], test_records, num_negatives: int, batch_size: int
) -> dict:
    """Strict metrics on the test part and the ``real_text`` block on test part + held-out negatives.

    ``features`` encode the test records followed by the ``num_negatives`` held-out negative sentences
    (:func:`encode_records`); ``model`` may be prepared. Returns :func:`compute_ade_metrics`' blocks plus
    ``real_text`` (:func:`modeling_ade.metrics.real_text_metrics`)."""
    unwrapped = accelerator.unwrap_model(model)
    collator = AdeCollator(tokenizer.pad_token_id, unwrapped.candidate_type_ids())

    def collate_with_index(batch):  # the index finds each sentence's gold data and offsets again
        return {**collator(batch), "index": torch.tensor([f["index"] for f in batch])}

    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    loader = accelerator.prepare(
        DataLoader([features[i] for i in order], batch_size=batch_size, collate_fn=collate_with_index)
    )
    predictions, gold_entity_predictions = predict(accelerator, model, loader, features, unwrapped.config)
    n_test = len(test_records)
    if len(features) != n_test + num_negatives:
        raise ValueError(f"expected {n_test} + {num_negatives} features, got {len(features)}")
    metrics = compute_ade_metrics(
        [gold_doc(r) for r in test_records], predictions[:n_test], gold_entity_predictions[:n_test]
    )
    metrics["real_text"] = real_text_metrics(
        [bool(r["relations"]) for r in test_records], predictions[:n_test], predictions[n_test:]
    )
    return metrics


def run_fold(
    settings: AdeSettings,
    train_records,
    test_records,
    description: str,
    train_negatives=(),
    held_out_negatives=(),
) -> dict:
    """Train on ``train_records`` (+ ``train_negatives``, sampled per epoch), evaluate on ``test_records``, score
    false positives on ``held_out_negatives``, save model + tokenizer + metrics to ``settings.output_dir``;
    returns the metrics (DESIGN.md keys, overlap kept and removed, and the ``real_text`` block).

    With ``--lora-r`` the encoder gets LoRA adapters and the heads are trained fully; evaluation runs the
    adapted model and ``output_dir`` holds the adapter folder (:func:`modeling_ade.lora.save_adapter`)."""
    from accelerate.utils import set_seed

    from datasets_scripts.ade_corpus import FEATURES
    from datasets_scripts.common import type_names

    accelerator = make_accelerator(settings)
    if accelerator.is_main_process:
        accelerator.init_trackers(description.replace(" ", "_"), config=loggable(settings.record()))
    set_seed(settings.seed)
    model_path = resolve_model_name(settings.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    encoder_kwargs = {"num_hidden_layers": settings.num_hidden_layers} if settings.num_hidden_layers else {}
    model = JointNerReForAdeExtraction.from_encoder(
        model_path,
        encoder_kwargs=encoder_kwargs,
        entity_types=type_names(FEATURES, "entities"),  # the label sets come from the corpus' ClassLabels
        relation_labels=["none", *type_names(FEATURES, "relations")],
        ner_loss_weight=settings.ner_loss_weight,
        classifier_dropout=settings.classifier_dropout,
        relation_threshold=settings.relation_threshold,
        sentence_gate=not settings.no_sentence_gate,
        train_max_length=settings.max_length,
        entity_scripts=entity_scripts(train_records),
    )
    model.config.encoder_config._name_or_path = hub_name(
        settings.model
    )  # no local path travels with the model
    config = model.config
    train_negatives, held_out_negatives = list(train_negatives), list(held_out_negatives)
    with accelerator.main_process_first():
        train_features = encode_records(
            [*train_records, *train_negatives], tokenizer, config, settings.max_length, "train"
        )
        test_features = encode_records(
            [*test_records, *held_out_negatives],
            tokenizer,
            config,
            settings.max_length,
            "test + held-out negatives",
        )
    negatives_per_epoch = (
        round(settings.negatives_per_positive * len(train_records)) if train_negatives else 0
    )
    logger.info(
        f"training on {len(train_records)} sentences with relations + {negatives_per_epoch} of "
        f"{len(train_negatives)} negative sentences per epoch (NER loss on them: "
        f"{'on' if settings.negatives_ner_loss else 'off'}; sentence gate: {'on' if config.sentence_gate else 'off'}); "
        f"relation negatives: {settings.relation_negatives}; "
        f"{len(held_out_negatives)} held-out negative sentences scored for false positives",
        main_process_only=True,
    )
    collator = AdeCollator(
        tokenizer.pad_token_id,
        model.candidate_type_ids(),
        predicted_entity_negatives=settings.relation_negatives == "predicted-entities",
        sentence_labels=config.sentence_gate,
        negatives_ner_loss=settings.negatives_ner_loss,
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
    history = fit(accelerator, model, train_loader, settings, description=description)

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
    if lora is not None:
        metrics["lora"] = lora
    save_run(accelerator, model, tokenizer, settings, metrics, pipeline_task="ade-extraction")
    return metrics


def run(settings: AdeSettings) -> dict:
    """``train.py ade``: one fold (``settings.fold``) or cross-validation over folds ``0..cv-1``, each fold in
    ``OUT/fold_K`` and mean ± std in ``OUT/metrics.json``; with ``--resume-from latest`` a finished fold is kept.
    Returns the fold's metrics or the cross-validation summary."""
    from datasets_scripts.ade_corpus import ade_records

    from .ade_data import split_negatives
    from .metrics import aggregate_folds, format_cv_table

    out = Path(settings.output_dir)
    folds = list(range(settings.cv)) if settings.cv else [settings.fold]
    negatives = None  # read after the first fold, so a missing corpus folder is reported for the main files
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
        splits = ade_records(f"fold_{fold}", data_dir=settings.data_dir)
        train = splits["train"][: settings.max_train_samples]
        test = splits["test"][: settings.max_eval_samples]
        if negatives is None:
            negatives = next(iter(ade_records("negatives", data_dir=settings.data_dir).values()))
        train_negatives, held_out = split_negatives(negatives, fold)
        metrics = run_fold(
            settings.replace(fold=fold, output_dir=str(fold_dir)),  # fold recorded in training_args.json
            train,
            test,
            f"ade fold {fold}",
            train_negatives=[] if settings.no_negatives else train_negatives[: settings.max_train_samples],
            held_out_negatives=held_out[: settings.max_eval_samples],
        )
        per_fold.append(metrics)
        print(
            f"\nfold {fold} (test part, strict):\n"
            + format_cv_table(aggregate_folds([metrics]), keys=summary_keys(metrics))
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
    for key in ("ner_f1_micro", "ner_f1_macro", "re_f1_strict", "re_f1_boundaries", "re_f1_gold_entities")
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
