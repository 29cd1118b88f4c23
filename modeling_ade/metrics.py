"""Evaluation metrics: strict entity-level NER scores, end-to-end relation scores, overlap removal, folds.

Pure Python (no torch, no numpy). Every function is small and pure so tests call it directly.

Conventions
-----------
- An **entity** (span) is a tuple ``(type, start, end)`` with ``end`` **exclusive**; ``start``/``end``
  are token or character offsets, whatever the caller uses, as long as gold and predictions agree.
- A **relation** is ``(head_entity, tail_entity, relation_type)``; it is directed (head and tail are
  not interchangeable).
- Scores are computed over a corpus of documents (sentences): spans of different documents never
  match each other. Within a document spans are a set (a duplicate prediction counts once).
- Precision, recall and F1 are floats in ``[0, 1]``; a ``0 / 0`` is ``0.0`` (seqeval's
  ``zero_division="warn"`` value, without the warning). ``F1 = 2·P·R / (P + R)``.

BIO decoding (:func:`modeling_ade.hub.bio.bio_to_spans`) reproduces ``seqeval.metrics.sequence_labeling.get_entities`` in its
default (conlleval-compatible, non-``strict``) mode, so :func:`ner_scores_from_tags` gives the numbers of
``seqeval.metrics.classification_report`` / ``f1_score`` on every tag sequence made of well-formed prefixes
(see :func:`ner_scores_from_tags` for the one documented difference on malformed tags).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .hub.bio import bio_to_spans

Span = tuple[str, int, int]
"""An entity: ``(type, start, end_exclusive)``."""

Relation = tuple[Span, Span, str]
"""A directed relation: ``(head_entity, tail_entity, relation_type)``."""

STRICT_NER_EVALUATE_PATH: str = str(Path(__file__).resolve().parent / "evaluate_modules" / "strict_ner")
"""Folder of the local ``evaluate`` module: ``evaluate.load(STRICT_NER_EVALUATE_PATH)`` works offline."""

NER_KEYS: tuple[str, ...] = (
    "ner_precision_micro",
    "ner_recall_micro",
    "ner_f1_micro",
    "ner_precision_macro",
    "ner_recall_macro",
    "ner_f1_macro",
)


# --------------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------------


def safe_divide(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, ``0.0`` when the denominator is 0."""
    return numerator / denominator if denominator else 0.0


def f1_from_precision_recall(precision: float, recall: float) -> float:
    """Harmonic mean ``2·P·R / (P + R)``; ``0.0`` when ``P + R == 0``."""
    return safe_divide(2 * precision * recall, precision + recall)


def precision_recall_f1(n_correct: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    """``(precision, recall, f1)`` from counts; each ``0 / 0`` is ``0.0``."""
    precision = safe_divide(n_correct, n_pred)
    recall = safe_divide(n_correct, n_gold)
    return precision, recall, f1_from_precision_recall(precision, recall)


def _as_document_sets(
    gold: Sequence[Iterable[Hashable]], pred: Sequence[Iterable[Hashable]], what: str
) -> tuple[list[set], list[set]]:
    if len(gold) != len(pred):
        raise ValueError(
            f"{what}: expected as many predicted documents as gold ones, got {len(pred)} vs {len(gold)}"
        )
    return [set(doc) for doc in gold], [set(doc) for doc in pred]


def ner_scores(gold: Sequence[Iterable[Hashable]], pred: Sequence[Iterable[Hashable]]) -> dict[str, Any]:
    """Strict entity-level scores: a predicted span is correct iff the same document has a gold span equal to it.

    Args:
        gold: one iterable of spans per document; a span is any hashable whose ``[0]`` is its type,
            normally ``(type, start, end)``.
        pred: the predictions, same number of documents.

    Returns:
        ``ner_precision_micro``, ``ner_recall_micro``, ``ner_f1_micro``: from the counts pooled over all
        types. ``ner_precision_macro``, ``ner_recall_macro``, ``ner_f1_macro``: the **unweighted mean of the
        per-type** precision, recall and F1 (the macro F1 is the mean of per-type F1, not the F1 of the macro
        P and R) over every type present in gold **or** predictions; a type seen only in predictions adds
        P = R = F1 = 0 to the mean. This is exactly seqeval's ``average="macro"`` rule, except that with no
        type at all we return ``0.0`` where seqeval returns ``nan``. ``per_type``: ``{type: {"precision",
        "recall", "f1", "support"}}`` (support = number of gold spans). ``n_gold_entities``,
        ``n_pred_entities``, ``n_correct_entities``: counts (duplicates within a document count once).
    """
    gold_sets, pred_sets = _as_document_sets(gold, pred, "ner_scores")
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # type -> [correct, pred, gold]
    for gold_doc, pred_doc in zip(gold_sets, pred_sets, strict=True):
        for span in gold_doc:
            counts[span[0]][2] += 1
        for span in pred_doc:
            counts[span[0]][1] += 1
            if span in gold_doc:
                counts[span[0]][0] += 1

    per_type: dict[str, dict[str, float | int]] = {}
    for entity_type in sorted(counts):
        n_correct, n_pred, n_gold = counts[entity_type]
        precision, recall, f1 = precision_recall_f1(n_correct, n_pred, n_gold)
        per_type[entity_type] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}

    n_correct, n_pred, n_gold = (sum(c[i] for c in counts.values()) for i in range(3))
    precision, recall, f1 = precision_recall_f1(n_correct, n_pred, n_gold)
    n_types = len(per_type)
    return {
        "ner_precision_micro": precision,
        "ner_recall_micro": recall,
        "ner_f1_micro": f1,
        "ner_precision_macro": safe_divide(math.fsum(s["precision"] for s in per_type.values()), n_types),
        "ner_recall_macro": safe_divide(math.fsum(s["recall"] for s in per_type.values()), n_types),
        "ner_f1_macro": safe_divide(math.fsum(s["f1"] for s in per_type.values()), n_types),
        "per_type": per_type,
        "n_gold_entities": n_gold,
        "n_pred_entities": n_pred,
        "n_correct_entities": n_correct,
    }


def ner_scores_from_tags(
    gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """:func:`ner_scores` of tag sequences, each sentence decoded by :func:`bio_to_spans`.

    Args:
        gold_tags: ``(num_sentences, seq_len_i)`` gold tags.
        pred_tags: predicted tags, same shape (a length mismatch raises ``ValueError``).

    Equals seqeval's default-mode ``classification_report`` / ``precision_score`` / ``recall_score`` /
    ``f1_score`` (micro and macro) whenever no sentence *starts* with a type-less tag whose prefix is not
    ``B I E S O .`` (such as ``X``, ``o``, ``-``). Deliberate difference: seqeval concatenates the
    sentences with an ``O`` between them and decodes the whole corpus at once, so after such a tag its
    decoder state (and a stale chunk start) leaks from one sentence into the next and can even produce a
    chunk spanning two sentences; we decode each sentence on its own, which is what seqeval's
    ``get_entities`` gives for that sentence alone.
    """
    if len(gold_tags) != len(pred_tags):
        raise ValueError(
            f"expected as many predicted sentences as gold ones, got {len(pred_tags)} vs {len(gold_tags)}"
        )
    for index, (gold_sentence, pred_sentence) in enumerate(zip(gold_tags, pred_tags, strict=True)):
        if len(gold_sentence) != len(pred_sentence):
            raise ValueError(
                f"sentence {index}: {len(pred_sentence)} predicted tags for {len(gold_sentence)} gold tags"
            )
    return ner_scores([bio_to_spans(s) for s in gold_tags], [bio_to_spans(s) for s in pred_tags])


def _relation_key(relation: Relation, *, ignore_entity_types: bool) -> Hashable:
    head, tail, relation_type = relation
    if ignore_entity_types:
        return (tuple(head[1:]), tuple(tail[1:]), relation_type)
    return (tuple(head), tuple(tail), relation_type)


def _relation_scores(
    gold: Sequence[Iterable[Relation]],
    pred: Sequence[Iterable[Relation]],
    *,
    ignore_entity_types: bool,
    suffix: str,
) -> dict[str, float | int]:
    gold_keys = [[_relation_key(r, ignore_entity_types=ignore_entity_types) for r in doc] for doc in gold]
    pred_keys = [[_relation_key(r, ignore_entity_types=ignore_entity_types) for r in doc] for doc in pred]
    gold_sets, pred_sets = _as_document_sets(gold_keys, pred_keys, f"relation scores ({suffix})")
    # the relation type is a key's last item: the same micro / macro / per-type rule as ner_scores
    scores = ner_scores(
        [[(key[-1], key) for key in doc] for doc in gold_sets],
        [[(key[-1], key) for key in doc] for doc in pred_sets],
    )
    return {
        f"re_precision_{suffix}": scores["ner_precision_micro"],
        f"re_recall_{suffix}": scores["ner_recall_micro"],
        f"re_f1_{suffix}": scores["ner_f1_micro"],
        f"re_precision_{suffix}_macro": scores["ner_precision_macro"],
        f"re_recall_{suffix}_macro": scores["ner_recall_macro"],
        f"re_f1_{suffix}_macro": scores["ner_f1_macro"],
        f"re_per_type_{suffix}": scores["per_type"],
    }


def re_scores_strict(
    gold: Sequence[Iterable[Relation]], pred: Sequence[Iterable[Relation]]
) -> dict[str, float]:
    """End-to-end relation scores, strict ("RE+"): both spans, both entity types and the relation type match.

    Args:
        gold, pred: one iterable of ``(head, tail, relation_type)`` per document, entities as
            ``(type, start, end)``. ``pred`` holds the relations predicted over the model's own entities.

    Returns ``re_precision_strict``, ``re_recall_strict``, ``re_f1_strict`` (micro: pooled over relation types,
    the number joint-extraction papers report), the ``_macro`` of each (unweighted mean over the relation types
    in gold or predictions, as :func:`ner_scores` does for entity types) and ``re_per_type_strict``
    (``{type: {"precision", "recall", "f1", "support"}}``). The other ``re_scores_*`` return the same keys.
    """
    return _relation_scores(gold, pred, ignore_entity_types=False, suffix="strict")


def re_scores_boundaries(
    gold: Sequence[Iterable[Relation]], pred: Sequence[Iterable[Relation]]
) -> dict[str, float]:
    """End-to-end relation scores on boundaries: both spans and the relation type match, entity types ignored.

    Relations that differ only by their entity types count once. Returns ``re_precision_boundaries``,
    ``re_recall_boundaries``, ``re_f1_boundaries``.
    """
    return _relation_scores(gold, pred, ignore_entity_types=True, suffix="boundaries")


def re_scores_gold_entities(
    gold: Sequence[Iterable[Relation]], pred: Sequence[Iterable[Relation]]
) -> dict[str, float]:
    """Relation classification given the gold entities: strict matching of relations that the model predicted
    when it was handed the gold entities (so entity errors cannot occur; only the pair classification is scored).

    Returns ``re_precision_gold_entities``, ``re_recall_gold_entities``, ``re_f1_gold_entities``.
    """
    return _relation_scores(gold, pred, ignore_entity_types=False, suffix="gold_entities")


# --------------------------------------------------------------------------------------------------
# Overlapping entities
# --------------------------------------------------------------------------------------------------


def spans_intersect(a: Span, b: Span) -> bool:
    """Whether the ranges ``[a.start, a.end)`` and ``[b.start, b.end)`` share a position (types ignored)."""
    return a[1] < b[2] and b[1] < a[2]


def remove_entities_in_spans(
    entities: Iterable[Span], relations: Iterable[Relation], spans: Iterable[tuple[int, int]]
) -> tuple[list[Span], list[Relation]]:
    """Drop every entity whose range intersects one of ``spans`` (``(start, end)``, end exclusive), and every
    relation whose head or tail range does. Order is kept.

    Returns ``(kept_entities, kept_relations)``.
    """
    ranges = [("", start, end) for start, end in spans]

    def hits(entity: Span) -> bool:
        return any(spans_intersect(entity, r) for r in ranges)

    kept_entities = [e for e in entities if not hits(e)]
    kept_relations = [r for r in relations if not (hits(r[0]) or hits(r[1]))]
    return kept_entities, kept_relations


def overlapping_spans(entities: Iterable[Span]) -> list[tuple[int, int]]:
    """The sorted distinct ranges ``(start, end)`` of entities whose range intersects the range of another
    entity of the list without being identical to it (nested or crossing mentions)."""
    ranges = sorted({(e[1], e[2]) for e in entities})
    overlapping = set()
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            if b[0] >= a[1]:
                break  # sorted by start: no later range can intersect a
            overlapping.update((a, b))
    return sorted(overlapping)


def remove_overlapping(
    entities: Iterable[Span], relations: Iterable[Relation]
) -> tuple[list[Span], list[Relation], list[tuple[int, int]]]:
    """Drop the overlapping entities of one (gold) document, with their relations.

    Rule: an entity is dropped when its range intersects the range of another entity of the same document
    and the two ranges are not identical (two entities with the same range but different types are kept,
    unless one of them overlaps a third). A relation is dropped when its head or tail is. Since every entity
    intersecting a dropped range is itself dropped, this equals
    ``remove_entities_in_spans(entities, relations, removed_spans)``, which is how the same removal is
    applied to the predictions of that document: a predicted entity is dropped iff its range intersects a
    dropped gold range (even when it is not itself overlapping), together with its relations. Predictions
    that overlap each other but no dropped gold range are kept.

    Returns ``(kept_entities, kept_relations, removed_spans)``, ``removed_spans`` the sorted ranges
    ``(start, end)`` of the dropped entities.
    """
    entities = list(entities)
    removed_spans = overlapping_spans(entities)
    kept_entities, kept_relations = remove_entities_in_spans(entities, relations, removed_spans)
    return kept_entities, kept_relations, removed_spans


# --------------------------------------------------------------------------------------------------
# ADE: all metrics of the evaluation contract
# --------------------------------------------------------------------------------------------------


def _ade_block(
    gold_docs: Sequence[Mapping[str, Any]],
    pred_docs: Sequence[Mapping[str, Any]],
    gold_entity_pred_docs: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    gold_entities = [doc["entities"] for doc in gold_docs]
    gold_relations = [doc["relations"] for doc in gold_docs]
    pred_relations = [doc["relations"] for doc in pred_docs]
    ner = ner_scores(gold_entities, [doc["entities"] for doc in pred_docs])
    block: dict[str, Any] = {key: ner[key] for key in NER_KEYS}
    block.update(re_scores_strict(gold_relations, pred_relations))
    block.update(re_scores_boundaries(gold_relations, pred_relations))
    if gold_entity_pred_docs is not None:
        block.update(
            re_scores_gold_entities(gold_relations, [doc["relations"] for doc in gold_entity_pred_docs])
        )
    block["n_documents"] = len(gold_docs)
    block["n_gold_entities"] = ner["n_gold_entities"]
    block["n_pred_entities"] = ner["n_pred_entities"]
    block["n_correct_entities"] = ner["n_correct_entities"]
    block["n_gold_relations"] = sum(len(set(r)) for r in gold_relations)
    block["n_pred_relations"] = sum(len(set(r)) for r in pred_relations)
    if gold_entity_pred_docs is not None:
        block["n_gold_entity_pred_relations"] = sum(
            len(set(doc["relations"])) for doc in gold_entity_pred_docs
        )
    block["ner_per_type"] = ner["per_type"]
    return block


def compute_ade_metrics(
    gold_docs: Sequence[Mapping[str, Any]],
    pred_docs: Sequence[Mapping[str, Any]],
    gold_entity_pred_docs: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every ADE metric of the evaluation contract, with overlapping entities kept and removed.

    Args:
        gold_docs: one ``{"entities": [(type, start, end), ...], "relations": [(head, tail, type), ...]}``
            per document (sentence).
        pred_docs: end-to-end predictions, same documents in the same order.
        gold_entity_pred_docs: optional predictions made when the model was given the gold entities (only
            ``"relations"`` is read); adds the ``re_*_gold_entities`` keys.

    Returns:
        ``{"overlap_kept": block, "overlap_removed": block}``; a block holds the floats in ``[0, 1]``
        ``ner_{precision,recall,f1}_{micro,macro}`` (see :func:`ner_scores`),
        ``re_{precision,recall,f1}_strict``, ``re_{precision,recall,f1}_boundaries`` and, with
        ``gold_entity_pred_docs``, ``re_{precision,recall,f1}_gold_entities``; the counts ``n_documents``,
        ``n_gold_entities``, ``n_pred_entities``, ``n_correct_entities``, ``n_gold_relations``,
        ``n_pred_relations`` (+ ``n_gold_entity_pred_relations``) after de-duplication; and
        ``ner_per_type``. ``overlap_removed`` applies :func:`remove_overlapping` to each gold document and
        the same dropped ranges to its predictions (both kinds) and adds ``n_removed_gold_entities`` and
        ``n_removed_gold_relations``.
    """
    if len(pred_docs) != len(gold_docs):
        raise ValueError(
            f"expected {len(gold_docs)} predicted documents (one per gold document), got {len(pred_docs)}"
        )
    if gold_entity_pred_docs is not None and len(gold_entity_pred_docs) != len(gold_docs):
        raise ValueError(
            f"expected {len(gold_docs)} gold-entity prediction documents (one per gold document), "
            f"got {len(gold_entity_pred_docs)}"
        )
    kept = _ade_block(gold_docs, pred_docs, gold_entity_pred_docs)

    gold_removed, pred_removed, gold_entity_pred_removed = [], [], []
    for index, gold_doc in enumerate(gold_docs):
        entities, relations, spans = remove_overlapping(gold_doc["entities"], gold_doc["relations"])
        gold_removed.append({"entities": entities, "relations": relations})
        entities, relations = remove_entities_in_spans(
            pred_docs[index]["entities"], pred_docs[index]["relations"], spans
        )
        pred_removed.append({"entities": entities, "relations": relations})
        if gold_entity_pred_docs is not None:
            _, relations = remove_entities_in_spans([], gold_entity_pred_docs[index]["relations"], spans)
            gold_entity_pred_removed.append({"relations": relations})
    removed = _ade_block(
        gold_removed, pred_removed, gold_entity_pred_removed if gold_entity_pred_docs is not None else None
    )
    removed["n_removed_gold_entities"] = kept["n_gold_entities"] - removed["n_gold_entities"]
    removed["n_removed_gold_relations"] = kept["n_gold_relations"] - removed["n_gold_relations"]
    return {"overlap_kept": kept, "overlap_removed": removed}


def real_text_metrics(
    test_gold_positive: Sequence[bool],
    test_pred_docs: Sequence[Mapping[str, Any]],
    negative_pred_docs: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Sentence-level signal on real text: does a sentence state an ADE?

    A sentence is predicted positive when it has at least one predicted relation. Gold: each test sentence's
    ``test_gold_positive`` (it has a gold relation), every held-out negative sentence negative.

    Returns ``neg_false_positive_rate`` (held-out negatives with at least one relation, over all of them; 0 when
    there are none), ``neg_entity_rate`` (held-out negatives with at least one entity: what a reader of the
    entities alone would see), ``sentence_{precision,recall,f1}`` over test + negatives, and the counts
    ``n_heldout_negatives``, ``n_negatives_flagged``, ``n_test_sentences``, ``n_test_flagged``.
    """
    if len(test_gold_positive) != len(test_pred_docs):
        raise ValueError(
            f"expected {len(test_gold_positive)} test predictions (one per test sentence), got {len(test_pred_docs)}"
        )
    test_flagged = [bool(doc["relations"]) for doc in test_pred_docs]
    negatives_flagged = sum(bool(doc["relations"]) for doc in negative_pred_docs)
    negatives_with_entities = sum(bool(doc["entities"]) for doc in negative_pred_docs)
    true_pos = sum(g and p for g, p in zip(test_gold_positive, test_flagged))
    precision, recall, f1 = precision_recall_f1(
        true_pos, sum(test_flagged) + negatives_flagged, sum(map(bool, test_gold_positive))
    )
    return {
        "neg_false_positive_rate": safe_divide(negatives_flagged, len(negative_pred_docs)),
        "neg_entity_rate": safe_divide(negatives_with_entities, len(negative_pred_docs)),
        "sentence_precision": precision,
        "sentence_recall": recall,
        "sentence_f1": f1,
        "n_heldout_negatives": len(negative_pred_docs),
        "n_negatives_flagged": negatives_flagged,
        "n_test_sentences": len(test_pred_docs),
        "n_test_flagged": sum(test_flagged),
    }


def format_per_type_table(
    per_type: Mapping[str, Mapping[str, Any]],
    scores: Mapping[str, Any],
    prefix: str,
    support: int,
    digits: int = 4,
) -> str:
    """Markdown table: a row per type of ``per_type`` (``{type: {"precision", "recall", "f1", "support"}}``),
    then the micro and macro rows read from ``scores`` (``{prefix}_precision_micro``... for NER,
    the ``re_*`` keys arranged the same way for relations, see :func:`per_type_tables`)."""
    lines = ["| type | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for name, s in per_type.items():
        lines.append(
            f"| {name} | {s['precision']:.{digits}f} | {s['recall']:.{digits}f} | {s['f1']:.{digits}f} | "
            f"{s['support']} |"
        )
    for average in ("micro", "macro"):
        p, r, f = (scores[f"{prefix}_{m}_{average}"] for m in ("precision", "recall", "f1"))
        lines.append(f"| **{average}** | {p:.{digits}f} | {r:.{digits}f} | {f:.{digits}f} | {support} |")
    return "\n".join(lines)


def per_type_tables(block: Mapping[str, Any], digits: int = 4) -> str:
    """The NER and end-to-end strict RE per-type tables of one :func:`compute_ade_metrics` block."""
    relation = {
        f"re_{m}_{average}": block[f"re_{m}_strict" if average == "micro" else f"re_{m}_strict_macro"]
        for m in ("precision", "recall", "f1")
        for average in ("micro", "macro")
    }
    return (
        "NER (strict):\n"
        + format_per_type_table(block["ner_per_type"], block, "ner", block["n_gold_entities"], digits)
        + "\n\nRE end-to-end (strict):\n"
        + format_per_type_table(
            block["re_per_type_strict"], relation, "re", block["n_gold_relations"], digits
        )
    )


# --------------------------------------------------------------------------------------------------
# Cross-validation
# --------------------------------------------------------------------------------------------------

_STAT_KEYS = frozenset({"mean", "std", "values"})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_and_std(values: Sequence[float]) -> tuple[float, float | None]:
    """``(mean, sample standard deviation)``; the std uses ``ddof=1`` (divides by ``n - 1``, like
    ``statistics.stdev`` and pandas) and is ``None`` for a single value. Raises ``ValueError`` when empty."""
    if not values:
        raise ValueError("mean_and_std needs at least one value")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def aggregate_folds(per_fold: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean, sample standard deviation and per-fold values of every numeric entry of per-fold metric dicts.

    Args:
        per_fold: one metrics dict per fold (e.g. :func:`compute_ade_metrics` outputs), possibly nested.

    Returns:
        The same nesting, each number replaced by ``{"mean": float, "std": float | None, "values": list}``:
        ``std`` is the sample standard deviation (``ddof=1``; ``None`` with fewer than two values),
        ``values[k]`` is fold ``k``'s value or ``None`` where that fold lacks the key (e.g. an entity type
        seen in some folds only); mean and std are over the folds that have it. Booleans and strings are
        left out. A key that is a dict in one fold and a number in another raises ``ValueError``.
    """
    if not per_fold:
        raise ValueError("aggregate_folds needs at least one fold")
    keys: dict[str, None] = {}
    for fold in per_fold:
        keys.update(dict.fromkeys(fold))
    result: dict[str, Any] = {}
    for key in keys:
        values = [fold.get(key) for fold in per_fold]
        present = [v for v in values if v is not None]
        if all(isinstance(v, Mapping) for v in present):
            nested = aggregate_folds([v if v is not None else {} for v in values])
            if nested:
                result[key] = nested
        elif all(_is_number(v) for v in present):
            mean, std = mean_and_std(present)
            result[key] = {"mean": mean, "std": std, "values": values}
        elif any(isinstance(v, Mapping) or _is_number(v) for v in present):
            raise ValueError(
                f"aggregate_folds: key {key!r} mixes numbers/dicts with other values: {values!r}"
            )
    return result


def _flatten_aggregate(
    aggregated: Mapping[str, Any], prefix: str = ""
) -> list[tuple[str, Mapping[str, Any]]]:
    rows = []
    for key, node in aggregated.items():
        name = f"{prefix}{key}"
        if isinstance(node, Mapping) and set(node) == _STAT_KEYS:
            rows.append((name, node))
        elif isinstance(node, Mapping):
            rows.extend(_flatten_aggregate(node, f"{name}."))
    return rows


def _format_number(value: float | int | None, digits: int, integer: bool) -> str:
    if value is None:
        return "–"
    if integer and float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def format_cv_table(
    aggregated: Mapping[str, Any], *, digits: int = 4, keys: Sequence[str] | None = None
) -> str:
    """A Markdown table ``metric | mean ± std | fold 0 | fold 1 | ...`` of an :func:`aggregate_folds` result.

    One fold gives its value alone (no "± n/a"); a metric that only some folds have gives its mean over them with
    "(k of n folds)".

    Args:
        aggregated: output of :func:`aggregate_folds`; nested names are joined with ``.``
            (``overlap_kept.ner_f1_micro``).
        digits: decimals of the floats.
        keys: the dotted names to show, in that order (``KeyError`` if one is missing); default all.
    """
    rows = dict(_flatten_aggregate(aggregated))
    names = list(rows) if keys is None else list(keys)
    for name in names:
        if name not in rows:
            raise KeyError(f"format_cv_table: no metric {name!r}; available: {sorted(rows)}")
    n_folds = max((len(rows[n]["values"]) for n in names), default=0)
    lines = [
        "| metric | mean ± std | " + " | ".join(f"fold {k}" for k in range(n_folds)) + " |",
        "|---|---|" + "---|" * n_folds,
    ]
    for name in names:
        stats = rows[name]
        integer = all(isinstance(v, int) for v in stats["values"] if v is not None)
        mean = _format_number(stats["mean"], digits, integer=False)
        if stats["std"] is not None:
            mean += " ± " + _format_number(stats["std"], digits, integer=False)
        present = sum(v is not None for v in stats["values"])
        if present < n_folds:  # a metric some folds lack: its mean is over fewer folds, and says so
            mean += f" ({present} of {n_folds} folds)"
        folds = [_format_number(v, digits, integer) for v in stats["values"]]
        folds += [""] * (n_folds - len(folds))
        lines.append(f"| {name} | {mean} | " + " | ".join(folds) + " |")
    return "\n".join(lines) + "\n"
