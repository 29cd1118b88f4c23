"""ONNX export and the ONNX Runtime encoder: ``python -m modeling_ade.export``, ``from_pretrained(..., onnx=...)``,
the pipelines, ``predict.py --onnx`` and the Hub files (issue 17). Tiny random models; the equivalence on the real
test sets is measured by ``benchmarks/bench_onnx.py``."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import biased_bert_crf_model, biased_joint_model
from transformers import pipeline

from modeling_ade import BertCrfForTokenClassification, JointNerReForAdeExtraction
from modeling_ade.export import ExportError, export
from modeling_ade.export import main as export_main
from modeling_ade.hub.onnx_encoder import OnnxEncoder, length_groups

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parent.parent
TEXTS = [
    "Severe hepatotoxicity developed after methotrexate was given.",
    "No adverse event.",
    "Rash and fever followed the second dose of amoxicillin in a child with otitis media, and "
    "the drug was stopped at once.",
]


def brute_force_cost(lengths: list[int], run_cost: int) -> float:
    """The cheapest cost over every way to cut the length-sorted rows into contiguous groups."""
    sizes = sorted(lengths)
    best = float("inf")
    for cuts in itertools.product([False, True], repeat=len(sizes) - 1):
        groups, start = [], 0
        for i, cut in enumerate(cuts, start=1):
            if cut:
                groups.append(sizes[start:i])
                start = i
        groups.append(sizes[start:])
        best = min(best, sum(len(g) * max(g) + run_cost for g in groups))
    return best


@pytest.mark.parametrize(
    "lengths", [[5, 5, 5, 5], [3, 40, 4, 41, 39, 2], [10, 11, 12, 60, 61, 200, 9], [7], [1, 100, 1, 100, 1]]
)
@pytest.mark.parametrize("run_cost", [0, 16, 64])
def test_length_groups_cover_every_row_once_at_the_least_cost(lengths, run_cost):
    groups = length_groups(lengths, run_cost)
    assert sorted(r for g in groups for r in g) == list(range(len(lengths)))
    cost = sum(len(g) * max(lengths[r] for r in g) + run_cost for g in groups)
    assert cost == brute_force_cost(lengths, run_cost)
    if run_cost and len(set(lengths)) == 1:
        assert len(groups) == 1


@pytest.fixture(scope="module")
def joint_dir(tmp_path_factory, minilm_tokenizer):
    """A saved tiny joint model with its fp32 and int8 ONNX encoders."""
    model = biased_joint_model(minilm_tokenizer.vocab_size, seed=3)
    out = tmp_path_factory.mktemp("joint")
    pipeline("ade-extraction", model=model, tokenizer=minilm_tokenizer).save_pretrained(out)
    export(out, int8=True)
    return out


@pytest.fixture(scope="module")
def crf_dir(tmp_path_factory, minilm_tokenizer):
    model = biased_bert_crf_model(minilm_tokenizer)
    out = tmp_path_factory.mktemp("crf")
    model.save_pretrained(out)
    minilm_tokenizer.save_pretrained(out)
    export(out, int8=True)
    return out


def mixed_batch(tokenizer):
    return tokenizer(TEXTS, padding=True, return_tensors="pt")


def test_export_writes_both_encoders_and_keeps_the_weights(joint_dir):
    assert (joint_dir / "onnx" / "encoder.onnx").stat().st_size > 0
    assert (joint_dir / "onnx" / "encoder_int8.onnx").stat().st_size > 0
    assert (joint_dir / "onnx_encoder.py").is_file()  # the code that loads them ships with the model
    record = json.loads((joint_dir / "onnx" / "export.json").read_text())
    assert record["files"] == ["encoder.onnx", "encoder_int8.onnx"] and len(record["encoder_sha256"]) == 64
    assert not [p for p in (joint_dir / "onnx").iterdir() if p.is_dir()], "the scratch folder is left behind"


@pytest.mark.parametrize("run_cost", [0, 1])  # 1: every row of another length runs on its own
def test_onnx_fp32_encoder_matches_pytorch_on_mixed_lengths(joint_dir, minilm_tokenizer, run_cost):
    model = JointNerReForAdeExtraction.from_pretrained(joint_dir).eval()
    batch = mixed_batch(minilm_tokenizer)
    onnx = OnnxEncoder(joint_dir / "onnx" / "encoder.onnx", run_cost=run_cost)
    with torch.no_grad():
        expected = model.encoder(**batch).last_hidden_state
        got = onnx(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    assert got.shape == expected.shape
    assert torch.allclose(got[real], expected[real], atol=1e-4)
    if run_cost:  # rows run cut to their length come back as zeros where they are padding
        assert (got[~real] == 0).all()


def test_joint_model_on_onnx_gives_pytorch_entities_and_relations(joint_dir, minilm_tokenizer):
    batch = mixed_batch(minilm_tokenizer)
    word_index = torch.tensor(
        [[0 if w is None else w + 1 for w in batch.word_ids(i)] for i in range(len(TEXTS))]
    )
    outputs = {}
    for backend in (None, "fp32", "int8"):
        model = JointNerReForAdeExtraction.from_pretrained(joint_dir, onnx=backend)
        assert isinstance(model.encoder, OnnxEncoder) == (backend is not None)
        with torch.no_grad():
            outputs[backend] = model(**batch, word_index=word_index)
    torch_out, fp32 = outputs[None], outputs["fp32"]
    assert (torch_out.entity_spans >= 0).sum() > 0, "the biased model finds entities"
    assert torch.equal(fp32.entity_spans, torch_out.entity_spans)
    assert torch.equal(fp32.relation_pairs, torch_out.relation_pairs)
    assert torch.allclose(fp32.relation_logits, torch_out.relation_logits, atol=1e-4)
    assert outputs["int8"].ner_logits.shape == torch_out.ner_logits.shape


STRANGER = """
import json, sys
from transformers import pipeline
pipe = pipeline("ade-extraction", model=sys.argv[1], trust_remote_code=True, model_kwargs={"onnx": "fp32"})
assert "modeling_ade" not in sys.modules, "the folder's own code, not this package's"
print(json.dumps({"encoder": type(pipe.model.encoder).__name__, "results": pipe(json.loads(sys.argv[2]))}))
"""


def test_a_stranger_runs_the_pipeline_on_onnx_with_trust_remote_code(joint_dir, tmp_path):
    """A fresh process that never imports modeling_ade: the folder's own code, through the documented
    model_kwargs, gives the PyTorch pipeline's entities and relations."""
    done = subprocess.run(
        [sys.executable, "-c", STRANGER, str(joint_dir), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    stranger = json.loads(done.stdout.splitlines()[-1])
    assert stranger["encoder"] == "OnnxEncoder"
    expected = pipeline("ade-extraction", model=str(joint_dir), trust_remote_code=True)(TEXTS, batch_size=3)
    assert sum(len(r["entities"]) for r in expected) > 0
    for a, b in zip(expected, stranger["results"]):
        assert [(e["type"], e["start"], e["end"]) for e in a["entities"]] == [
            (e["type"], e["start"], e["end"]) for e in b["entities"]
        ]
        assert [(r["type"], len(r)) for r in a["relations"]] == [(r["type"], len(r)) for r in b["relations"]]
        for x, y in zip(a["entities"] + a["relations"], b["entities"] + b["relations"]):
            assert x["score"] == pytest.approx(y["score"], abs=1e-4)


@pytest.mark.parametrize("backend", ["fp32", "int8"])
def test_bert_crf_token_classification_pipeline_on_onnx(crf_dir, backend):
    plain = pipeline("token-classification", model=str(crf_dir), trust_remote_code=True)
    onnx = pipeline(
        "token-classification", model=str(crf_dir), trust_remote_code=True, model_kwargs={"onnx": backend}
    )
    expected, got = plain(TEXTS), onnx(TEXTS)
    assert sum(len(r) for r in expected) > 0
    if backend == "fp32":  # the same Viterbi tags at every token
        assert [[(e["entity"], e["start"], e["end"]) for e in r] for r in got] == [
            [(e["entity"], e["start"], e["end"]) for e in r] for r in expected
        ]
    else:  # int8: entities in the same output format
        assert sum(len(r) for r in got) > 0
        assert all(set(e) == set(expected[0][0]) for r in got for e in r)


def test_onnx_model_refuses_to_save_and_names_a_missing_export(tmp_path, crf_dir, minilm_tokenizer):
    model = BertCrfForTokenClassification.from_pretrained(crf_dir, onnx="fp32")
    with pytest.raises(ValueError, match="load it without onnx"):
        model.save_pretrained(tmp_path / "saved")
    with pytest.raises(ValueError, match="expected one of"):
        BertCrfForTokenClassification.from_pretrained(crf_dir, onnx="fp16")
    bare = tmp_path / "bare"
    biased_bert_crf_model(minilm_tokenizer).save_pretrained(bare)
    with pytest.raises(FileNotFoundError, match=r"python -m modeling_ade.export DIR --int8"):
        BertCrfForTokenClassification.from_pretrained(bare, onnx="int8")


def test_export_output_leaves_the_source_untouched(tmp_path, minilm_tokenizer):
    source = tmp_path / "model"
    biased_bert_crf_model(minilm_tokenizer).save_pretrained(source)
    minilm_tokenizer.save_pretrained(source)
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    assert export_main([str(source), "--output", str(tmp_path / "out")]) == 0
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before
    assert (tmp_path / "out" / "onnx" / "encoder.onnx").is_file()
    assert not (tmp_path / "out" / "onnx" / "encoder_int8.onnx").exists()
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == before["model.safetensors"]


def test_export_errors_are_one_line(tmp_path, capsys):
    assert export_main([str(tmp_path / "missing")]) == 2
    assert "no such model folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert export_main([str(tmp_path / "empty")]) == 2
    assert "no config.json" in capsys.readouterr().err
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "config.json").write_text("{}")
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(ExportError, match="--output OUT"):
        export(adapter)


def run_predict(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "predict.py"), *args], capture_output=True, text=True, cwd=REPO
    )


def test_predict_onnx_writes_the_same_rows(tmp_path, joint_dir):
    source = tmp_path / "notes.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    rows = {}
    for backend in (None, "fp32"):
        out = tmp_path / f"{backend}.jsonl"
        done = run_predict(
            str(source),
            "--model",
            str(joint_dir),
            "--output",
            str(out),
            *(["--onnx", backend] if backend else []),
        )
        assert done.returncode == 0, done.stderr
        rows[backend] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows[None]) == len(rows["fp32"]) == len(TEXTS)
    for a, b in zip(rows[None], rows["fp32"]):
        assert [(e["type"], e["start"], e["end"]) for e in a["entities"]] == [
            (e["type"], e["start"], e["end"]) for e in b["entities"]
        ]
        assert len(a["relations"]) == len(b["relations"])


def test_predict_onnx_without_an_export_says_how_to_write_it(tmp_path, model_dir):
    source = tmp_path / "notes.txt"
    source.write_text(TEXTS[0] + "\n", encoding="utf-8")
    done = run_predict(
        str(source), "--model", str(model_dir), "--output", str(tmp_path / "o.jsonl"), "--onnx", "int8"
    )
    assert done.returncode == 2
    assert "python -m modeling_ade.export" in done.stderr and "Traceback" not in done.stderr


def test_bulk_job_records_the_backend_and_refuses_to_mix(tmp_path, joint_dir):
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    out = tmp_path / "out"
    done = run_predict(str(source), "--model", str(joint_dir), "--output-dir", str(out), "--onnx", "int8")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["onnx"] == "int8"
    done = run_predict(str(source), "--model", str(joint_dir), "--output-dir", str(out))
    assert done.returncode == 2
    assert "onnx: 'int8' there, None now" in done.stderr


def test_push_to_hub_ships_the_onnx_files_and_onnxruntime(joint_dir):
    sys.path.insert(0, str(REPO))
    from push_to_hub import model_manifest, requirements_txt

    manifest = model_manifest(joint_dir)
    assert {"onnx/encoder.onnx", "onnx/encoder_int8.onnx", "onnx/export.json", "onnx_encoder.py"} <= set(
        manifest
    )
    config = json.loads((joint_dir / "config.json").read_text(encoding="utf-8"))
    assert b"onnxruntime" in requirements_txt(config, onnx=True)
    assert b"onnxruntime" not in requirements_txt(config)


def test_endpoint_handler_runs_on_onnx_when_asked(joint_dir, monkeypatch):
    from modeling_ade.endpoint_handler import EndpointHandler

    expected = EndpointHandler(str(joint_dir))({"inputs": TEXTS[0]})
    monkeypatch.setenv("MODELING_ADE_ONNX", "fp32")
    handler = EndpointHandler(str(joint_dir))
    assert type(handler.pipeline.model.encoder).__name__ == "OnnxEncoder"
    got = handler({"inputs": TEXTS[0]})
    assert [(e["type"], e["start"], e["end"]) for e in got["entities"]] == [
        (e["type"], e["start"], e["end"]) for e in expected["entities"]
    ]
    assert len(got["relations"]) == len(expected["relations"])


def test_an_export_of_other_weights_is_refused_everywhere(tmp_path, minilm_tokenizer):
    """Trained again into the same folder after an export: loading, predict.py and push_to_hub.py all refuse the
    old encoder; exporting again without --int8 removes the old int8 file."""
    from push_to_hub import PackagingError, model_manifest

    folder = tmp_path / "model"
    model = biased_joint_model(minilm_tokenizer.vocab_size, seed=5)
    pipeline("ade-extraction", model=model, tokenizer=minilm_tokenizer).save_pretrained(folder)
    export(folder, int8=True)
    retrained = biased_joint_model(minilm_tokenizer.vocab_size, seed=6)  # other encoder weights, same folder
    pipeline("ade-extraction", model=retrained, tokenizer=minilm_tokenizer).save_pretrained(folder)
    with pytest.raises(ValueError, match="export it again"):
        JointNerReForAdeExtraction.from_pretrained(folder, onnx="int8")
    with pytest.raises(PackagingError, match="other encoder weights"):
        model_manifest(folder)
    source = tmp_path / "notes.txt"
    source.write_text(TEXTS[0] + "\n", encoding="utf-8")
    done = run_predict(
        str(source), "--model", str(folder), "--output", str(tmp_path / "o.jsonl"), "--onnx", "int8"
    )
    assert done.returncode == 2 and "export it again" in done.stderr and "Traceback" not in done.stderr
    export(folder)  # fp32 only: the stale int8 file goes
    assert not (folder / "onnx" / "encoder_int8.onnx").exists()
    assert isinstance(JointNerReForAdeExtraction.from_pretrained(folder, onnx="fp32").encoder, OnnxEncoder)
