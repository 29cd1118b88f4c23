"""Tests of modeling_ade.metrics: hand-computed cases, conlleval edge cases, seqeval on random tags, evaluate."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import warnings

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities

from modeling_ade.hub.bio import bio_to_spans, split_tag
from modeling_ade.metrics import (
    NER_KEYS,
    STRICT_NER_EVALUATE_PATH,
    aggregate_folds,
    compute_ade_metrics,
    format_cv_table,
    mean_and_std,
    ner_scores,
    ner_scores_from_tags,
    overlapping_spans,
    re_scores_boundaries,
    re_scores_gold_entities,
    re_scores_strict,
    remove_entities_in_spans,
    remove_overlapping,
)

# --------------------------------------------------------------------------------------------------
# BIO decoding
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("B-PER", ("B", "PER")),
        ("I-A-B", ("I", "A-B")),
        ("O", ("O", "_")),
        ("B", ("B", "_")),
        ("B-", ("B", "_")),
        ("-PER", ("-", "PER")),
        ("PER", ("P", "ER")),
        ("b-per", ("b", "per")),
        ("X", ("X", "_")),
    ],
)
def test_split_tag_like_seqeval(tag, expected):
    assert split_tag(tag) == expected


def test_split_tag_rejects_empty_tag():
    with pytest.raises(ValueError, match="empty tag"):
        split_tag("")
    with pytest.raises(ValueError, match="empty tag"):
        bio_to_spans(["B-X", ""])


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([], []),
        (["O", "O"], []),
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        # conlleval: a stray I- after O starts a chunk
        (["O", "I-X", "I-X"], [("X", 1, 3)]),
        (["I-X"], [("X", 0, 1)]),
        # a type change inside I- tags splits the chunk
        (["I-X", "I-Y", "I-Y"], [("X", 0, 1), ("Y", 1, 3)]),
        (["B-X", "I-Y"], [("X", 0, 1), ("Y", 1, 2)]),
        # B- always starts
        (["B-X", "B-X", "I-X"], [("X", 0, 1), ("X", 1, 3)]),
        # IOBES: S- is a one-token chunk, E- closes, I- after E- starts again
        (["S-X", "B-Y", "E-Y", "O"], [("X", 0, 1), ("Y", 1, 3)]),
        (["B-X", "E-X", "I-X"], [("X", 0, 2), ("X", 2, 3)]),
        (["O", "E-X"], [("X", 1, 2)]),
        (["S-X", "S-X"], [("X", 0, 1), ("X", 1, 2)]),
        # bare prefixes are chunks of type "_"
        (["B", "I", "O"], [("_", 0, 2)]),
        # lower-case prefixes are not B/I: only type changes delimit them (seqeval quirk)
        (["b-x", "b-x", "O"], [("x", 0, 2)]),
        # a type-less tag with an unknown prefix is no chunk alone, one before a type change
        (["X"], []),
        (["X", "B-A"], [("_", 0, 1), ("A", 1, 2)]),
        (["B-A", "X", "O"], [("A", 0, 1)]),
        # multi-hyphen type
        (["B-A-B", "I-A-B"], [("A-B", 0, 2)]),
    ],
)
def test_bio_to_spans_edge_cases(tags, expected):
    assert bio_to_spans(tags) == expected
    # ... and each is exactly seqeval's decoding (end inclusive there)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [(t, s, e + 1) for t, s, e in get_entities(list(tags))] == expected


NOISY_TAGS = [
    "O", "O", "O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B", "B-C", "I-C",
    "B", "I", "E", "S", "B-", "I-_", "B-A-B", "I-A-B", "b-A", "i-A", "-A", "AB", ".",
]  # fmt: skip
GARBAGE_TAGS = NOISY_TAGS + ["X", "o", "-", "X-", "i"]  # type-less tags with an unknown prefix


def test_bio_to_spans_equals_seqeval_get_entities_on_random_garbage():
    rng = random.Random(1234)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(5000):
            tags = [rng.choice(GARBAGE_TAGS) for _ in range(rng.randint(0, 10))]
            expected = [(t, s, e + 1) for t, s, e in get_entities(list(tags))]
            assert bio_to_spans(tags) == expected, tags


def _random_bio_sentence(rng: random.Random, types: list[str]) -> list[str]:
    """A valid BIO sentence."""
    tags, position, length = [], 0, rng.randint(1, 12)
    while position < length:
        if rng.random() < 0.4:
            entity_type, size = rng.choice(types), rng.randint(1, 3)
            tags += [f"B-{entity_type}"] + [f"I-{entity_type}"] * (size - 1)
            position += size
        else:
            tags.append("O")
            position += 1
    return tags


def _perturb(rng: random.Random, tags: list[str], vocabulary: list[str]) -> list[str]:
    return [rng.choice(vocabulary) if rng.random() < 0.25 else tag for tag in tags]


def _random_corpora(seed: int, n: int):
    rng = random.Random(seed)
    for index in range(n):
        n_sentences = rng.randint(1, 8)
        if index % 2:  # pure noise
            gold = [[rng.choice(NOISY_TAGS) for _ in range(rng.randint(1, 9))] for _ in range(n_sentences)]
            pred = [[rng.choice(NOISY_TAGS) for _ in sentence] for sentence in gold]
        else:  # valid gold, perturbed (sometimes noisy) predictions
            gold = [_random_bio_sentence(rng, ["A", "B", "C"]) for _ in range(n_sentences)]
            pred = [_perturb(rng, sentence, NOISY_TAGS) for sentence in gold]
        yield gold, pred


def test_ner_scores_from_tags_equal_seqeval_on_random_corpora():
    checked_macro = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for gold, pred in _random_corpora(seed=7, n=400):
            ours = ner_scores_from_tags(gold, pred)
            report = classification_report(gold, pred, output_dict=True)
            micro = report["micro avg"]
            assert ours["ner_precision_micro"] == pytest.approx(micro["precision"], abs=1e-9)
            assert ours["ner_recall_micro"] == pytest.approx(micro["recall"], abs=1e-9)
            assert ours["ner_f1_micro"] == pytest.approx(micro["f1-score"], abs=1e-9)
            assert ours["ner_f1_micro"] == pytest.approx(f1_score(gold, pred), abs=1e-9)
            assert ours["ner_precision_micro"] == pytest.approx(precision_score(gold, pred), abs=1e-9)
            assert ours["ner_recall_micro"] == pytest.approx(recall_score(gold, pred), abs=1e-9)
            per_type = {k: v for k, v in report.items() if not k.endswith(" avg")}
            assert set(ours["per_type"]) == set(per_type)
            for entity_type, scores in per_type.items():
                assert ours["per_type"][entity_type]["precision"] == pytest.approx(
                    scores["precision"], abs=1e-9
                )
                assert ours["per_type"][entity_type]["recall"] == pytest.approx(scores["recall"], abs=1e-9)
                assert ours["per_type"][entity_type]["f1"] == pytest.approx(scores["f1-score"], abs=1e-9)
                assert ours["per_type"][entity_type]["support"] == scores["support"]
            if per_type:  # seqeval's macro is nan without any type; ours is 0.0 (tested below)
                macro = report["macro avg"]
                assert ours["ner_precision_macro"] == pytest.approx(macro["precision"], abs=1e-9)
                assert ours["ner_recall_macro"] == pytest.approx(macro["recall"], abs=1e-9)
                assert ours["ner_f1_macro"] == pytest.approx(macro["f1-score"], abs=1e-9)
                assert ours["ner_f1_macro"] == pytest.approx(f1_score(gold, pred, average="macro"), abs=1e-9)
                checked_macro += 1
    assert checked_macro > 300


def test_documented_difference_with_seqeval_corpus_decoding():
    # seqeval joins the sentences with "O" and decodes the corpus at once: after a sentence-initial
    # type-less "X", its stale chunk start makes a "_" chunk span both sentences (flat positions 1..3).
    corpus = [["B-A", "X"], ["X", "B-A"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ("_", 1, 3) in get_entities(corpus)
    # we decode each sentence alone: what seqeval gives for that sentence alone
    assert [bio_to_spans(s) for s in corpus] == [[("A", 0, 1)], [("_", 0, 1), ("A", 1, 2)]]


def test_ner_scores_from_tags_checks_lengths():
    with pytest.raises(ValueError, match="as many predicted sentences"):
        ner_scores_from_tags([["O"]], [])
    with pytest.raises(ValueError, match="sentence 0: 1 predicted tags for 2 gold tags"):
        ner_scores_from_tags([["O", "O"]], [["O"]])


# --------------------------------------------------------------------------------------------------
# NER scores
# --------------------------------------------------------------------------------------------------


def test_ner_scores_by_hand():
    gold = [[("PER", 0, 2), ("LOC", 3, 4)], [("PER", 0, 1)]]
    pred = [[("PER", 0, 2), ("LOC", 2, 4)], [("PER", 0, 1), ("ORG", 2, 3), ("ORG", 2, 3)]]
    scores = ner_scores(gold, pred)
    # PER: 2 correct / 2 pred / 2 gold; LOC: 0 / 1 / 1; ORG: 0 / 1 (duplicate counts once) / 0
    # micro: P = 2/4, R = 2/3, F1 = 2·(1/2)(2/3)/(1/2 + 2/3) = 4/7
    assert scores["ner_precision_micro"] == pytest.approx(0.5)
    assert scores["ner_recall_micro"] == pytest.approx(2 / 3)
    assert scores["ner_f1_micro"] == pytest.approx(4 / 7)
    # macro over {LOC, ORG, PER}: P = (0 + 0 + 1)/3, R = (0 + 0 [0/0] + 1)/3, F1 = (0 + 0 + 1)/3
    assert scores["ner_precision_macro"] == pytest.approx(1 / 3)
    assert scores["ner_recall_macro"] == pytest.approx(1 / 3)
    assert scores["ner_f1_macro"] == pytest.approx(1 / 3)
    assert scores["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2},
    }
    assert (scores["n_gold_entities"], scores["n_pred_entities"], scores["n_correct_entities"]) == (3, 4, 2)


def test_ner_scores_macro_f1_is_mean_of_per_type_f1():
    # A: P = 1, R = 1/2, F1 = 2/3; B: P = 1/2, R = 1, F1 = 2/3
    gold = [[("A", 0, 1), ("A", 1, 2), ("B", 2, 3)]]
    pred = [[("A", 0, 1), ("B", 2, 3), ("B", 3, 4)]]
    scores = ner_scores(gold, pred)
    assert scores["ner_precision_macro"] == pytest.approx(0.75)
    assert scores["ner_recall_macro"] == pytest.approx(0.75)
    assert scores["ner_f1_macro"] == pytest.approx(2 / 3)  # not F1(0.75, 0.75) = 0.75


def test_ner_scores_documents_are_separate_and_empty_is_zero():
    assert ner_scores([[("A", 0, 1)], []], [[], [("A", 0, 1)]])["ner_f1_micro"] == 0.0
    empty = ner_scores([[], []], [[], []])
    assert all(empty[key] == 0.0 for key in NER_KEYS)
    assert empty["per_type"] == {}
    with pytest.raises(ValueError, match="ner_scores"):
        ner_scores([[]], [])


# --------------------------------------------------------------------------------------------------
# Relation scores
# --------------------------------------------------------------------------------------------------

DRUG = ("Drug", 0, 1)
EFFECT = ("AE", 3, 5)


@pytest.mark.parametrize(
    ("predicted", "strict", "boundaries"),
    [
        ((EFFECT, DRUG, "ADE"), 1.0, 1.0),
        ((("Drug", 3, 5), DRUG, "ADE"), 0.0, 1.0),  # wrong entity type
        ((("AE", 3, 6), DRUG, "ADE"), 0.0, 0.0),  # wrong span
        ((EFFECT, DRUG, "other"), 0.0, 0.0),  # wrong relation type
        ((DRUG, EFFECT, "ADE"), 0.0, 0.0),  # reversed direction
    ],
)
def test_relation_matching_rules(predicted, strict, boundaries):
    gold = [[(EFFECT, DRUG, "ADE")]]
    assert re_scores_strict(gold, [[predicted]])["re_f1_strict"] == strict
    assert re_scores_boundaries(gold, [[predicted]])["re_f1_boundaries"] == boundaries


def test_relation_scores_by_hand():
    d0, e0, e1 = ("Drug", 0, 1), ("AE", 2, 3), ("AE", 5, 7)
    d1, e2 = ("Drug", 0, 2), ("AE", 4, 5)
    gold = [[(e0, d0, "ADE"), (e1, d0, "ADE")], [(e2, d1, "ADE")]]
    pred = [
        [(e0, d0, "ADE"), (("Drug", 5, 7), d0, "ADE")],  # strict hit; boundaries-only hit
        [(("AE", 4, 6), d1, "ADE")],  # wrong span
    ]

    def micro_macro_per_type(scores, suffix, p, r, f, support=3):
        # one relation type: the macro average equals the micro one, the per-type row too
        numbers = {m: scores[f"re_{m}_{suffix}"] for m in ("precision", "recall", "f1")}
        assert numbers == pytest.approx({"precision": p, "recall": r, "f1": f})
        assert {m: scores[f"re_{m}_{suffix}_macro"] for m in numbers} == pytest.approx(numbers)
        assert scores[f"re_per_type_{suffix}"] == {"ADE": pytest.approx({**numbers, "support": support})}
        assert len(scores) == 7

    # strict: 1 correct / 3 pred / 3 gold -> P = R = F1 = 1/3
    micro_macro_per_type(re_scores_strict(gold, pred), "strict", 1 / 3, 1 / 3, 1 / 3)
    # boundaries: 2 correct -> 2/3
    micro_macro_per_type(re_scores_boundaries(gold, pred), "boundaries", 2 / 3, 2 / 3, 2 / 3)
    # gold entities given: the model found one of the three relations, no false positive
    # P = 1, R = 1/3, F1 = 2·(1/3)/(4/3) = 1/2
    micro_macro_per_type(
        re_scores_gold_entities(gold, [[(e0, d0, "ADE")], []]), "gold_entities", 1.0, 1 / 3, 0.5
    )


# --------------------------------------------------------------------------------------------------
# Overlap removal
# --------------------------------------------------------------------------------------------------


def test_remove_overlapping_crossing_and_identical_ranges():
    a, b = ("Drug", 0, 3), ("AE", 2, 5)  # crossing: both dropped
    c, d = ("AE", 7, 9), ("Drug", 7, 9)  # identical ranges: kept
    e = ("AE", 10, 12)
    relations = [(b, a, "ADE"), (c, d, "ADE"), (e, a, "ADE")]
    entities, kept_relations, removed = remove_overlapping([a, b, c, d, e], relations)
    assert entities == [c, d, e]
    assert kept_relations == [(c, d, "ADE")]
    assert removed == [(0, 3), (2, 5)]


def test_remove_overlapping_nested_and_third_entity():
    assert overlapping_spans([("AE", 0, 5), ("AE", 1, 2), ("Drug", 6, 7)]) == [(0, 5), (1, 2)]
    # same range as an entity that crosses a third one: all three dropped
    entities, _, removed = remove_overlapping([("AE", 0, 2), ("Drug", 0, 2), ("AE", 1, 3)], [])
    assert entities == [] and removed == [(0, 2), (1, 3)]
    # touching ranges (end exclusive) do not overlap
    assert overlapping_spans([("AE", 0, 2), ("Drug", 2, 4)]) == []


def test_remove_entities_in_spans_applies_gold_removal_to_predictions():
    removed = [(0, 3), (2, 5)]
    same, inside, touching = ("Drug", 0, 3), ("AE", 4, 6), ("AE", 5, 6)
    relations = [(inside, ("Drug", 8, 9), "ADE"), (touching, ("Drug", 8, 9), "ADE")]
    entities, kept = remove_entities_in_spans([same, inside, touching, ("Drug", 8, 9)], relations, removed)
    assert entities == [touching, ("Drug", 8, 9)]
    assert kept == [(touching, ("Drug", 8, 9), "ADE")]


# --------------------------------------------------------------------------------------------------
# compute_ade_metrics
# --------------------------------------------------------------------------------------------------


def _ade_example():
    dr, ae1, ae2 = ("Drug", 0, 1), ("AE", 3, 5), ("AE", 4, 7)  # ae1 and ae2 overlap
    dr2, ae3 = ("Drug", 2, 3), ("AE", 5, 6)
    gold = [
        {"entities": [dr, ae1, ae2], "relations": [(ae1, dr, "ADE"), (ae2, dr, "ADE")]},
        {"entities": [dr2, ae3], "relations": [(ae3, dr2, "ADE")]},
    ]
    pred = [
        {"entities": [dr, ae1], "relations": [(ae1, dr, "ADE")]},
        {"entities": [("AE", 2, 3), ae3], "relations": [(ae3, ("AE", 2, 3), "ADE")]},  # wrong drug type
    ]
    gold_entity_pred = [{"relations": [(ae1, dr, "ADE")]}, {"relations": []}]
    return gold, pred, gold_entity_pred


def test_compute_ade_metrics_by_hand():
    gold, pred, gold_entity_pred = _ade_example()
    metrics = compute_ade_metrics(gold, pred, gold_entity_pred)
    kept, removed = metrics["overlap_kept"], metrics["overlap_removed"]

    # kept. NER: gold 5 (Drug 2, AE 3), pred 4 (Drug 1, AE 3), correct 3 (dr, ae1, ae3)
    # micro P = 3/4, R = 3/5, F1 = 2/3; Drug P 1 R 1/2 F 2/3; AE P 2/3 R 2/3 F 2/3
    expected_kept = {
        "ner_precision_micro": 3 / 4, "ner_recall_micro": 3 / 5, "ner_f1_micro": 2 / 3,
        "ner_precision_macro": 5 / 6, "ner_recall_macro": 7 / 12, "ner_f1_macro": 2 / 3,
        # strict: 1 correct / 2 pred / 3 gold -> F1 = 2·(1/2)(1/3)/(5/6) = 2/5
        "re_precision_strict": 1 / 2, "re_recall_strict": 1 / 3, "re_f1_strict": 2 / 5,
        # boundaries: doc 1's relation matches too -> 2 / 2 / 3
        "re_precision_boundaries": 1.0, "re_recall_boundaries": 2 / 3, "re_f1_boundaries": 4 / 5,
        "re_precision_gold_entities": 1.0, "re_recall_gold_entities": 1 / 3, "re_f1_gold_entities": 1 / 2,
        "n_documents": 2, "n_gold_entities": 5, "n_pred_entities": 4, "n_correct_entities": 3,
        "n_gold_relations": 3, "n_pred_relations": 2, "n_gold_entity_pred_relations": 1,
    }  # fmt: skip
    assert {k: kept[k] for k in expected_kept} == pytest.approx(expected_kept)

    # removed: ae1/ae2 dropped from gold with both relations; ae1 and its relation from both predictions.
    # NER: gold {dr, dr2, ae3}, pred {dr, (AE,2,3), ae3}: P = R = F1 = 2/3
    # Drug P 1 R 1/2 F 2/3; AE P 1/2 R 1 F 2/3 -> macro P = R = 3/4, F1 = 2/3
    # RE: gold {(ae3, dr2)}; strict pred {(ae3, (AE,2,3))}: 0; boundaries: 1; gold entities: no prediction
    expected_removed = {
        "ner_precision_micro": 2 / 3, "ner_recall_micro": 2 / 3, "ner_f1_micro": 2 / 3,
        "ner_precision_macro": 3 / 4, "ner_recall_macro": 3 / 4, "ner_f1_macro": 2 / 3,
        "re_precision_strict": 0.0, "re_recall_strict": 0.0, "re_f1_strict": 0.0,
        "re_precision_boundaries": 1.0, "re_recall_boundaries": 1.0, "re_f1_boundaries": 1.0,
        "re_precision_gold_entities": 0.0, "re_recall_gold_entities": 0.0, "re_f1_gold_entities": 0.0,
        "n_gold_entities": 3, "n_pred_entities": 3, "n_gold_relations": 1, "n_pred_relations": 1,
        "n_gold_entity_pred_relations": 0, "n_removed_gold_entities": 2, "n_removed_gold_relations": 2,
    }  # fmt: skip
    assert {k: removed[k] for k in expected_removed} == pytest.approx(expected_removed)
    assert removed["ner_per_type"]["AE"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )

    for block in (kept, removed):
        for key, value in block.items():
            if key.startswith(("ner_", "re_")) and not key.startswith(("ner_per_type", "re_per_type_")):
                assert isinstance(value, float) and 0.0 <= value <= 1.0, key
    json.dumps(metrics)  # metrics.json-ready


def test_compute_ade_metrics_without_gold_entity_predictions_and_length_check():
    gold, pred, _ = _ade_example()
    metrics = compute_ade_metrics(gold, pred)
    for block in metrics.values():
        assert not any(key.startswith("re_") and key.endswith("_gold_entities") for key in block)
        assert "n_gold_entity_pred_relations" not in block
    assert metrics["overlap_kept"]["re_f1_strict"] == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="expected 2 predicted documents"):
        compute_ade_metrics(gold, pred[:1])


# --------------------------------------------------------------------------------------------------
# Cross-validation
# --------------------------------------------------------------------------------------------------


def test_mean_and_std_uses_ddof_1():
    # mean 5; squared deviations 9 + 1 + 1 + 9 = 20; / (4 - 1) -> std = sqrt(20/3)
    mean, std = mean_and_std([2, 4, 6, 8])
    assert mean == 5.0 and std == pytest.approx((20 / 3) ** 0.5)
    assert mean_and_std([0.3]) == (0.3, None)


def test_aggregate_folds_and_table():
    folds = [
        {"a": 0.5, "b": {"c": 1}, "name": "fold-0", "flag": True},
        {"a": 0.7, "b": {"c": 3}},
        {"a": 0.9, "b": {"c": 5, "d": 0.25}},
    ]
    aggregated = aggregate_folds(folds)
    # a: mean 0.7, deviations ±0.2 -> std = sqrt(0.08 / 2) = 0.2; c: mean 3, std 2
    assert aggregated["a"]["mean"] == pytest.approx(0.7)
    assert aggregated["a"]["std"] == pytest.approx(0.2)
    assert aggregated["a"]["values"] == [0.5, 0.7, 0.9]
    assert aggregated["b"]["c"] == {"mean": 3.0, "std": 2.0, "values": [1, 3, 5]}
    assert aggregated["b"]["d"] == {"mean": 0.25, "std": None, "values": [None, None, 0.25]}
    assert "name" not in aggregated and "flag" not in aggregated

    assert format_cv_table(aggregated, digits=2) == (
        "| metric | mean ± std | fold 0 | fold 1 | fold 2 |\n"
        "|---|---|---|---|---|\n"
        "| a | 0.70 ± 0.20 | 0.50 | 0.70 | 0.90 |\n"
        "| b.c | 3.00 ± 2.00 | 1 | 3 | 5 |\n"
        "| b.d | 0.25 (1 of 3 folds) | – | – | 0.25 |\n"
    )
    one_fold = format_cv_table(aggregate_folds([{"a": 0.5}]), digits=2)
    assert one_fold.splitlines()[-1] == "| a | 0.50 | 0.50 |" and "n/a" not in one_fold
    assert (
        format_cv_table(aggregated, digits=1, keys=["b.c"]).splitlines()[-1]
        == "| b.c | 3.0 ± 2.0 | 1 | 3 | 5 |"
    )
    with pytest.raises(KeyError, match="no metric 'zzz'"):
        format_cv_table(aggregated, keys=["zzz"])


def test_aggregate_folds_rejects_mixed_kinds_and_handles_ade_metrics():
    with pytest.raises(ValueError, match="'a' mixes"):
        aggregate_folds([{"a": 1.0}, {"a": {"b": 1.0}}])
    gold, pred, gold_entity_pred = _ade_example()
    aggregated = aggregate_folds([compute_ade_metrics(gold, pred, gold_entity_pred)] * 2)
    assert aggregated["overlap_removed"]["re_f1_boundaries"] == {
        "mean": 1.0,
        "std": 0.0,
        "values": [1.0, 1.0],
    }
    assert aggregated["overlap_kept"]["ner_per_type"]["AE"]["support"]["mean"] == 3.0
    table = format_cv_table(aggregated)
    assert "| overlap_kept.ner_f1_micro | 0.6667 ± 0.0000 | 0.6667 | 0.6667 |" in table


# --------------------------------------------------------------------------------------------------
# Local evaluate module
# --------------------------------------------------------------------------------------------------

_EVALUATE_SCRIPT = """
import json, sys
import evaluate
from modeling_ade.metrics import STRICT_NER_EVALUATE_PATH
gold, pred = json.loads(sys.stdin.read())
metric = evaluate.load(STRICT_NER_EVALUATE_PATH)
half = len(gold) // 2
metric.add_batch(predictions=pred[:half], references=gold[:half])
print(json.dumps(metric.compute(predictions=pred[half:], references=gold[half:])))
"""


def test_evaluate_module_loads_offline_and_matches(tmp_path):
    rng = random.Random(3)
    gold = [_random_bio_sentence(rng, ["DRUG", "AE"]) for _ in range(30)]
    pred = [_perturb(rng, sentence, ["O", "B-DRUG", "I-DRUG", "B-AE", "I-AE"]) for sentence in gold]
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", _EVALUATE_SCRIPT],
        input=json.dumps([gold, pred]),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    expected = ner_scores_from_tags(gold, pred)
    assert set(loaded) == set(NER_KEYS) | {
        "per_type",
        "n_gold_entities",
        "n_pred_entities",
        "n_correct_entities",
    }
    assert {k: loaded[k] for k in NER_KEYS} == pytest.approx({k: expected[k] for k in NER_KEYS}, abs=1e-12)
    assert loaded["per_type"] == expected["per_type"]  # JSON round-trips floats exactly
    assert 0.0 < loaded["ner_f1_micro"] < 1.0
    assert (tmp_path / "hf_home").is_dir()  # the module cache went to the temporary HF_HOME


def test_strict_ner_evaluate_path_points_to_the_script():
    assert os.path.isfile(os.path.join(STRICT_NER_EVALUATE_PATH, "strict_ner.py"))
