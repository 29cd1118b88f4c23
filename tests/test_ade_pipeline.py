"""ade-extraction pipeline: edge cases, long documents, and the Hub round trip without modeling_ade."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import biased_joint_model
from transformers import pipeline

from modeling_ade import JointNerReConfig
from modeling_ade.hub.pipeline_ade_extraction import relation_key


@pytest.fixture(scope="module")
def extractor(minilm_tokenizer):
    model = biased_joint_model(minilm_tokenizer.vocab_size, seed=1)
    return pipeline("ade-extraction", model=model, tokenizer=minilm_tokenizer)


def same_extractions(a, b, tol=1e-4):
    """Equal entities and relations; scores equal within ``tol`` (padding changes float rounding)."""

    def walk(x, y):
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(walk(x[k], y[k]) for k in x)
        if isinstance(x, list):
            return len(x) == len(y) and all(walk(i, j) for i, j in zip(x, y))
        if isinstance(x, float):
            return abs(x - y) <= tol
        return x == y

    return walk(json.loads(json.dumps(a)), json.loads(json.dumps(b)))


def check_offsets(text, output):
    for entity in output["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    for relation in output["relations"]:
        for key in ("drug", "adverse_effect"):
            assert relation[key] in output["entities"]


def test_empty_and_whitespace(extractor):
    for text in ["", "   ", "\n\t"]:
        assert extractor(text) == {"entities": [], "relations": []}


def test_list_input_and_batching_agree(extractor):
    texts = [
        "Intravenous azithromycin-induced ototoxicity.",
        "Naïve café patients",
        "服用阿斯匹靈後出現胃痛 😀",
    ]
    one_by_one = [extractor(t) for t in texts]
    batched = extractor(texts, batch_size=3)
    assert same_extractions(batched, one_by_one)
    for text, output in zip(texts, batched):
        check_offsets(text, output)


def test_long_document_is_windowed_and_nothing_is_lost(extractor, minilm_tokenizer):
    words = "Patients given methotrexate developed severe hepatotoxicity and rash after treatment".split()
    text = " ".join(words[i % len(words)] for i in range(2000))
    windows = list(extractor.preprocess(text, max_length=128, stride=32))
    assert len(windows) > 1
    covered = set()
    for w in windows:
        for (start, end), mask in zip(w["offset_mapping"][0].tolist(), w["attention_mask"][0].tolist()):
            if mask and end > start:
                covered.update(range(start, end))
    non_space = {i for i, ch in enumerate(text) if not ch.isspace()}
    assert non_space <= covered, "some characters fell between windows"
    output = extractor(text, max_length=128, stride=32)
    check_offsets(text, output)
    assert max(e["end"] for e in output["entities"]) > len(text) - 200, "no entity found near the end"
    keys = [(e["start"], e["end"], e["type"]) for e in output["entities"]]
    assert len(keys) == len(set(keys)), "an entity seen by two windows is reported twice"


def word_index(encoding):
    return torch.tensor([[0 if w is None else w + 1 for w in encoding.word_ids()]])


def test_relation_keys():
    assert relation_key("Adverse-Effect", "Drug") == ("adverse_effect", "drug")
    assert relation_key("Drug", "Drug") == ("head", "tail")


def test_hub_round_trip_in_a_process_without_modeling_ade(extractor, tmp_path):
    out = tmp_path / "model"
    extractor.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    assert "ade-extraction" in config["custom_pipelines"]
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel"}
    texts = ["Intravenous azithromycin-induced ototoxicity.", "Café au lait, 阿斯匹靈 and rash " * 40]
    expected = extractor(texts, batch_size=2)
    ids = extractor.tokenizer(texts[0], return_tensors="pt")
    with torch.no_grad():
        expected_logits = extractor.model(**ids, word_index=word_index(ids)).ner_logits[0].tolist()
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["modeling_ade"] = None  # importing it must be impossible here
        sys.modules["datasets_scripts"] = None
        import torch
        from transformers import AutoModel, AutoTokenizer, pipeline
        model = AutoModel.from_pretrained({str(out)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        tok = AutoTokenizer.from_pretrained({str(out)!r})
        ids = tok({texts[0]!r}, return_tensors="pt")
        word_index = torch.tensor([[0 if w is None else w + 1 for w in ids.word_ids()]])
        with torch.no_grad():
            logits = model(**ids, word_index=word_index).ner_logits[0].tolist()
        pipe = pipeline("ade-extraction", model={str(out)!r}, trust_remote_code=True)
        print("RESULT:" + json.dumps({{"logits": logits, "outputs": pipe({texts!r}, batch_size=2)}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT:")[1])
    assert torch.allclose(torch.tensor(got["logits"]), torch.tensor(expected_logits), atol=1e-5)
    assert same_extractions(expected, got["outputs"])
    assert all(len(o["entities"]) > 0 and len(o["relations"]) > 0 for o in expected)


def test_window_edges_do_not_produce_entity_fragments():
    """Three overlapping windows over ten words; one entity (words 3-5) is cut by two of them."""
    from types import SimpleNamespace

    from modeling_ade.hub.pipeline_ade_extraction import AdeExtractionPipeline

    words = [f"w{i}" for i in range(10)]
    text = " ".join(words)
    spans = [(3 * i, 3 * i + 2) for i in range(10)]

    def window(first_word, last_word, entity_words, is_first, is_last):
        offsets = [[0, 0]] + [list(spans[w]) for w in range(first_word, last_word + 1)] + [[0, 0]]
        a, b = (w - first_word + 1 for w in entity_words)
        return {
            "offset_mapping": torch.tensor([offsets]),
            "num_tokens": torch.tensor([len(offsets)]),
            "entity_spans": torch.tensor([[[a, b, 1]]]),
            "entity_scores": torch.tensor([[0.9]]),
            "relation_pairs": torch.zeros((1, 0, 2), dtype=torch.long),
            "relation_probs": torch.zeros((1, 0, 2)),
            "text": text if is_first else None,
            "first_window": torch.tensor([is_first]),
            "last_window": torch.tensor([is_last]),
        }

    outputs = [
        window(0, 4, (3, 4), True, False),  # sees w3 w4 at its right edge: a fragment
        window(2, 6, (3, 5), False, False),  # sees the whole entity inside
        window(4, 9, (4, 5), False, True),  # sees w4 w5 at its left edge: a fragment
    ]
    fake = SimpleNamespace(model=SimpleNamespace(config=JointNerReConfig()))
    result = AdeExtractionPipeline.postprocess(fake, outputs)
    assert [e["text"] for e in result["entities"]] == ["w3 w4 w5"]


def test_stride_must_be_positive(extractor):
    with pytest.raises(ValueError, match="stride"):
        list(extractor.preprocess("some text", max_length=16, stride=0))
