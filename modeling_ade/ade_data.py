"""ADE corpus records -> model features, the negatives split and the batch collator (training side).

A record has the schema of ``datasets_scripts.ade_corpus`` (``text``, ``entities`` with character offsets,
``relations`` with ``head``/``tail`` indices into ``entities``). Features are variable-length lists; the
collator pads each batch only to its own longest sentence (ADE sentences are short).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .alignment import IGNORE, AlignmentCounts, align_entities_to_subwords
from .hub.configuration_joint_ner_re import JointNerReConfig
from .hub.modeling_joint_ner_re import PAD, candidate_pairs, none_labels


@dataclass
class EncodedSentence:
    features: dict
    counts: AlignmentCounts
    truncated: bool
    gold_relations_not_candidates: int
    gold_relations_unplaced: int  # an argument entity could not be placed (truncated / not found)


def encode_ade_record(record: dict, tokenizer, config: JointNerReConfig, max_length: int) -> EncodedSentence:
    """One corpus record -> features: ``input_ids``, ``attention_mask`` (+ ``token_type_ids``), ``word_index``,
    ``labels`` (BIO ids at first sub-words), ``entity_spans`` ``[[first_token, last_token, type_index]]`` of the
    gold entities that could be placed, ``gold_relations`` ``[[head, tail, relation_label]]`` indices into
    ``entity_spans``, ``offset_mapping`` and ``gold_entities`` (the gold ``[type, start, end]`` of each
    ``entity_spans`` row; these two are for decoding and scoring, the collator leaves them out). Entities
    lost to truncation are counted, never dropped silently."""
    encoding = tokenizer(record["text"], truncation=True, max_length=max_length, return_offsets_mapping=True)
    word_ids = encoding.word_ids()
    truncated = len(tokenizer(record["text"])["input_ids"]) > max_length
    entities = [(e["start"], e["end"], e["type"]) for e in record["entities"]]
    aligned = align_entities_to_subwords(
        encoding["offset_mapping"], word_ids, entities, config.label2id, text_length=len(record["text"])
    )
    type_index = {t: i for i, t in enumerate(config.entity_types)}
    relation_index = {label: i for i, label in enumerate(config.relation_labels)}
    spans, placed, new_index = [], [], {}
    for i, span in enumerate(aligned.token_spans):
        if span is not None:
            new_index[i] = len(spans)
            spans.append([span[0], span[1], type_index[entities[i][2]]])
            placed.append([entities[i][2], entities[i][0], entities[i][1]])
    candidates = {tuple(p) for p in config.relation_candidate_types}
    symmetric = set(getattr(config, "symmetric_relations", None) or ())
    gold, not_candidates, unplaced = [], 0, 0
    for rel in record["relations"]:
        head, tail = rel["head"], rel["tail"]
        orders = [(head, tail)] + ([(tail, head)] if rel["type"] in symmetric else [])
        orders = [(h, t) for h, t in orders if (entities[h][2], entities[t][2]) in candidates]
        if not orders:
            not_candidates += 1
        elif head in new_index and tail in new_index:
            for h, t in orders:  # a symmetric relation is a target in both candidate orders
                row = [new_index[h], new_index[t], relation_index[rel["type"]]]
                if row not in gold:
                    gold.append(row)
        else:
            unplaced += 1
    features = {
        "input_ids": encoding["input_ids"],
        "attention_mask": encoding["attention_mask"],
        "word_index": [0 if w is None else w + 1 for w in word_ids],
        "labels": aligned.labels,
        "entity_spans": spans,
        "gold_relations": gold,
        # Not model inputs (the collator leaves them out): for decoding and for gold-entity scoring.
        "offset_mapping": [list(o) for o in encoding["offset_mapping"]],
        "gold_entities": placed,  # [type, start, end] of each entity_spans row, exact gold offsets
    }
    if "token_type_ids" in encoding:
        features["token_type_ids"] = encoding["token_type_ids"]
    return EncodedSentence(features, aligned.counts, truncated, not_candidates, unplaced)


NEGATIVE_SPLIT_SEED = 0
"""Seed of the fixed 10-part split of ``ADE-NEG.txt`` (:func:`negative_parts`): like the literature's folds, the
parts are the same in every run, whatever ``--seed`` is."""


def document_id(sentence_id: str) -> str:
    """The PubMed id of an ADE corpus sentence id (``"{pmid}-{n}"`` or ``"{pmid}-neg-{n}"``)."""
    return sentence_id.split("-", 1)[0]


def negative_parts(
    sentence_ids: Sequence[str], num_parts: int = 10, seed: int = NEGATIVE_SPLIT_SEED
) -> list[int]:
    """Part (``0 .. num_parts-1``) of every sentence, disjoint by document (PubMed id).

    Documents are shuffled with ``seed``, then each goes to the part with the fewest sentences so far (ties: the
    lowest part), so the parts are balanced within one document's size. Pure and deterministic."""
    documents: dict[str, list[int]] = defaultdict(list)
    for index, sentence_id in enumerate(sentence_ids):
        documents[document_id(sentence_id)].append(index)
    order = sorted(documents)
    random.Random(seed).shuffle(order)
    sizes = [0] * num_parts
    parts = [0] * len(sentence_ids)
    for doc in order:
        part = min(range(num_parts), key=lambda k: (sizes[k], k))
        sizes[part] += len(documents[doc])
        for index in documents[doc]:
            parts[index] = part
    return parts


def split_negatives(
    negatives: Sequence[dict], fold: int, num_parts: int = 10
) -> tuple[list[dict], list[dict]]:
    """``(training negatives, held-out negatives)`` of fold ``fold``: part ``fold`` of :func:`negative_parts` is
    held out (scored for false positives), the other parts are trained on."""
    parts = negative_parts([r["id"] for r in negatives], num_parts)
    train = [r for r, part in zip(negatives, parts) if part != fold]
    held_out = [r for r, part in zip(negatives, parts) if part == fold]
    return train, held_out


class AdeCollator:
    """Pads a list of feature dicts to the batch's longest sentence / entity list and builds every
    candidate relation pair (``modeling_joint_ner_re.candidate_pairs``, the model's own rule) with its label:
    the gold relation label, or 0 (``none``). Training options: ``predicted_entity_negatives`` asks the model to
    add its own non-gold NER predictions as relation negatives; ``sentence_labels`` adds ``sentence_labels`` (1 for
    a sentence with a gold relation, 0 for a negative sentence) for the sentence gate; ``num_relation_labels``
    (for ``config.relation_multi_label``) makes the relation targets multi-hot rows ``(B, P, R)``; with
    ``negatives_ner_loss=False`` the all-``O`` tags of sentences without a gold relation are left out of the NER
    loss (-100)."""

    def __init__(
        self,
        pad_token_id: int,
        candidate_types: torch.Tensor,
        predicted_entity_negatives: bool = False,
        sentence_labels: bool = False,
        negatives_ner_loss: bool = True,
        num_relation_labels: int | None = None,
    ):
        self.pad_token_id = pad_token_id
        self.num_relation_labels = num_relation_labels
        self.candidate_types = candidate_types
        self.predicted_entity_negatives = predicted_entity_negatives
        self.sentence_labels = sentence_labels
        self.negatives_ner_loss = negatives_ner_loss

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        num_entities = max(len(f["entity_spans"]) for f in features)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor(
                [f[key] + [value] * (length - len(f[key])) for f in features], dtype=torch.long
            )

        batch = {
            "input_ids": pad("input_ids", self.pad_token_id),
            "attention_mask": pad("attention_mask", 0),
            "word_index": pad("word_index", 0),
            "labels": pad("labels", IGNORE),
        }
        if "token_type_ids" in features[0]:
            batch["token_type_ids"] = pad("token_type_ids", 0)
        spans = torch.full((len(features), num_entities, 3), PAD, dtype=torch.long)
        for b, f in enumerate(features):
            if f["entity_spans"]:
                spans[b, : len(f["entity_spans"])] = torch.tensor(f["entity_spans"])
        pairs = candidate_pairs(spans, self.candidate_types)  # shape: (B, P, 2)
        relation_labels = torch.where(pairs[..., 0] >= 0, 0, IGNORE)  # shape: (B, P)
        if self.num_relation_labels is not None:  # multi-label: multi-hot rows (B, P, R), label 0 = none
            relation_labels = none_labels(pairs, torch.zeros(1, 1, self.num_relation_labels))
        for b, f in enumerate(features):
            gold = defaultdict(list)
            for h, t, label in f["gold_relations"]:
                gold[(h, t)].append(label)
            for p, (h, t) in enumerate(pairs[b].tolist()):
                if (h, t) not in gold:
                    continue
                if relation_labels.dim() == 3:
                    relation_labels[b, p] = 0.0
                    relation_labels[b, p, gold[(h, t)]] = 1.0
                else:
                    relation_labels[b, p] = gold[(h, t)][0]
        batch.update(entity_spans=spans, relation_pairs=pairs, relation_labels=relation_labels)
        positive = torch.tensor([bool(f["gold_relations"]) for f in features])  # shape: (B,)
        if not self.negatives_ner_loss:
            batch["labels"] = batch["labels"].masked_fill(~positive.unsqueeze(1), IGNORE)
        if self.sentence_labels:
            batch["sentence_labels"] = positive.long()
        if self.predicted_entity_negatives:
            batch["predicted_entity_negatives"] = True
        return batch
