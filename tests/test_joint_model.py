"""The joint NER + RE model: pure pieces, the one-encoder-pass rule, the loss, and real overfitting."""

import pytest
import torch
from conftest import tiny_encoder_config

from modeling_ade import JointNerReConfig, JointNerReForAdeExtraction
from modeling_ade.ade_data import AdeCollator, encode_ade_record
from modeling_ade.hub.modeling_joint_ner_re import (
    candidate_pairs,
    decode_bio_entities,
    first_subword_mask,
    last_subword_mask,
)
from modeling_ade.metrics import ner_scores
from modeling_ade.sampling import length_grouped_batches


def tiny_model(vocab_size=30522, **config_kwargs):
    torch.manual_seed(0)
    return JointNerReForAdeExtraction(
        JointNerReConfig(encoder_config=tiny_encoder_config(vocab_size), **config_kwargs)
    )


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="ner_loss_weight"):
        JointNerReConfig(ner_loss_weight=1.5)
    with pytest.raises(ValueError, match="relation_candidate_types"):
        JointNerReConfig(relation_candidate_types=[["Adverse-Effect", "Dose"]])


def test_config_round_trip_rebuilds_the_model(tmp_path):
    model = tiny_model(ner_loss_weight=0.3)
    model.save_pretrained(tmp_path)
    again = JointNerReForAdeExtraction.from_pretrained(tmp_path)
    assert again.config.id2label == model.config.id2label
    assert again.config.ner_loss_weight == 0.3
    assert again.config.encoder_config.hidden_size == 64
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_decode_bio_entities_chunks_like_conlleval():
    id2label = {0: "O", 1: "B-Drug", 2: "I-Drug", 3: "B-Adverse-Effect", 4: "I-Adverse-Effect"}
    types = ["Drug", "Adverse-Effect"]
    # O I-Drug I-Drug B-Drug I-AE O B-AE I-AE
    assert decode_bio_entities([0, 2, 2, 1, 4, 0, 3, 4], id2label, types) == [
        (1, 2, 0),
        (3, 3, 0),
        (4, 4, 1),
        (6, 7, 1),
    ]
    assert decode_bio_entities([], id2label, types) == []
    assert decode_bio_entities([3, 4, 4], id2label, types) == [(0, 2, 1)]


def test_subword_masks():
    word_index = torch.tensor([[0, 1, 1, 2, 3, 3, 0, 0]])
    assert first_subword_mask(word_index).int().tolist() == [[0, 1, 0, 1, 1, 0, 0, 0]]
    assert last_subword_mask(word_index).int().tolist() == [[0, 0, 1, 1, 0, 1, 0, 0]]


def test_candidate_pairs_are_every_head_tail_type_pair():
    spans = torch.tensor(
        [
            [[1, 1, 0], [2, 3, 1], [5, 5, 1], [-1, -1, -1]],
            [[1, 1, 1], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1]],
        ]
    )
    pairs = candidate_pairs(spans, torch.tensor([[1, 0]]))  # head = type 1 (AE), tail = type 0 (Drug)
    assert pairs.tolist() == [[[1, 0], [2, 0]], [[-1, -1], [-1, -1]]]


def test_candidate_pairs_match_a_loop_over_every_pair():
    generator = torch.Generator().manual_seed(0)
    candidate_types = torch.tensor([[1, 0], [2, 0], [1, 1]])
    for _ in range(50):
        batch, num_entities = torch.randint(0, 5, (2,), generator=generator).tolist()
        spans = torch.randint(0, 3, (batch, num_entities, 3), generator=generator)
        counts = torch.randint(0, num_entities + 1, (batch,), generator=generator).tolist()
        for b, count in enumerate(counts):
            spans[b, count:] = -1  # padding rows at the end
        expected = []
        for b, count in enumerate(counts):
            types = spans[b, :count, 2].tolist()
            expected.append(
                [
                    [h, t]
                    for h in range(count)
                    for t in range(count)
                    if h != t and [types[h], types[t]] in candidate_types.tolist()
                ]
            )
        width = max((len(rows) for rows in expected), default=0)
        pairs = candidate_pairs(spans, candidate_types)
        assert pairs.shape == (batch, width, 2)
        assert pairs.tolist() == [rows + [[-1, -1]] * (width - len(rows)) for rows in expected]


def test_decode_entities_spans_cover_whole_words_and_score_the_word_tags():
    model = tiny_model()  # O, B-Drug, I-Drug, B-Adverse-Effect, I-Adverse-Effect
    word_index = torch.tensor([[0, 1, 1, 2, 3, 3, 4, 0], [0, 1, 2, 0, 0, 0, 0, 0]])
    tags = [[0, 1, 0, 2, 3, 0, 4, 0], [0, 0, 0, 0, 0, 0, 0, 0]]  # at first sub-words: B-Drug I-Drug B-AE I-AE
    probs = [[0.9, 0.8, 0.5, 0.6, 0.7, 0.9, 0.55, 0.9], [0.9] * 8]  # each above 0.5: the argmax
    logits = torch.full((2, 8, 5), -30.0)
    for b in range(2):
        for t in range(8):  # two labels share the mass
            logits[b, t, tags[b][t]] = torch.tensor(probs[b][t]).log()
            logits[b, t, (tags[b][t] + 1) % 5] = torch.tensor(1 - probs[b][t]).log()
    spans, scores = model.decode_entities(logits, word_index)
    # entity 1: words 1-2 = tokens 1..3 (word 2 ends at token 3); entity 2: words 3-4 = tokens 4..6
    assert spans.tolist() == [[[1, 3, 0], [4, 6, 1]], [[-1, -1, -1], [-1, -1, -1]]]
    assert scores[0].tolist() == pytest.approx([(0.8 + 0.6) / 2, (0.7 + 0.55) / 2], abs=1e-6)
    assert scores[1].tolist() == [0.0, 0.0]
    empty_spans, empty_scores = model.decode_entities(logits, torch.zeros_like(word_index))
    assert empty_spans.shape == (2, 0, 3) and empty_scores.shape == (2, 0)


def test_all_pairs_come_from_one_encoder_pass():
    model = tiny_model().eval()
    calls = []
    model.encoder.register_forward_hook(lambda *a: calls.append(1))
    spans = torch.tensor([[[1, 1, 0], [2, 2, 1], [3, 3, 1], [4, 4, 0]]] * 3)
    ids = torch.randint(1000, 2000, (3, 6))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), entity_spans=spans)
    assert out.relation_logits.shape == (3, 4, 2)  # 2 AE x 2 Drug candidate pairs per sentence
    assert len(calls) == 1


def test_loss_is_lambda_weighted():
    model = tiny_model(ner_loss_weight=0.25).eval()
    ids = torch.randint(1000, 2000, (2, 6))
    labels = torch.tensor([[-100, 1, 0, 3, 0, -100]] * 2)
    spans = torch.tensor([[[1, 1, 0], [3, 3, 1]]] * 2)
    pairs = torch.tensor([[[1, 0]]] * 2)
    out = model(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        labels=labels,
        entity_spans=spans,
        relation_pairs=pairs,
        relation_labels=torch.tensor([[1], [0]]),
    )
    assert torch.allclose(out.loss, 0.25 * out.ner_loss + 0.75 * out.relation_loss)
    no_pairs = model(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        labels=labels,
        entity_spans=torch.full((2, 0, 3), -1),
        relation_labels=torch.zeros((2, 0), dtype=torch.long),
    )
    assert torch.isfinite(no_pairs.loss) and no_pairs.relation_loss.item() == 0.0


def test_length_grouped_batches_cover_every_index_once():
    lengths = [5, 30, 7, 12, 3, 40, 22, 9, 15, 1]
    batches = length_grouped_batches(lengths, batch_size=3, seed=1, group_factor=2)
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert batches == length_grouped_batches(lengths, batch_size=3, seed=1, group_factor=2)
    assert batches != length_grouped_batches(lengths, batch_size=3, seed=2, group_factor=2)


@pytest.mark.data
def test_training_overfits_twenty_sentences(ade_data_dir, minilm_tokenizer):
    """Real behaviour: a tiny random encoder memorises 20 ADE sentences (NER F1 >= 0.95 on them)."""
    from transformers import pipeline

    from datasets_scripts.ade_corpus import ade_records

    records = ade_records("fold_0", data_dir=ade_data_dir)["train"][:20]
    model = tiny_model()
    features = [encode_ade_record(r, minilm_tokenizer, model.config, 128).features for r in records]
    collate = AdeCollator(minilm_tokenizer.pad_token_id, model.candidate_type_ids())
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(60):
        for start in range(0, 20, 10):
            loss = model(**collate(features[start : start + 10])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    extract = pipeline("ade-extraction", model=model, tokenizer=minilm_tokenizer)
    outputs = extract([r["text"] for r in records], batch_size=8)
    gold = [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in records]
    pred = [[(e["type"], e["start"], e["end"]) for e in o["entities"]] for o in outputs]
    scores = ner_scores(gold, pred)
    assert scores["ner_f1_micro"] >= 0.95, scores
    for record, output in zip(records, outputs):
        for entity in output["entities"]:
            assert record["text"][entity["start"] : entity["end"]] == entity["text"]
    found = sum(len(o["relations"]) for o in outputs)
    assert found > 0, "the relation head found no relation in sentences it was trained on"


@pytest.mark.data
def test_collator_labels_line_up_with_gold_relations(ade_data_dir, minilm_tokenizer):
    """Every candidate pair's label is ADE exactly when the record has that (adverse effect, drug) relation."""
    from datasets_scripts.ade_corpus import ade_records

    records = [r for r in ade_records("fold_0", data_dir=ade_data_dir)["test"][:40] if len(r["entities"]) > 2]
    model = tiny_model()
    encoded = [encode_ade_record(r, minilm_tokenizer, model.config, 128).features for r in records]
    batch = AdeCollator(minilm_tokenizer.pad_token_id, model.candidate_type_ids())(encoded)
    checked = 0
    for b, (record, feature) in enumerate(zip(records, encoded)):
        keys = [tuple(e) for e in feature["gold_entities"]]
        gold = {
            (
                (r_head := record["entities"][r["head"]])["type"],
                r_head["start"],
                r_head["end"],
                (r_tail := record["entities"][r["tail"]])["type"],
                r_tail["start"],
                r_tail["end"],
            )
            for r in record["relations"]
        }
        for (head, tail), label in zip(
            batch["relation_pairs"][b].tolist(), batch["relation_labels"][b].tolist()
        ):
            if head < 0:
                assert label == -100
                continue
            assert keys[head][0] == "Adverse-Effect" and keys[tail][0] == "Drug"
            assert label == int((*keys[head], *keys[tail]) in gold)
            checked += 1
    assert checked > 40


def test_perfect_predictions_score_one():
    """The evaluation path (gold docs vs predicted docs) gives 1.0 everywhere for a perfect prediction."""
    from modeling_ade.joint_training import gold_doc
    from modeling_ade.metrics import compute_ade_metrics

    record = {
        "entities": [
            {"type": "Drug", "start": 12, "end": 24},
            {"type": "Adverse-Effect", "start": 33, "end": 44},
        ],
        "relations": [{"head": 1, "tail": 0, "type": "ADE"}],
    }
    doc = gold_doc(record)
    assert doc["relations"] == [(("Adverse-Effect", 33, 44), ("Drug", 12, 24), "ADE")]
    scores = compute_ade_metrics([doc], [doc], [doc])["overlap_kept"]
    for key in ("ner_f1_micro", "ner_f1_macro", "re_f1_strict", "re_f1_boundaries", "re_f1_gold_entities"):
        assert scores[key] == 1.0, key


def test_gold_entity_pass_scores_with_exact_gold_offsets():
    """A gold entity widened to word boundaries by the tokenizer still matches its gold span exactly."""
    from types import SimpleNamespace

    from modeling_ade.joint_training import _gold_entity_doc

    output = SimpleNamespace(
        relation_pairs=torch.tensor([[[1, 0], [-1, -1]]]),
        relation_logits=torch.tensor([[[0.0, 5.0], [9.0, 0.0]]]),
    )
    doc = _gold_entity_doc(output, 0, [["Drug", 0, 12], ["Adverse-Effect", 20, 31]], JointNerReConfig())
    assert doc["relations"] == [(("Adverse-Effect", 20, 31), ("Drug", 0, 12), "ADE")]


def test_relation_head_equals_r_bert_computed_pair_by_pair():
    """The head factors W3 over the concatenation; in eval mode it must equal R-BERT written out per pair:
    MLP(W3 [W0 tanh(h_cls); W1 tanh(h_head_end); W2 tanh(h_tail_end)])."""
    from modeling_ade.hub.modeling_joint_ner_re import JointNerReRelationHead

    torch.manual_seed(0)
    config = JointNerReConfig(encoder_config=tiny_encoder_config(100))
    head = JointNerReRelationHead(config).eval()
    hidden = torch.randn(3, 9, config.hidden_size)
    spans = torch.tensor(
        [
            [[1, 2, 0], [4, 4, 1], [6, 8, 1]],
            [[2, 5, 1], [7, 7, 0], [-1, -1, -1]],
            [[-1, -1, -1], [-1, -1, -1], [-1, -1, -1]],
        ]
    )
    pairs = torch.tensor([[[1, 0], [2, 0], [0, 2]], [[0, 1], [-1, -1], [-1, -1]], [[-1, -1]] * 3])
    logits = head(hidden, spans, pairs)
    assert logits.shape == (3, 3, len(config.relation_labels))
    for b in range(3):
        for p in range(3):
            h, t = pairs[b, p].tolist()
            if h < 0:
                continue
            parts = [
                head.cls_projection(torch.tanh(hidden[b, 0])),
                head.head_projection(torch.tanh(hidden[b, spans[b, h, 1]])),
                head.tail_projection(torch.tanh(hidden[b, spans[b, t, 1]])),
            ]
            expected = head.mlp(head.fuse(torch.cat(parts)))
            torch.testing.assert_close(logits[b, p], expected, atol=1e-5, rtol=1e-5)


def test_encoder_without_pooler_weights_loads(tmp_path):
    """Sentence-embedding checkpoints (all-mpnet-base-v2) have no pooler: any family whose AutoModel takes
    ``add_pooling_layer`` is built without one, so their weights fit exactly."""
    from transformers import MPNetConfig, MPNetModel

    config = MPNetConfig(
        vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    MPNetModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "mpnet")
    model = JointNerReForAdeExtraction.from_encoder(str(tmp_path / "mpnet"))
    assert model.encoder.pooler is None
    out = model(
        input_ids=torch.tensor([[0, 5, 6, 7, 2]]),
        attention_mask=torch.ones(1, 5, dtype=torch.long),
        word_index=torch.tensor([[0, 1, 2, 3, 0]]),
    )
    assert out.ner_logits.shape[:2] == (1, 5)
