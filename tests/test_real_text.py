"""Real text: negative sentences in training, relation negatives, threshold, sentence splitting, real-text metrics."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import biased_joint_model
from transformers import pipeline

from modeling_ade.ade_data import (
    AdeCollator,
    document_id,
    encode_ade_record,
    negative_parts,
    split_negatives,
)
from modeling_ade.hub.modeling_joint_ner_re import PAD, add_negative_entities
from modeling_ade.hub.pipeline_ade_extraction import letter_scripts, relation_label, sentence_spans
from modeling_ade.metrics import real_text_metrics
from modeling_ade.sampling import LengthGroupedBatchSampler, epoch_sample

# --------------------------------------------------------------------------------------------------
# The negative parts
# --------------------------------------------------------------------------------------------------


def synthetic_ids(seed=3, documents=300):
    import random

    rng = random.Random(seed)
    return [f"{1000 + d}-neg-{n}" for d in range(documents) for n in range(rng.randint(1, 9))]


def test_negative_parts_are_disjoint_by_document_balanced_and_fixed():
    ids = synthetic_ids()
    parts = negative_parts(ids, 10)
    assert parts == negative_parts(ids, 10), "not deterministic"
    part_of_doc = {}
    for sentence_id, part in zip(ids, parts):
        assert part_of_doc.setdefault(document_id(sentence_id), part) == part, "a document spans two parts"
    sizes = [parts.count(k) for k in range(10)]
    assert min(sizes) > 0 and max(sizes) - min(sizes) <= 9, sizes  # within one document's size
    assert negative_parts(ids, 10, seed=1) != parts, "the seed does not matter"


def test_split_negatives_holds_out_one_part_per_fold():
    records = [{"id": i, "text": "x", "entities": [], "relations": []} for i in synthetic_ids()]
    held_out_ids = []
    for fold in range(10):
        train, held_out = split_negatives(records, fold)
        assert len(train) + len(held_out) == len(records)
        assert {document_id(r["id"]) for r in train}.isdisjoint({document_id(r["id"]) for r in held_out})
        held_out_ids += [r["id"] for r in held_out]
    assert sorted(held_out_ids) == sorted(r["id"] for r in records), "held-out parts do not partition"


@pytest.mark.data
def test_real_negatives_split(ade_data_dir):
    from datasets_scripts.ade_corpus import ade_records

    negatives = next(iter(ade_records("negatives", data_dir=ade_data_dir).values()))
    assert len(negatives) == 16695
    train, held_out = split_negatives(negatives, 0)
    assert {document_id(r["id"]) for r in train}.isdisjoint({document_id(r["id"]) for r in held_out})
    assert 1500 < len(held_out) < 1850


# --------------------------------------------------------------------------------------------------
# Training data: all-O sentences, per-epoch sampling, relation negatives
# --------------------------------------------------------------------------------------------------

POSITIVE = {
    "id": "2-0",
    "text": "Methotrexate-induced hepatotoxicity.",
    "entities": [
        {"type": "Adverse-Effect", "start": 21, "end": 35},
        {"type": "Drug", "start": 0, "end": 12},
    ],
    "relations": [{"head": 0, "tail": 1, "type": "ADE"}],
}


def test_negative_sentence_gives_all_o_labels_and_no_relation_target(minilm_tokenizer):
    from conftest import tiny_encoder_config

    from modeling_ade import JointNerReConfig, JointNerReForAdeExtraction

    config = JointNerReConfig(encoder_config=tiny_encoder_config(minilm_tokenizer.vocab_size))
    record = {
        "id": "1-neg-0",
        "text": "Methotrexate was given for rheumatoid arthritis without complications.",
        "entities": [],
        "relations": [],
    }
    features = encode_ade_record(record, minilm_tokenizer, config, 128).features
    assert (
        set(features["labels"]) <= {config.label2id["O"], -100} and config.label2id["O"] in features["labels"]
    )
    assert features["entity_spans"] == [] and features["gold_relations"] == []
    positive = POSITIVE
    model = JointNerReForAdeExtraction(config)
    batch = AdeCollator(0, model.candidate_type_ids())(
        [features, encode_ade_record(positive, minilm_tokenizer, config, 128).features]
    )
    assert (batch["relation_labels"][0] == -100).all(), "a negative sentence got a relation target"
    assert batch["relation_labels"][1].tolist() == [1]
    output = model(**batch)
    assert torch.isfinite(output.loss)


def test_epoch_sample_uses_all_positives_and_cycles_the_pool():
    seen = []
    for epoch in range(4):
        indices = epoch_sample(5, 12, 4, epoch, seed=7)
        assert indices[:5] == list(range(5)) and len(indices) == 9
        seen += indices[5:]
    assert sorted(seen[:12]) == list(range(5, 17)), "a pool item repeated before the pool was used up"
    assert epoch_sample(5, 12, 4, 1, seed=7) == epoch_sample(5, 12, 4, 1, seed=7)
    assert epoch_sample(5, 0, 0, 3, seed=7) == list(range(5))


def test_sampler_length_and_batches_cover_the_epoch_sample():
    lengths = [10 + i % 7 for i in range(50)]
    sampler = LengthGroupedBatchSampler(lengths, 4, seed=1, pool=30, pool_per_epoch=10)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 8
        assert sorted(i for b in batches for i in b) == sorted(sampler.epoch_indices())
    plain = LengthGroupedBatchSampler(lengths, 4, seed=1)
    from modeling_ade.sampling import length_grouped_batches

    assert list(plain) == length_grouped_batches(lengths, 4, 1), "without a pool the order changed"


def test_add_negative_entities_labels_every_pair_with_a_predicted_entity_none():
    candidate = torch.tensor([[1, 0]])  # head type 1 (Adverse-Effect), tail type 0 (Drug)
    gold = torch.tensor([[[1, 2, 1], [4, 4, 0]], [[PAD, PAD, PAD], [PAD, PAD, PAD]]])
    pairs = torch.tensor([[[0, 1]], [[PAD, PAD]]])
    labels = torch.tensor([[1], [-100]])
    predicted = torch.tensor(
        [
            [[1, 2, 1], [6, 7, 0], [PAD, PAD, PAD]],  # the gold effect again (not added), a new drug
            [[3, 3, 1], [5, 5, 0], [8, 9, 0]],  # a negative sentence: three predicted entities
        ]
    )
    spans, new_pairs, new_labels = add_negative_entities(gold, pairs, labels, predicted, candidate)
    assert spans[0, :3].tolist() == [[1, 2, 1], [4, 4, 0], [6, 7, 0]]
    assert spans[1, :3].tolist() == [[3, 3, 1], [5, 5, 0], [8, 9, 0]]
    got0 = {tuple(p): int(lab) for p, lab in zip(new_pairs[0].tolist(), new_labels[0].tolist()) if p[0] >= 0}
    assert got0 == {(0, 1): 1, (0, 2): 0}
    got1 = {tuple(p): int(lab) for p, lab in zip(new_pairs[1].tolist(), new_labels[1].tolist()) if p[0] >= 0}
    assert got1 == {(0, 1): 0, (0, 2): 0}
    padded = [
        lab for p, lab in zip(new_pairs.flatten(0, 1).tolist(), new_labels.flatten().tolist()) if p[0] < 0
    ]
    assert all(lab == -100 for lab in padded)


def test_training_forward_adds_predicted_negatives(minilm_tokenizer):
    model = biased_joint_model(minilm_tokenizer.vocab_size, seed=4).train()
    from modeling_ade import JointNerReConfig  # noqa: F401  (registers the classes)

    record = {
        "id": "1-neg-0",
        "text": "Aspirin was given for headache and fever.",
        "entities": [],
        "relations": [],
    }
    features = encode_ade_record(record, minilm_tokenizer, model.config, 128).features
    plain = AdeCollator(0, model.candidate_type_ids())([features])
    with_negatives = AdeCollator(0, model.candidate_type_ids(), predicted_entity_negatives=True)([features])
    torch.manual_seed(0)
    assert model(**plain).relation_logits.shape[1] == 0
    torch.manual_seed(0)
    output = model(**with_negatives)
    assert output.relation_logits.shape[1] > 0, "the biased model predicts entities: pairs expected"
    assert output.relation_loss > 0
    output.loss.backward()
    assert model.relation_head.mlp[-1].weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------
# Decisions: threshold, scripts
# --------------------------------------------------------------------------------------------------


def test_relation_label_threshold():
    assert relation_label([0.4, 0.6], 0.5) == 1
    assert relation_label([0.4, 0.6], 0.7) == 0
    assert relation_label([0.2, 0.3, 0.5], 0.45) == 2
    assert relation_label([0.5, 0.5], 0.5) == 1


def test_letter_scripts():
    assert letter_scripts("IFN-α 5 mg") == {"LATIN", "GREEK"}
    assert letter_scripts("头") == {"CJK"}
    assert letter_scripts("5-10 %") == set()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, minilm_tokenizer):
    model = biased_joint_model(minilm_tokenizer.vocab_size, seed=2)
    model.config.entity_scripts = ["LATIN"]
    out = tmp_path_factory.mktemp("model")
    pipeline("ade-extraction", model=model, tokenizer=minilm_tokenizer).save_pretrained(out)
    return out


def test_threshold_is_read_from_the_config(saved_model, minilm_tokenizer):
    from modeling_ade import AdeExtractionPipeline, JointNerReForAdeExtraction

    text = "Intravenous azithromycin-induced ototoxicity and rash after methotrexate and lithium."
    counts, lowest = {}, {}
    for threshold in (0.05, 0.5, 0.95):
        model = JointNerReForAdeExtraction.from_pretrained(saved_model, relation_threshold=threshold).eval()
        assert model.config.relation_threshold == threshold
        relations = AdeExtractionPipeline(model=model, tokenizer=minilm_tokenizer)(text)["relations"]
        counts[threshold] = len(relations)
        lowest[threshold] = min((r["score"] for r in relations), default=1.0)
        assert lowest[threshold] >= threshold
    assert counts[0.05] > counts[0.95], counts


def test_entity_of_an_unseen_script_is_not_reported(saved_model, minilm_tokenizer):
    from modeling_ade import AdeExtractionPipeline, JointNerReForAdeExtraction

    text = "头 头 头 头 aspirin rash 头 头 头"
    model = JointNerReForAdeExtraction.from_pretrained(saved_model).eval()
    filtered = AdeExtractionPipeline(model=model, tokenizer=minilm_tokenizer)(text)
    model.config.entity_scripts = None
    unfiltered = AdeExtractionPipeline(model=model, tokenizer=minilm_tokenizer)(text)
    assert any("头" in e["text"] for e in unfiltered["entities"]), "test needs a CJK entity to filter"
    assert not any("头" in e["text"] for e in filtered["entities"])
    for relation in filtered["relations"]:
        assert "头" not in relation["drug"]["text"] + relation["adverse_effect"]["text"]


# --------------------------------------------------------------------------------------------------
# Sentences: exact offsets, no relation across sentences, window = training length
# --------------------------------------------------------------------------------------------------

ABSTRACT = (
    "BACKGROUND: Lithium (Li) toxicity, e.g. tremor, was seen in 3 pts. after i.v. dosing of 1.5 g/m2. "
    "Naïve patients on methotrexate developed hepatotoxicity!  Was the rash due to amoxicillin? "
    "头痛 was reported.\nConclusions: monitor serum levels (Fig. 2)."
)


def test_sentence_spans_are_exact_and_cover_the_text():
    spans = sentence_spans(ABSTRACT, "en")
    assert len(spans) >= 4
    previous_end = 0
    for start, end in spans:
        piece = ABSTRACT[start:end]
        assert piece == piece.strip() and piece
        assert ABSTRACT[previous_end:start].strip() == "", "text between sentences was lost"
        previous_end = end
    assert ABSTRACT[previous_end:].strip() == ""
    assert sentence_spans("", "en") == [(0, 0)] and sentence_spans("   ", "en") == [(0, 3)]


def test_no_relation_crosses_a_sentence_and_offsets_stay_exact(saved_model, minilm_tokenizer):
    from modeling_ade import AdeExtractionPipeline, JointNerReForAdeExtraction

    model = JointNerReForAdeExtraction.from_pretrained(saved_model).eval()
    extract = AdeExtractionPipeline(model=model, tokenizer=minilm_tokenizer)
    words = ABSTRACT.split(" ")
    document = " ".join(words[i % len(words)] for i in range(3000))  # ~3,000 words, many sentences
    spans = sentence_spans(document, "en")
    output = extract(document)
    assert len(output["relations"]) > 0

    def sentence_of(entity):
        found = [k for k, (s, e) in enumerate(spans) if s <= entity["start"] and entity["end"] <= e]
        assert len(found) == 1, f"entity {entity} is not inside one sentence"
        return found[0]

    for entity in output["entities"]:
        assert document[entity["start"] : entity["end"]] == entity["text"]
        sentence_of(entity)
    for relation in output["relations"]:
        assert sentence_of(relation["drug"]) == sentence_of(relation["adverse_effect"])
    unsplit = extract(document, split_sentences=False)
    crossing = [
        r
        for r in unsplit["relations"]
        if sentence_of_any(spans, r["drug"]) != sentence_of_any(spans, r["adverse_effect"])
    ]
    assert crossing, "without splitting, this document does give cross-sentence relations (the test bites)"


def sentence_of_any(spans, entity):
    return next((k for k, (s, e) in enumerate(spans) if s <= entity["start"] < e), -1)


def test_window_defaults_to_the_training_length(saved_model, minilm_tokenizer):
    from modeling_ade import AdeExtractionPipeline, JointNerReForAdeExtraction

    model = JointNerReForAdeExtraction.from_pretrained(saved_model, train_max_length=24).eval()
    extract = AdeExtractionPipeline(model=model, tokenizer=minilm_tokenizer)
    long_sentence = " ".join(["aspirin induced rash"] * 40)
    windows = list(extract.preprocess(long_sentence))
    assert len(windows) > 1 and all(w["input_ids"].shape[1] <= 24 for w in windows)


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def test_real_text_metrics_counts():
    ents = [("Adverse-Effect", 0, 1), ("Drug", 2, 3)]
    rel = [(ents[0], ents[1], "ADE")]
    test_pred = [{"entities": ents, "relations": r} for r in (rel, [], rel, rel)]
    negatives = (
        [{"entities": [], "relations": []}] * 6
        + [{"entities": ents[:1], "relations": []}]
        + [{"entities": ents, "relations": rel}] * 3
    )
    m = real_text_metrics([True, True, True, True], test_pred, negatives)
    assert m["neg_false_positive_rate"] == pytest.approx(0.3)
    assert m["neg_entity_rate"] == pytest.approx(0.4)
    assert m["sentence_precision"] == pytest.approx(3 / 6)
    assert m["sentence_recall"] == pytest.approx(3 / 4)
    assert m["sentence_f1"] == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    assert (m["n_heldout_negatives"], m["n_negatives_flagged"], m["n_test_flagged"]) == (10, 3, 3)
    with pytest.raises(ValueError):
        real_text_metrics([True], test_pred, negatives)


# --------------------------------------------------------------------------------------------------
# A model saved by train.py ade: same output from predict.py and from a stranger's pipeline
# --------------------------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.slow
def test_trained_model_predict_py_equals_stranger_pipeline(ade_data_dir, tmp_path):
    from test_train_ade import SMALL

    import predict
    import train

    out = tmp_path / "run"
    train.main(
        [
            "ade",
            "--output-dir",
            str(out),
            "--fold",
            "1",
            "--data-dir",
            str(ade_data_dir),
            *SMALL,
            "--report-to",
            "none",
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    real = metrics["real_text"]
    assert real["n_heldout_negatives"] == 12 and real["n_test_sentences"] == 12
    for key in ("neg_false_positive_rate", "sentence_precision", "sentence_recall", "sentence_f1"):
        assert 0.0 <= real[key] <= 1.0
    assert metrics["num_train_negatives"] == 24 and metrics["num_negatives_per_epoch"] == 24
    config = json.loads((out / "config.json").read_text())
    assert config["train_max_length"] == 128 and config["relation_threshold"] == 0.5
    assert config["entity_scripts"] == ["LATIN"] and config["language"] == "en"
    # nothing of this machine travels with the model (#13): the encoder's Hub id, no output folder
    assert config["encoder_config"]["_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    recorded = json.loads((out / "training_args.json").read_text())
    assert not {"output_dir", "data_dir"} & set(recorded) and recorded["fold"] == 1

    texts = [ABSTRACT, "Intravenous azithromycin-induced ototoxicity.", ""]
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    predicted = tmp_path / "pred.jsonl"
    assert predict.main([str(source), "--model", str(out), "--output", str(predicted)]) == 0
    rows = [json.loads(line) for line in predicted.read_text(encoding="utf-8").splitlines()]
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["modeling_ade"] = None
        sys.modules["datasets_scripts"] = None
        from transformers import pipeline
        pipe = pipeline("ade-extraction", model={str(out)!r}, trust_remote_code=True)
        print("RESULT:" + json.dumps(pipe({texts!r})))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stranger = json.loads(result.stdout.split("RESULT:")[1])
    from test_ade_pipeline import same_extractions

    expected = [{"entities": r["entities"], "relations": r["relations"]} for r in rows]
    assert same_extractions(expected, stranger)


# --------------------------------------------------------------------------------------------------
# Sentence gate
# --------------------------------------------------------------------------------------------------


def test_collator_gate_labels_and_negative_ner_masking(minilm_tokenizer):
    from conftest import tiny_encoder_config

    from modeling_ade import JointNerReConfig, JointNerReForAdeExtraction

    config = JointNerReConfig(
        encoder_config=tiny_encoder_config(minilm_tokenizer.vocab_size), sentence_gate=True
    )
    model = JointNerReForAdeExtraction(config)
    negative = {"id": "1-neg-0", "text": "Aspirin was given.", "entities": [], "relations": []}
    positive = POSITIVE
    features = [encode_ade_record(r, minilm_tokenizer, config, 128).features for r in (negative, positive)]
    masked = AdeCollator(0, model.candidate_type_ids(), sentence_labels=True, negatives_ner_loss=False)(
        features
    )
    assert masked["sentence_labels"].tolist() == [0, 1]
    assert (masked["labels"][0] == -100).all() and (masked["labels"][1] != -100).any()
    kept = AdeCollator(0, model.candidate_type_ids())(features)
    assert (kept["labels"][0] == config.label2id["O"]).any() and "sentence_labels" not in kept
    output = model(**masked)
    assert output.sentence_logits.shape == (2, 2) and output.sentence_loss > 0
    expected = (
        config.ner_loss_weight * output.ner_loss
        + (1 - config.ner_loss_weight) * output.relation_loss
        + config.sentence_loss_weight * output.sentence_loss
    )
    assert torch.allclose(output.loss, expected)


def test_gate_below_threshold_reports_nothing(minilm_tokenizer):
    from modeling_ade import AdeExtractionPipeline

    model = biased_joint_model(minilm_tokenizer.vocab_size, seed=5)
    plain = AdeExtractionPipeline(model=model, tokenizer=minilm_tokenizer)(ABSTRACT)
    assert plain["entities"]
    model.config.sentence_gate = True
    model.sentence_classifier = torch.nn.Linear(model.config.hidden_size, 2)
    with torch.no_grad():
        model.sentence_classifier.weight.zero_()
        model.sentence_classifier.bias.copy_(torch.tensor([0.0, 1.0]))  # p(states an ADE) = 0.73
    extract = AdeExtractionPipeline(model=model.eval(), tokenizer=minilm_tokenizer)
    model.config.sentence_threshold = 0.7
    assert extract(ABSTRACT) == plain
    model.config.sentence_threshold = 0.8
    assert extract(ABSTRACT) == {"entities": [], "relations": []}
    model.config.sentence_gate_scope = (
        "relations"  # a rejected sentence keeps its entities, loses its relations
    )
    assert plain["relations"]
    assert extract(ABSTRACT) == {"entities": plain["entities"], "relations": []}


def test_a_batch_of_negatives_without_ner_tags_has_a_finite_loss(minilm_tokenizer):
    model = biased_joint_model(minilm_tokenizer.vocab_size, seed=6).train()
    record = {"id": "1-neg-0", "text": "Aspirin was given for headache.", "entities": [], "relations": []}
    features = [encode_ade_record(record, minilm_tokenizer, model.config, 128).features] * 2
    batch = AdeCollator(
        0, model.candidate_type_ids(), predicted_entity_negatives=True, negatives_ner_loss=False
    )(features)
    assert (batch["labels"] == -100).all()
    output = model(**batch)
    assert torch.isfinite(output.loss) and output.ner_loss == 0


def test_sentence_gate_scope_is_checked_and_saved(tmp_path):
    from modeling_ade import JointNerReConfig

    with pytest.raises(ValueError, match="sentence_gate_scope"):
        JointNerReConfig(sentence_gate_scope="entities")
    JointNerReConfig(sentence_gate=True, sentence_gate_scope="relations").save_pretrained(tmp_path)
    assert JointNerReConfig.from_pretrained(tmp_path).sentence_gate_scope == "relations"
    (tmp_path / "config.json").write_text('{"model_type": "joint_ner_re"}')  # saved before the field existed
    assert JointNerReConfig.from_pretrained(tmp_path).sentence_gate_scope == "all"
