"""``train.py ade``: one fold of joint NER + RE training and its strict evaluation (not Hub code)."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate.logging import get_logger
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, pipeline

from .ade_data import AdeCollator, LengthGroupedBatchSampler, encode_ade_record
from .alignment import AlignmentCounts
from .encoders import hub_name, resolve_model_name
from .lora import apply_lora_from_args, save_adapter
from .metrics import compute_ade_metrics, real_text_metrics
from .modeling_joint_ner_re import JointNerReForAdeExtraction
from .pipeline_ade_extraction import letter_scripts, relation_label, script_filter, window_predictions
from .training import fit, loggable, make_accelerator, run_record, write_json

logger = get_logger(__name__)


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
    args,
    train_records,
    test_records,
    output_dir: Path,
    description: str,
    train_negatives=(),
    held_out_negatives=(),
) -> dict:
    """Train on ``train_records`` (+ ``train_negatives``, sampled per epoch), evaluate on ``test_records``, score
    false positives on ``held_out_negatives``, save model + tokenizer + metrics to ``output_dir``; returns the
    metrics (DESIGN.md keys, overlap kept and removed, and the ``real_text`` block).

    With ``--lora-r`` the encoder gets LoRA adapters and the heads are trained fully; evaluation runs the
    adapted model and ``output_dir`` holds the adapter folder (:func:`modeling_ade.lora.save_adapter`)."""
    from accelerate.utils import set_seed

    args.output_dir = str(output_dir)
    accelerator = make_accelerator(args)
    if accelerator.is_main_process:
        accelerator.init_trackers(description.replace(" ", "_"), config=loggable(vars(args)))
    set_seed(args.seed)
    model_path = resolve_model_name(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    encoder_kwargs = {"num_hidden_layers": args.num_hidden_layers} if args.num_hidden_layers else {}
    model = JointNerReForAdeExtraction.from_encoder(
        model_path,
        encoder_kwargs=encoder_kwargs,
        ner_loss_weight=args.ner_loss_weight,
        classifier_dropout=args.classifier_dropout,
        relation_threshold=args.relation_threshold,
        sentence_gate=not args.no_sentence_gate,
        train_max_length=args.max_length,
        entity_scripts=entity_scripts(train_records),
    )
    model.config.encoder_config._name_or_path = hub_name(args.model)  # no local path travels with the model
    config = model.config
    train_negatives, held_out_negatives = list(train_negatives), list(held_out_negatives)
    with accelerator.main_process_first():
        train_features = encode_records(
            [*train_records, *train_negatives], tokenizer, config, args.max_length, "train"
        )
        test_features = encode_records(
            [*test_records, *held_out_negatives],
            tokenizer,
            config,
            args.max_length,
            "test + held-out negatives",
        )
    negatives_per_epoch = round(args.negatives_per_positive * len(train_records)) if train_negatives else 0
    logger.info(
        f"training on {len(train_records)} sentences with relations + {negatives_per_epoch} of "
        f"{len(train_negatives)} negative sentences per epoch (NER loss on them: "
        f"{'on' if args.negatives_ner_loss else 'off'}; sentence gate: {'on' if config.sentence_gate else 'off'}); "
        f"relation negatives: {args.relation_negatives}; "
        f"{len(held_out_negatives)} held-out negative sentences scored for false positives",
        main_process_only=True,
    )
    collator = AdeCollator(
        tokenizer.pad_token_id,
        model.candidate_type_ids(),
        predicted_entity_negatives=args.relation_negatives == "predicted-entities",
        sentence_labels=config.sentence_gate,
        negatives_ner_loss=args.negatives_ner_loss,
    )
    model, lora = apply_lora_from_args(model, args)  # unchanged without --lora-r
    train_loader = DataLoader(
        train_features,
        batch_sampler=LengthGroupedBatchSampler(
            [len(f["input_ids"]) for f in train_features],
            args.batch_size,
            args.seed,
            pool=len(train_negatives),
            pool_per_epoch=negatives_per_epoch,
        ),
        collate_fn=collator,
    )
    history = fit(accelerator, model, train_loader, args, description=description)

    metrics = evaluate_fold(
        accelerator,
        model,
        tokenizer,
        test_features,
        test_records,
        len(held_out_negatives),
        args.eval_batch_size,
    )
    unwrapped = accelerator.unwrap_model(model)
    metrics["train_history"] = history
    metrics["train_seconds_per_epoch"] = sum(h["epoch_seconds"] for h in history) / max(len(history), 1)
    metrics["num_train_sentences"], metrics["num_test_sentences"] = len(train_records), len(test_records)
    metrics["num_train_negatives"], metrics["num_negatives_per_epoch"] = (
        len(train_negatives),
        negatives_per_epoch,
    )
    if lora is not None:
        metrics["lora"] = lora
    if accelerator.is_main_process:
        if lora is not None:  # the adapter + what rebuilds its base (modeling_ade/lora.py)
            save_adapter(unwrapped, output_dir, tokenizer, pipeline_task="ade-extraction")
        else:
            pipeline("ade-extraction", model=unwrapped, tokenizer=tokenizer).save_pretrained(output_dir)
        write_json(output_dir / "metrics.json", metrics)
        write_json(output_dir / "training_args.json", run_record(args))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics
