"""BERT-CRF token classifier: config, Viterbi-encoding logits (brute force), heads, overfitting, Hub round trip."""

import itertools
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import tiny_encoder_config
from transformers import AutoModelForTokenClassification, pipeline

from modeling_ade import BertCrfConfig, BertCrfForTokenClassification
from modeling_ade.encoders import M3E_SMALL, resolve_model_name
from modeling_ade.hub.bio import bio_to_spans
from modeling_ade.hub.crf import CRF, bio_constraints
from modeling_ade.hub.modeling_bert_crf import TIE_MARGIN

LABELS = ["O", "B-A", "I-A", "B-B", "I-B"]
CLS, SEP, PAD = 1, 2, 0


def tiny_model(vocab_size=64, seed=0, **config_kwargs):
    torch.manual_seed(seed)
    config = BertCrfConfig(
        encoder_config=tiny_encoder_config(vocab_size),
        id2label=dict(enumerate(LABELS)),
        special_token_ids=[PAD, CLS, SEP],
        **config_kwargs,
    )
    return BertCrfForTokenClassification(config)


def spread(model, seed=0):
    """Give the head and the CRF scores of order 1, so that paths differ clearly (a fresh model's
    emissions are ~0.01 and its transitions uniform in [-0.1, 0.1])."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0, generator=generator)
        if model.crf is not None:
            for param in (model.crf.start_transitions, model.crf.end_transitions, model.crf.transitions):
                param.normal_(0, 1.0, generator=generator)
    return model.eval()


def batch_with_gaps():
    """Two rows: [CLS] w w w w [SEP] and a shorter one with padding."""
    input_ids = torch.tensor([[CLS, 5, 6, 7, 8, SEP, PAD], [CLS, 9, 10, 11, SEP, PAD, PAD]])
    return input_ids, (input_ids != PAD).long()


def brute_force(emissions, positions, start, transitions, end):
    """Best path and, per position and tag, the best score of a path through it (every path enumerated)."""
    num_tags = emissions.size(-1)
    best = {}
    for path in itertools.product(range(num_tags), repeat=len(positions)):
        score = start[path[0]] + end[path[-1]]
        score = score + sum(emissions[p, y] for p, y in zip(positions, path))
        score = score + sum(transitions[a, b] for a, b in zip(path, path[1:]))
        best[path] = float(score)
    viterbi = max(best, key=best.get)
    through = torch.full((len(positions), num_tags), -float("inf"))
    for path, score in best.items():
        for i, y in enumerate(path):
            through[i, y] = max(through[i, y], score)
    return list(viterbi), through


# ----------------------------------------------------------------------------------------------------
# config


def test_config_round_trip_rebuilds_the_model(tmp_path):
    model = tiny_model(head_hidden_size=16, classifier_dropout=0.2, use_bio_constraints=False)
    model.save_pretrained(tmp_path)
    again = BertCrfForTokenClassification.from_pretrained(tmp_path)
    config = again.config
    assert config.id2label == dict(enumerate(LABELS)) and config.label2id["I-B"] == 4
    assert (config.head_hidden_size, config.classifier_dropout, config.use_bio_constraints) == (
        16,
        0.2,
        False,
    )
    assert config.special_token_ids == [PAD, CLS, SEP] and config.pad_token_id == 0
    assert config.encoder_config.hidden_size == 64 and config.entity_types == ["A", "B"]
    assert again.hidden_layer.out_features == 16 and again.crf.allowed_transitions is None
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_constraint_buffers_come_back_from_the_checkpoint(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    again = BertCrfForTokenClassification.from_pretrained(tmp_path)
    allowed_start, allowed_transitions = bio_constraints(LABELS)
    assert torch.equal(again.crf.allowed_transitions, allowed_transitions)
    assert torch.equal(again.crf.allowed_start, allowed_start)
    assert torch.equal(again.crf.transitions, model.crf.transitions)


def test_config_defaults():
    config = BertCrfConfig(encoder_config=tiny_encoder_config(64, hidden_dropout_prob=0.3))
    assert config.head == "crf" and config.use_bio_constraints
    assert config.classifier_dropout == 0.3  # the encoder's hidden dropout
    assert config.head_hidden_size == 64
    assert config.special_token_ids == [0]  # a BERT config names only its padding id


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head": "lstm"}, "`head` must be one of 'crf', 'softmax', got 'lstm'"),
        ({"classifier_dropout": 1.0}, r"`classifier_dropout` must be in \[0, 1\), got 1.0"),
        ({"head_hidden_size": 0}, "`head_hidden_size` must be a positive int, got 0"),
        ({"head_activation": "swishy"}, "`head_activation` must be a key of .*ACT2FN, got 'swishy'"),
        ({"use_bio_constraints": "yes"}, "`use_bio_constraints` must be a bool, got 'yes'"),
        (
            {"id2label": {0: "O", 1: "E-A"}},
            r"`id2label\[1\]` is 'E-A': expected 'O', 'B-<type>' or 'I-<type>'",
        ),
        ({"id2label": {0: "B-A", 1: "I-A"}}, "needs the outside tag 'O'"),
        ({"id2label": {0: "O", 2: "B-A"}}, "keys must be 0..1"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BertCrfConfig(encoder_config=tiny_encoder_config(64), **kwargs)


def test_init_delegates_to_the_encoder():
    model = tiny_model()
    # Linear layers: normal(0, initializer_range) and zero bias, as the encoder initialises its own.
    assert model.classifier.bias.abs().max() == 0
    assert 0.01 < model.hidden_layer.weight.std() < 0.03
    assert model.crf.transitions.abs().max() <= 0.1


# ----------------------------------------------------------------------------------------------------
# decoding


@pytest.mark.parametrize("constrained", [True, False])
def test_logits_argmax_equals_decode_equals_brute_force_viterbi(constrained):
    model = spread(tiny_model(use_bio_constraints=constrained), seed=3)
    input_ids, attention_mask = batch_with_gaps()
    out = model(input_ids=input_ids, attention_mask=attention_mask)
    tags = model.decode(input_ids, attention_mask)
    assert torch.equal(out.tags, tags)
    assert torch.isfinite(out.logits).all()
    start, transitions, end = (s.detach() for s in model.crf.constrained_scores(torch.float32))
    for b in range(input_ids.size(0)):
        positions = [t for t in range(input_ids.size(1)) if input_ids[b, t] not in (PAD, CLS, SEP)]
        viterbi, through = brute_force(out.emissions[b].detach(), positions, start, transitions, end)
        assert tags[b, positions].tolist() == viterbi
        assert out.logits[b, positions].argmax(-1).tolist() == viterbi
        off = [t for t in range(input_ids.size(1)) if t not in positions]
        assert (tags[b, off] == -100).all()
        assert torch.equal(out.logits[b, off], out.emissions[b, off].detach())
        # logits = max-marginals relative to the path: 0 on the path, the (negative) gap elsewhere.
        expected = (through - through.max(dim=1, keepdim=True).values).clamp(max=-TIE_MARGIN)
        expected.scatter_(1, torch.tensor(viterbi).unsqueeze(1), 0.0)
        assert torch.allclose(out.logits[b, positions], expected, atol=1e-3)


def test_logits_of_a_tie_still_point_at_the_decoded_tag():
    model = tiny_model(use_bio_constraints=False).eval()
    with torch.no_grad():  # every path scores the same: all tags tie everywhere
        model.classifier.weight.zero_()
        for param in (model.crf.start_transitions, model.crf.end_transitions, model.crf.transitions):
            param.zero_()
    input_ids, attention_mask = batch_with_gaps()
    out = model(input_ids=input_ids, attention_mask=attention_mask)
    mask = out.tags != -100
    assert torch.equal(out.logits.argmax(-1)[mask], out.tags[mask])
    assert (out.logits.max(-1).values[mask] == 0).all()
    assert (out.logits.topk(2, dim=-1).values[..., 1][mask] <= -TIE_MARGIN).all()


def test_decode_mask_and_labels_choose_the_chain():
    model = spread(tiny_model(), seed=1)
    input_ids, attention_mask = batch_with_gaps()
    decode_mask = torch.zeros_like(input_ids, dtype=torch.bool)
    decode_mask[:, [1, 3]] = True  # e.g. first sub-words only
    tags = model.decode(input_ids, attention_mask, decode_mask=decode_mask)
    assert ((tags != -100) == decode_mask).all()
    labels = torch.where(decode_mask, 0, -100)
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert torch.equal(out.tags, tags)


def test_bio_constraints_hold_in_every_decoded_path():
    def invalid(tag_ids):
        tags = [LABELS[i] for i in tag_ids]
        previous = ["O", *tags[:-1]]
        return any(t.startswith("I-") and p[2:] != t[2:] for p, t in zip(previous, tags))

    input_ids = torch.tensor([[CLS, *range(5, 17), SEP]] * 64)
    attention_mask = torch.ones_like(input_ids)
    broken = {}
    for constrained in (True, False):
        model = tiny_model(use_bio_constraints=constrained, seed=5).eval()
        with torch.no_grad():  # emissions that love I- tags, so an unconstrained CRF breaks BIO
            model.classifier.weight.normal_(0, 3.0, generator=torch.Generator().manual_seed(0))
            model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 4.0, 0.0, 4.0]))
        tags = model.decode(input_ids, attention_mask)
        broken[constrained] = sum(invalid(row[row != -100].tolist()) for row in tags)
    assert broken[True] == 0
    assert broken[False] > 0  # the check has teeth


def test_softmax_head():
    model = spread(tiny_model(head="softmax"), seed=2)
    assert model.crf is None
    input_ids, attention_mask = batch_with_gaps()
    labels = torch.tensor([[-100, 1, 2, 0, 3, -100, -100], [-100, 0, 1, 2, -100, -100, -100]])
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.emissions[labels != -100], labels[labels != -100])
    assert torch.allclose(out.loss, expected)
    assert torch.equal(out.logits, out.emissions)
    decoded = model.decode(input_ids, attention_mask)
    mask = decoded != -100
    assert mask.tolist() == [[0, 1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0, 0]]
    assert torch.equal(decoded[mask], out.emissions.argmax(-1)[mask])


def test_crf_loss_is_the_negative_log_likelihood_over_labelled_positions():
    model = spread(tiny_model(), seed=4)
    input_ids, attention_mask = batch_with_gaps()
    labels = torch.tensor([[-100, 1, 2, -100, 0, -100, -100], [-100, 3, 4, 0, -100, -100, -100]])
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    start, transitions, end = (s.detach() for s in model.crf.constrained_scores(torch.float32))
    nll = []
    for b in range(2):
        positions = (labels[b] != -100).nonzero().flatten().tolist()
        gold = labels[b, positions].tolist()
        emissions = out.emissions[b].detach()
        scores = []
        for path in itertools.product(range(len(LABELS)), repeat=len(positions)):
            score = start[path[0]] + end[path[-1]] + sum(emissions[p, y] for p, y in zip(positions, path))
            scores.append(score + sum(transitions[x, y] for x, y in zip(path, path[1:])))
            if list(path) == gold:
                gold_score = scores[-1]
        nll.append(torch.logsumexp(torch.stack(scores), 0) - gold_score)
    assert torch.allclose(out.loss, torch.stack(nll).mean(), atol=1e-4)


SENTENCES = [  # (token ids, tags) of a toy corpus
    ([5, 6, 7, 8, 9], [1, 2, 0, 3, 4]),
    ([10, 11, 12], [0, 1, 2]),
    ([13, 14, 15, 16], [3, 4, 4, 0]),
    ([17, 5, 18, 19, 20, 21], [0, 1, 0, 0, 3, 0]),
]


def toy_batch():
    length = max(len(ids) for ids, _ in SENTENCES) + 2
    input_ids = torch.full((len(SENTENCES), length), PAD)
    labels = torch.full((len(SENTENCES), length), -100)
    for b, (ids, tags) in enumerate(SENTENCES):
        input_ids[b, : len(ids) + 2] = torch.tensor([CLS, *ids, SEP])
        labels[b, 1 : len(ids) + 1] = torch.tensor(tags)
    return input_ids, (input_ids != PAD).long(), labels


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_overfits_a_handful_of_sentences(head):
    model = tiny_model(head=head, seed=7, classifier_dropout=0.0)
    input_ids, attention_mask, labels = toy_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(60):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    decoded = model.decode(input_ids, attention_mask)
    assert torch.equal(decoded, labels)  # -100 at [CLS], [SEP] and padding, the gold tags elsewhere


def test_training_step_does_not_decode(monkeypatch):
    """A training step (train mode + labels) computes the loss only: no Viterbi, no max-marginals."""
    model = tiny_model(seed=3, classifier_dropout=0.0)
    input_ids, attention_mask, labels = toy_batch()
    model.eval()
    expected = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert expected.tags is not None and expected.logits is not None  # evaluation decodes
    calls = []
    for name in ("decode", "max_marginals"):
        original = getattr(CRF, name)
        monkeypatch.setattr(
            CRF, name, lambda self, *a, _o=original, _n=name, **k: calls.append(_n) or _o(self, *a, **k)
        )
    model.train()
    torch.manual_seed(0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert calls == [] and out.tags is None and out.logits is None
    out.loss.backward()
    torch.manual_seed(0)  # the same dropout masks: decoding changes nothing but the outputs it adds
    asked = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, decode_tags=True)
    assert calls == ["decode", "max_marginals"] and torch.equal(asked.loss, out.loss)
    assert asked.tags.shape == expected.tags.shape and asked.logits.shape == expected.logits.shape
    assert model(input_ids=input_ids, attention_mask=attention_mask).tags is not None  # no labels: decodes


# ----------------------------------------------------------------------------------------------------
# Hub round trip: stock pipeline, fresh process without modeling_ade


@pytest.fixture(scope="module")
def m3e_tokenizer():
    from modeling_ade.ner_task import load_tokenizer

    try:
        path = resolve_model_name(M3E_SMALL)
    except FileNotFoundError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
    return load_tokenizer(M3E_SMALL, path)


TEXTS = ["患者服用阿斯匹靈後出現胃痛與頭痛", "COVID-19 疫苗接種後手臂腫脹", "今天天氣很好"]
ENTITIES = [("阿斯匹靈", "B"), ("胃痛", "A"), ("頭痛", "A"), ("手臂", "A"), ("疫苗", "B")]


def char_tags(text):
    tags = ["O"] * len(text)
    for mention, entity_type in ENTITIES:
        start = text.find(mention)
        if start >= 0:
            tags[start] = f"B-{entity_type}"
            for i in range(start + 1, start + len(mention)):
                tags[i] = f"I-{entity_type}"
    return tags


@pytest.fixture(scope="module")
def trained_crf(m3e_tokenizer):
    """A tiny CRF model overfitted on TEXTS (character tags), so that it finds entities."""
    torch.manual_seed(0)
    config = BertCrfConfig(
        encoder_config=tiny_encoder_config(m3e_tokenizer.vocab_size),
        id2label=dict(enumerate(LABELS)),
        special_token_ids=[i for i in m3e_tokenizer.all_special_ids if i != m3e_tokenizer.unk_token_id],
        classifier_dropout=0.0,
    )
    model = BertCrfForTokenClassification(config)
    encoding = m3e_tokenizer(TEXTS, padding=True, return_tensors="pt", return_offsets_mapping=True)
    labels = torch.full_like(encoding["input_ids"], -100)
    for b, text in enumerate(TEXTS):
        tags = char_tags(text)
        for t, (start, end) in enumerate(encoding["offset_mapping"][b].tolist()):
            if end > start:
                labels[b, t] = LABELS.index(tags[start])
    inputs = {k: encoding[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(60):
        model(**inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    assert torch.equal(model.decode(**inputs)[labels != -100], labels[labels != -100])
    return model


def decoded_entities(model, tokenizer, text):
    """Entities of the model's own decoded path, chunked over tokens, as character spans
    ``(type, start, end)`` (the first token's start, the last token's end)."""
    encoding = tokenizer(text, return_tensors="pt", return_offsets_mapping=True)
    offsets = encoding.pop("offset_mapping")[0].tolist()
    tags = model.decode(**encoding)[0].tolist()
    positions = [t for t, tag in enumerate(tags) if tag != -100]
    chunks = bio_to_spans([model.config.id2label[tags[t]] for t in positions])
    return sorted((k, offsets[positions[s]][0], offsets[positions[e - 1]][1]) for k, s, e in chunks)


def pipeline_entities(outputs):
    return sorted((e["entity_group"], e["start"], e["end"]) for e in outputs)


def test_stock_pipeline_returns_the_crf_path(trained_crf, m3e_tokenizer):
    ner = pipeline(
        "token-classification", model=trained_crf, tokenizer=m3e_tokenizer, aggregation_strategy="simple"
    )
    found = 0
    for text, outputs in zip(TEXTS, ner(TEXTS)):
        expected = decoded_entities(trained_crf, m3e_tokenizer, text)
        assert pipeline_entities(outputs) == expected
        assert expected == sorted(bio_to_spans(char_tags(text)))
        found += len(expected)
        for entity in outputs:
            assert entity["word"].replace(" ", "") == text[entity["start"] : entity["end"]].lower().replace(
                " ", ""
            )
            assert 0.0 < entity["score"] <= 1.0
    assert found >= 4


def test_hub_round_trip_in_a_process_without_modeling_ade(trained_crf, m3e_tokenizer, tmp_path):
    out = tmp_path / "model"
    trained_crf.save_pretrained(out)
    m3e_tokenizer.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_bert_crf.BertCrfConfig",
        "AutoModelForTokenClassification": "modeling_bert_crf.BertCrfForTokenClassification",
    }
    assert {"configuration_bert_crf.py", "modeling_bert_crf.py", "crf.py"} <= {p.name for p in out.iterdir()}
    ids = m3e_tokenizer(TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        expected = trained_crf(**ids)
    expected_outputs = pipeline(
        "token-classification", model=trained_crf, tokenizer=m3e_tokenizer, aggregation_strategy="simple"
    )(TEXTS)
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["modeling_ade"] = None  # importing it must be impossible here
        sys.modules["datasets_scripts"] = None
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
        model = AutoModelForTokenClassification.from_pretrained({str(out)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        tok = AutoTokenizer.from_pretrained({str(out)!r})
        with torch.no_grad():
            output = model(**tok({TEXTS[0]!r}, return_tensors="pt"))
        ner = pipeline("token-classification", model={str(out)!r}, aggregation_strategy="simple",
                       trust_remote_code=True)
        entities = [[(e["entity_group"], e["start"], e["end"], float(e["score"])) for e in o]
                    for o in ner({TEXTS!r})]
        print("RESULT:" + json.dumps({{"logits": output.logits[0].tolist(), "tags": output.tags[0].tolist(),
                                       "entities": entities}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT:")[1])
    assert got["tags"] == expected.tags[0].tolist()
    assert torch.allclose(torch.tensor(got["logits"]), expected.logits[0], atol=1e-4)
    for outputs, entities in zip(expected_outputs, got["entities"]):
        assert pipeline_entities(outputs) == sorted((t, s, e) for t, s, e, _ in entities)
        for e, (_, _, _, score) in zip(outputs, entities):
            assert abs(float(e["score"]) - score) < 1e-4


def test_auto_class_in_process(trained_crf, tmp_path):
    trained_crf.save_pretrained(tmp_path)
    model = AutoModelForTokenClassification.from_pretrained(tmp_path)
    assert isinstance(model, BertCrfForTokenClassification)


def test_long_text_through_the_stock_pipeline_with_stride(trained_crf, m3e_tokenizer):
    """Past 510 tokens the stock pipeline truncates unless given ``stride``; with it, every window is
    CRF-decoded (padding and [CLS]/[SEP] of each window stay off the chain) and the text is covered."""
    ner = pipeline(
        "token-classification", model=trained_crf, tokenizer=m3e_tokenizer, aggregation_strategy="simple"
    )
    text = TEXTS[0] * 40  # 640 characters
    entities = ner(text, stride=32)
    assert max(e["end"] for e in entities) > len(text) - len(TEXTS[0])
    assert len(ner(text)) < len(entities)  # without stride, the text past 510 tokens is lost
    mentions = [text[e["start"] : e["end"]] for e in entities]
    assert sum(m in {mention for mention, _ in ENTITIES} for m in mentions) > 0.5 * len(mentions)
