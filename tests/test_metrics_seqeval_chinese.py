"""modeling_ade.metrics vs seqeval on the real Chinese HealthNER test sets, with seeded perturbed predictions."""

from __future__ import annotations

import random
import warnings

import pytest
from seqeval.metrics import classification_report

from modeling_ade.hub.bio import bio_to_spans
from modeling_ade.metrics import ner_scores_from_tags

pytestmark = pytest.mark.data

CONFIGS = ["multiner_ft", "multiner_sm", "multiner_wa", "healthner"]


def _write_span(tags: list[str], entity_type: str, start: int, end: int) -> None:
    tags[start] = f"B-{entity_type}"
    for position in range(start + 1, end):
        tags[position] = f"I-{entity_type}"


def perturb_tags(rng: random.Random, gold: list[str], types: list[str]) -> list[str]:
    """Predictions that drop entities, shift boundaries, change types and add stray ``I-`` tags."""
    pred = list(gold)
    for entity_type, start, end in bio_to_spans(gold):
        roll = rng.random()
        if roll < 0.15:  # drop
            pred[start:end] = ["O"] * (end - start)
        elif roll < 0.30:  # change type
            _write_span(pred, rng.choice([t for t in types if t != entity_type] or types), start, end)
        elif roll < 0.45:  # move one boundary by one position
            pred[start:end] = ["O"] * (end - start)
            if rng.random() < 0.5:
                start = min(max(0, start + rng.choice((-1, 1))), end - 1)
            else:
                end = max(min(len(gold), end + rng.choice((-1, 1))), start + 1)
            _write_span(pred, entity_type, start, end)
    for position, tag in enumerate(pred):
        if tag == "O" and rng.random() < 0.02:  # stray I- (after O, or inside another type)
            pred[position] = f"I-{rng.choice(types)}"
        elif tag.startswith("I-") and rng.random() < 0.02:  # type change inside an entity
            pred[position] = f"I-{rng.choice(types)}"
    return pred


@pytest.fixture(scope="module")
def gold_by_config(healthner_data_dir):
    from datasets_scripts.chinese_healthner import load_healthner

    gold = {}
    for config in CONFIGS:
        test = load_healthner(config, data_dir=healthner_data_dir)["test"]
        int2str = test.features["ner_tags"].feature.int2str
        gold[config] = [[int2str(i) for i in sentence] for sentence in test["ner_tags"]]
    return gold


@pytest.mark.parametrize("config", CONFIGS)
def test_strict_scores_equal_seqeval_on_real_data(gold_by_config, config):
    gold = gold_by_config[config]
    assert len(gold) > 100 and sum(len(bio_to_spans(s)) for s in gold) > 1000
    types = sorted({span[0] for sentence in gold for span in bio_to_spans(sentence)})
    rng = random.Random(f"strict-ner-{config}")
    pred = [perturb_tags(rng, sentence, types) for sentence in gold]

    identical = ner_scores_from_tags(gold, gold)
    assert identical["ner_f1_micro"] == identical["ner_f1_macro"] == 1.0

    ours = ner_scores_from_tags(gold, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(gold, pred, output_dict=True, digits=10)
    assert 0.3 < ours["ner_f1_micro"] < 0.95  # the perturbations really bite
    assert ours["ner_precision_micro"] == pytest.approx(report["micro avg"]["precision"], abs=1e-9)
    assert ours["ner_recall_micro"] == pytest.approx(report["micro avg"]["recall"], abs=1e-9)
    assert ours["ner_f1_micro"] == pytest.approx(report["micro avg"]["f1-score"], abs=1e-9)
    assert ours["ner_precision_macro"] == pytest.approx(report["macro avg"]["precision"], abs=1e-9)
    assert ours["ner_recall_macro"] == pytest.approx(report["macro avg"]["recall"], abs=1e-9)
    assert ours["ner_f1_macro"] == pytest.approx(report["macro avg"]["f1-score"], abs=1e-9)
    per_type = {k: v for k, v in report.items() if not k.endswith(" avg")}
    assert set(ours["per_type"]) == set(per_type)
    for entity_type, scores in per_type.items():
        assert ours["per_type"][entity_type]["f1"] == pytest.approx(scores["f1-score"], abs=1e-9), entity_type
        assert ours["per_type"][entity_type]["support"] == scores["support"]
