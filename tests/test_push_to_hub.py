"""push_to_hub.py: the dry-run folder is a working Hub repo (fresh process without modeling_ade), the card's
metadata equals metrics.json, the upload is one commit of exactly that folder (mocked Hub, no network), a failed
upload leaves OUT untouched, datasets export loads, adapters are packaged or merged, the token never leaks.

The mocked Hub: a subprocess installs ``huggingface_hub.set_client_factory`` with an ``httpx2.MockTransport``
that answers the endpoints ``create_repo`` / ``create_commit`` call (repos/create, branch, validate-yaml,
preupload, LFS batch + PUT, commit) and records every request; ``HF_ENDPOINT`` points at 127.0.0.1:9 so a
request that escaped the mock could reach nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import biased_joint_model, tiny_encoder_config
from huggingface_hub import ModelCard, metadata_load
from transformers import pipeline

import push_to_hub
from modeling_ade import AdeExtractionPipeline, JointNerReForAdeExtraction
from modeling_ade.card_metrics import METRICS, OVERLAP_VARIANTS, metric_name
from modeling_ade.metrics import aggregate_folds, compute_ade_metrics, real_text_metrics

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_testTOKENdoNotLeak0123456789abcdef"
TEXTS = [
    "Intravenous azithromycin-induced ototoxicity.",
    "Lithium toxicity and rash after carbamazepine. " * 3,
]


def toy_metrics(shift: int = 0) -> dict:
    gold = [
        {
            "entities": [("Drug", 0, 5), ("Adverse-Effect", 10, 15), ("Adverse-Effect", 10, 12)],
            "relations": [(("Adverse-Effect", 10, 15), ("Drug", 0, 5), "ADE")],
        },
        {"entities": [("Drug", 0, 3), ("Adverse-Effect", 5, 9)], "relations": []},
    ]
    pred = [
        {
            "entities": [("Drug", 0, 5), ("Adverse-Effect", 10, 15)],
            "relations": [(("Adverse-Effect", 10, 15), ("Drug", 0, 5), "ADE")],
        },
        {"entities": [("Drug", shift, 3)], "relations": []},
    ]
    metrics = compute_ade_metrics(gold, pred, pred)
    negatives = [{"entities": [], "relations": []}] * (3 + shift) + [pred[0]]
    metrics["real_text"] = real_text_metrics([bool(d["relations"]) for d in gold], pred, negatives)
    metrics.update(num_train_sentences=40, num_test_sentences=2)
    return metrics


def save_tiny_model(folder: Path, tokenizer, seed: int = 1) -> JointNerReForAdeExtraction:
    model = biased_joint_model(tokenizer.vocab_size, seed)
    pipeline("ade-extraction", model=model, tokenizer=tokenizer).save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def model_out(tmp_path_factory, minilm_tokenizer):
    """A train.py-like output folder: save_pretrained files, metrics.json, training_args.json, a logs/ folder."""
    out = tmp_path_factory.mktemp("run") / "ade-fold3"
    save_tiny_model(out, minilm_tokenizer)
    (out / "metrics.json").write_text(json.dumps(toy_metrics()), encoding="utf-8")
    args = {
        "task": "ade",
        "model": "all-MiniLM-L6-v2",
        "output_dir": str(out),
        "fold": 3,
        "epochs": 1,
        "seed": 42,
    }
    (out / "training_args.json").write_text(json.dumps(args), encoding="utf-8")
    (out / "logs").mkdir()
    (out / "logs" / "events.out").write_text("tensorboard", encoding="utf-8")
    return out


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, script: Path | None = None):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(cwd / "hf_home"),
        "HF_TOKEN": TOKEN,
        "PYTHONPATH": str(REPO_ROOT),
        **(env_extra or {}),
    }
    command = [sys.executable, str(script or REPO_ROOT / "push_to_hub.py"), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def assert_no_token(*texts: str, folder: Path | None = None) -> None:
    for text in texts:
        assert TOKEN not in text
    if folder is not None:
        for path in folder.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


@pytest.fixture(scope="module")
def dry_run(model_out, tmp_path_factory):
    """``push_to_hub.py model OUT --dry-run DIR`` in a subprocess (HF_TOKEN set, to check it never leaks)."""
    work = tmp_path_factory.mktemp("dry")
    result = run_cli(
        ["model", str(model_out), "--repo-id", "me/tiny-ade", "--dry-run", str(work / "repo")], work
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_no_token(result.stdout, result.stderr, folder=work / "repo")
    return work / "repo"


def test_dry_run_folder_is_what_the_hub_gets(dry_run, model_out):
    names = sorted(p.name for p in dry_run.iterdir())
    assert names == sorted(
        [
            "README.md",
            "bio.py",
            "config.json",
            "configuration_joint_ner_re.py",
            "encoder_utils.py",
            "handler.py",
            "metrics.json",
            "model.safetensors",
            "modeling_joint_ner_re.py",
            "onnx_encoder.py",
            "pipeline_ade_extraction.py",
            "requirements.txt",
            "tokenizer.json",
            "tokenizer_config.json",
            "training_args.json",
        ]
    )
    config = json.loads((dry_run / "config.json").read_text())
    assert "ade-extraction" in config["custom_pipelines"] and "AutoModel" in config["auto_map"]
    for name in ("model.safetensors", "config.json", "tokenizer.json", "metrics.json"):
        assert (dry_run / name).read_bytes() == (model_out / name).read_bytes()
    assert "transformers>=5.0,<6" in (dry_run / "requirements.txt").read_text()
    assert not (model_out / "README.md").exists(), "OUT must not be written to"


def test_dry_run_folder_works_without_modeling_ade(dry_run, model_out, tmp_path):
    """Model, custom pipeline and the Inference Endpoints handler load from the folder in a fresh process."""
    expected = pipeline("ade-extraction", model=str(model_out), pipeline_class=AdeExtractionPipeline)(TEXTS)
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["modeling_ade"] = None  # importing it must be impossible here
        sys.modules["datasets_scripts"] = None
        from transformers import AutoModel, pipeline
        model = AutoModel.from_pretrained({str(dry_run)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        pipe = pipeline("ade-extraction", model={str(dry_run)!r}, trust_remote_code=True)
        sys.path.insert(0, {str(dry_run)!r})
        from handler import EndpointHandler
        handler = EndpointHandler({str(dry_run)!r})
        one = handler({{"inputs": {TEXTS[0]!r}}})
        many = handler({{"inputs": {TEXTS!r}, "parameters": {{"stride": 16}}}})
        try:
            handler({{"inputs": 3}})
            bad = None
        except ValueError as err:
            bad = str(err)
        print("RESULT:" + json.dumps({{"pipe": pipe({TEXTS!r}), "one": one, "many": many, "bad": bad}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT:")[1])
    expected = json.loads(json.dumps(expected))
    assert all(len(e["relations"]) > 0 for e in expected)
    for key in ("pipe", "many"):
        assert [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in got[key]] == [
            [(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in expected
        ]
        assert [len(r["relations"]) for r in got[key]] == [len(r["relations"]) for r in expected]
    assert got["one"]["entities"] == got["pipe"][0]["entities"]
    assert "inputs" in got["bad"]


def test_card_snippet_runs_as_written_without_prompting(dry_run, tmp_path):
    """The card's "How to use" code, with the repo id pointed at the dry-run folder, in a fresh process without
    modeling_ade and with no terminal to answer a "run the custom code? [y/N]" prompt."""
    card = (dry_run / "README.md").read_text()
    usage = card.split("## How to use", 1)[1]
    code = usage.split("```python\n", 1)[1].split("```", 1)[0]
    assert '"me/tiny-ade"' in code and 'REVISION = "main"' in code
    code = code.replace('"me/tiny-ade"', repr(str(dry_run))).replace('REVISION = "main"', "REVISION = None")
    script = 'import sys\nsys.modules["modeling_ade"] = None\nsys.modules["datasets_scripts"] = None\n' + code
    script += "\nprint('TOKENS', len(tokenizer('aspirin')['input_ids']), type(model).__name__)\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TOKENS" in result.stdout


def test_card_metadata_parses_and_equals_metrics(dry_run, model_out):
    card = ModelCard.load(dry_run / "README.md")
    with (dry_run / "README.md").open(encoding="utf-8") as handle:
        meta = metadata_load(handle.name)
    assert meta["license"] == "apache-2.0"  # all-MiniLM-L6-v2's licence
    assert meta["language"] == ["en"] and meta["pipeline_tag"] == "token-classification"
    assert "custom_code" in meta["tags"]
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["datasets"] == ["ade-benchmark-corpus/ade_corpus_v2"]
    assert meta["widget"] and all("text" in w for w in meta["widget"])
    assert card.data.eval_results, "model-index must parse into EvalResult objects"

    metrics = json.loads((model_out / "metrics.json").read_text())
    found = {
        m["name"]: (m["value"], r["dataset"]) for r in meta["model-index"][0]["results"] for m in r["metrics"]
    }
    expected = {
        metric_name(key, OVERLAP_VARIANTS[block]): metrics[block][key]
        for block in ("overlap_kept", "overlap_removed", "real_text")
        for key, *_ in METRICS
        if key in metrics[block]
    }
    assert len(expected) == 39 and {k: v for k, (v, _) in found.items()} == expected
    name = "Held-out negative sentences with at least one relation (lower is better); real text: test part + "
    assert found[name + "held-out negative sentences"][0] == metrics["real_text"]["neg_false_positive_rate"]
    name = "RE F1, end-to-end strict (spans + entity types + relation type); overlapping entities removed"
    assert found[name][0] == metrics["overlap_removed"]["re_f1_strict"]
    assert found[name][1]["config"] == "fold_3" and found[name][1]["split"] == "test"

    text = card.text
    for needle in (
        "trust_remote_code=True",
        "revision=REVISION",
        '"ade-extraction"',
        "custom pipeline",
        "fold 3",
        "EndpointHandler",
        "Research use only",
        "unknown — research use",
        "Gurulingappa",
        "Eberts",
        "R-BERT",
        "ADE-NEG.txt",
    ):
        assert needle in text, needle
    assert str(model_out) not in text, "local paths stay out of the card"


def test_cross_validation_fold_card_reports_the_means(model_out, tmp_path):
    run = tmp_path / "ade-cv"
    shutil.copytree(model_out, run / "fold_2")
    args = json.loads((run / "fold_2" / "training_args.json").read_text())
    (run / "fold_2" / "training_args.json").write_text(json.dumps({**args, "fold": 0, "cv": 3}))
    per_fold = [toy_metrics(shift) for shift in (0, 1, 2)]
    (run / "fold_2" / "metrics.json").write_text(json.dumps(per_fold[2]))
    summary = aggregate_folds([{k: m[k] for k in OVERLAP_VARIANTS} for m in per_fold])
    (run / "metrics.json").write_text(json.dumps({"cross_validation": summary, "folds": [0, 1, 2]}))
    assert (
        push_to_hub.main(
            ["model", str(run / "fold_2"), "--repo-id", "me/cv", "--dry-run", str(tmp_path / "d")]
        )
        == 0
    )
    meta = metadata_load(str(tmp_path / "d" / "README.md"))
    results = meta["model-index"][0]["results"]
    cv = {
        m["name"]: m["value"]
        for r in results
        if "cross-validation" in r["dataset"]["name"]
        for m in r["metrics"]
    }
    own = {
        m["name"]: m["value"] for r in results if "fold 2 test" in r["dataset"]["name"] for m in r["metrics"]
    }
    for block, variant in OVERLAP_VARIANTS.items():
        for key, *_ in METRICS:
            if key not in summary[block]:
                assert metric_name(key, variant) not in cv
                continue
            assert cv[metric_name(key, variant)] == summary[block][key]["mean"]
            assert own[metric_name(key, variant)] == per_fold[2][block][key]
    text = (tmp_path / "d" / "README.md").read_text()
    assert "3-fold cross-validation" in text and " ± " in text

    # the run folder itself (no weights) gets a message pointing at a fold
    code = push_to_hub.main(["model", str(run), "--repo-id", "me/cv", "--dry-run", str(tmp_path / "e")])
    assert code == 1 and not (tmp_path / "e").exists()


def test_missing_files_are_listed(model_out, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "metrics.json"):
        shutil.copy(model_out / name, broken / name)
    assert (
        push_to_hub.main(["model", str(broken), "--repo-id", "me/x", "--dry-run", str(tmp_path / "d")]) == 1
    )
    err = capsys.readouterr().err
    assert "config.json" in err and "model.safetensors" in err and "missing" in err
    assert not (tmp_path / "d").exists()

    (broken / "config.json").write_text((model_out / "config.json").read_text())
    (broken / "tokenizer.json").unlink()
    shutil.copy(model_out / "model.safetensors", broken / "model.safetensors")
    assert (
        push_to_hub.main(["model", str(broken), "--repo-id", "me/x", "--dry-run", str(tmp_path / "d")]) == 1
    )
    err = capsys.readouterr().err
    for needle in ("modeling_joint_ner_re.py", "pipeline_ade_extraction.py", "tokenizer"):
        assert needle in err
    assert "model.safetensors" not in err.split("missing")[1]

    assert (
        push_to_hub.main(
            ["model", str(model_out), "--repo-id", "me/x", "--merge", "--dry-run", str(tmp_path / "m")]
        )
        == 1
    )
    assert "adapter" in capsys.readouterr().err


def test_bert_crf_model_dry_run_works_without_modeling_ade(minilm_tokenizer, tmp_path):
    """The BERT-CRF kind: stock token-classification pipeline + handler from the dry-run folder, research-only
    licence of m3e-small, Chinese protocol note, model-index from a top-level NER metrics.json."""
    from conftest import biased_bert_crf_model

    from modeling_ade.metrics import ner_scores_from_tags

    model = biased_bert_crf_model(minilm_tokenizer)  # entity tags likely, so the comparison compares entities
    out = tmp_path / "ner"
    model.save_pretrained(out)
    minilm_tokenizer.save_pretrained(out)
    metrics = ner_scores_from_tags([["B-BODY", "I-BODY", "O", "B-SYMP"]], [["B-BODY", "I-BODY", "O", "O"]])
    metrics.update(num_train_sentences=10, num_eval_sentences=1, head="crf", layer_decay=0.8333)
    (out / "metrics.json").write_text(json.dumps(metrics))
    args = {"task": "ner", "model": "m3e-small", "head": "crf", "layer_decay": 0.8333, "output_dir": str(out)}
    (out / "training_args.json").write_text(json.dumps(args))
    repo = tmp_path / "repo"
    assert push_to_hub.main(["model", str(out), "--repo-id", "me/crf", "--dry-run", str(repo)]) == 0
    assert {"crf.py", "modeling_bert_crf.py", "handler.py"} <= {p.name for p in repo.iterdir()}

    meta = metadata_load(str(repo / "README.md"))
    assert (meta["license"], meta["license_name"]) == ("other", "m3e-research-only")
    assert meta["language"] == ["zh"] and meta["base_model"] == "moka-ai/m3e-small"
    values = {m["name"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert values == {metric_name(k, ""): metrics[k] for k, *_ in METRICS if k in metrics}
    text = (repo / "README.md").read_text()
    assert (
        "not the official" in text
        and 'pipeline("token-classification"' in text
        and "research use only" in text
    )
    # the final model (--train-split train+dev): its dev score is not held out, so the card gives none
    (out / "metrics.json").write_text(json.dumps({**metrics, "eval_held_out": False}))
    final = tmp_path / "final"
    assert push_to_hub.main(["model", str(out), "--repo-id", "me/crf", "--dry-run", str(final)]) == 0
    assert "model-index" not in metadata_load(str(final / "README.md"))
    final_text = (final / "README.md").read_text()
    assert "no held-out score of its own" in final_text and "| NER F1" not in final_text

    texts = ["服用阿斯匹靈後出現胃痛", "headache and fever after aspirin"]
    expected = pipeline(
        "token-classification", model=model, tokenizer=minilm_tokenizer, aggregation_strategy="simple"
    )(texts)
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["modeling_ade"] = None
        sys.modules["datasets_scripts"] = None
        from transformers import AutoModelForTokenClassification
        model = AutoModelForTokenClassification.from_pretrained({str(repo)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        sys.path.insert(0, {str(repo)!r})
        from handler import EndpointHandler
        print("RESULT:" + json.dumps(EndpointHandler({str(repo)!r})({{"inputs": {texts!r}}})))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT:")[1])
    spans = lambda outputs: [[(e["entity_group"], e["start"], e["end"]) for e in o] for o in outputs]  # noqa: E731
    assert spans(got) == spans(expected) and any(spans(expected))


# --------------------------------------------------------------------------------------------------------
# Upload against a mocked Hub
# --------------------------------------------------------------------------------------------------------

MOCK_HUB = """
import json, os, re, sys
import httpx2
import huggingface_hub
from huggingface_hub.utils._http import hf_request_event_hook

record_path, argv = sys.argv[1], sys.argv[2:]
fail = os.environ.get("MOCK_HUB_FAIL", "")
token = os.environ["HF_TOKEN"]
records = []

def handle(request):
    path = request.url.path
    content = request.read()
    entry = {"method": request.method, "path": path, "query": dict(request.url.params),
             "auth": request.headers.get("authorization") == "Bearer " + token}
    records.append(entry)
    if path == "/api/repos/create":
        body = json.loads(content)
        entry["json"] = body
        return httpx2.Response(200, json={"url": "http://127.0.0.1:9/%s/%s" % (body["organization"], body["name"])})
    if path == "/api/validate-yaml":
        return httpx2.Response(200, json={})
    if request.method == "GET" and re.fullmatch(r"/api/models/[^/]+/[^/]+", path):  # model_info
        return httpx2.Response(200, json={"id": path[len("/api/models/"):], "sha": "b" * 40, "private": False})
    if re.fullmatch(r"/api/(models|datasets|spaces)/.+/branch/.+", path):
        return httpx2.Response(200, json={})
    if re.fullmatch(r"/api/(models|datasets|spaces)/.+/preupload/.+", path):
        files = json.loads(content)["files"]
        entry["files"] = [f["path"] for f in files]
        lfs = lambda f: f["path"].endswith((".safetensors", ".parquet")) or f["size"] > 500_000
        return httpx2.Response(200, json={"files": [
            {"path": f["path"], "uploadMode": "lfs" if lfs(f) else "regular", "shouldIgnore": False, "oid": None}
            for f in files]})
    if path.endswith(".git/info/lfs/objects/batch"):
        objects = json.loads(content)["objects"]
        entry["oids"] = [o["oid"] for o in objects]
        return httpx2.Response(200, json={"transfer": "basic", "objects": [
            {"oid": o["oid"], "size": o["size"],
             "actions": {"upload": {"href": "http://127.0.0.1:9/lfs-storage/" + o["oid"]}}} for o in objects]})
    if request.method == "PUT" and path.startswith("/lfs-storage/"):
        entry["size"] = len(content)
        if fail == "lfs" and len(content) > 5_000_000:  # the weights: the transfer breaks off
            return httpx2.Response(403, text="mock: upload interrupted")
        return httpx2.Response(200)
    if re.fullmatch(r"/api/(models|datasets|spaces)/.+/commit/.+", path):
        entry["ndjson"] = [json.loads(line) for line in content.decode().splitlines() if line]
        if fail == "commit":
            return httpx2.Response(500, json={"error": "mock: internal error"})
        repo = re.fullmatch(r"/api/(?:models|datasets|spaces)/(.+)/commit/.+", path).group(1)
        return httpx2.Response(200, json={"commitUrl": "http://127.0.0.1:9/%s/commit/%s" % (repo, "a" * 40),
                                           "commitOid": "a" * 40,
                                           "pullRequestUrl": "http://127.0.0.1:9/%s/discussions/1" % repo})
    return httpx2.Response(404, json={"error": "mock: unexpected request " + path})

huggingface_hub.set_client_factory(lambda: httpx2.Client(
    transport=httpx2.MockTransport(handle), event_hooks={"request": [hf_request_event_hook]}, follow_redirects=True))
import push_to_hub
try:
    code = push_to_hub.main(argv)
finally:
    with open(record_path, "w") as handle:
        json.dump(records, handle)
sys.exit(code)
"""


def upload_with_mock(args: list[str], work: Path, fail: str = ""):
    work.mkdir(parents=True, exist_ok=True)
    script = work / "mock_hub.py"
    script.write_text(MOCK_HUB, encoding="utf-8")
    env = {
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MOCK_HUB_FAIL": fail,
    }
    result = run_cli([str(work / "records.json"), *args], work, env, script=script)
    records = json.loads((work / "records.json").read_text())
    assert_no_token(result.stdout, result.stderr)
    return result, records


def test_space_upload_creates_a_gradio_space_pinned_to_the_current_model_commit(tmp_path):
    result, records = upload_with_mock(
        ["space", "me/tiny-ade", "--repo-id", "me/tiny-ade-demo"], tmp_path / "s"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    create = next(r for r in records if r["path"] == "/api/repos/create")
    assert create["json"]["type"] == "space" and create["json"]["sdk"] == "gradio"
    commit = next(r for r in records if r["path"].startswith("/api/spaces/me/tiny-ade-demo/commit/"))
    files = {line["value"]["path"]: line["value"] for line in commit["ndjson"] if line.get("key") == "file"}
    assert set(files) == {"app.py", "requirements.txt", "README.md"}
    app = base64.b64decode(files["app.py"]["content"]).decode()
    assert "MODEL_REVISION = '" + "b" * 40 + "'" in app  # the model's current commit, read from the Hub


def test_upload_is_one_commit_of_the_dry_run_folder(model_out, dry_run, tmp_path):
    before = folder_digest(model_out)
    args = [
        "model",
        str(model_out),
        "--repo-id",
        "me/tiny-ade",
        "--private",
        "--revision",
        "dev",
        "--commit-message",
        "first version",
    ]
    result, records = upload_with_mock(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'revision="' + "a" * 40 + '"' in result.stdout
    storage = [r for r in records if r["path"].startswith("/lfs-storage/")]
    assert all(r["auth"] for r in records if r not in storage), "every Hub API request carries the token"
    assert storage and not any(r["auth"] for r in storage), "the token is not sent to the LFS storage"

    create = [r for r in records if r["path"] == "/api/repos/create"]
    assert len(create) == 1 and create[0]["json"]["name"] == "tiny-ade"
    assert create[0]["json"]["organization"] == "me"
    assert create[0]["json"].get("visibility") == "private" or create[0]["json"].get("private") is True
    assert [r["path"] for r in records if "/branch/" in r["path"]] == ["/api/models/me/tiny-ade/branch/dev"]
    commits = [r for r in records if "/commit/" in r["path"]]
    assert len(commits) == 1 and commits[0]["path"] == "/api/models/me/tiny-ade/commit/dev"
    header, *files = commits[0]["ndjson"]
    assert header["value"]["summary"] == "first version"

    expected = {p.name: p.read_bytes() for p in dry_run.iterdir()}
    paths = [f["value"]["path"] for f in files]
    assert sorted(paths) == sorted(expected), "every file of the dry-run folder exactly once"
    for item in files:
        data = expected[item["value"]["path"]]
        if item["key"] == "file":
            assert base64.b64decode(item["value"]["content"]) == data
        else:
            assert item["key"] == "lfsFile" and item["value"]["oid"] == hashlib.sha256(data).hexdigest()
    uploaded = [r["path"].rsplit("/", 1)[1] for r in records if r["method"] == "PUT"]
    assert sorted(uploaded) == sorted(f["value"]["oid"] for f in files if f["key"] == "lfsFile")
    assert folder_digest(model_out) == before


def test_create_pr_goes_to_main_with_a_pull_request(model_out, tmp_path):
    result, records = upload_with_mock(
        ["model", str(model_out), "--repo-id", "me/tiny-ade", "--create-pr"], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    commits = [r for r in records if "/commit/" in r["path"]]
    assert len(commits) == 1 and commits[0]["path"].endswith("/commit/main")
    assert commits[0]["query"].get("create_pr") == "1" and "pull request" in result.stdout
    assert not [r for r in records if "/branch/" in r["path"]]


@pytest.mark.parametrize("fail", ["lfs", "commit"])
def test_interrupted_upload_fails_clearly_and_leaves_out_unchanged(model_out, tmp_path, fail):
    before = folder_digest(model_out)
    result, records = upload_with_mock(["model", str(model_out), "--repo-id", "me/tiny-ade"], tmp_path, fail)
    assert result.returncode == 1
    assert "upload to me/tiny-ade failed" in result.stderr and "No commit was made" in result.stderr
    assert "was not modified" in result.stderr and "Traceback" not in result.stderr
    commits = [r for r in records if "/commit/" in r["path"]]
    assert len(commits) == (0 if fail == "lfs" else 1)
    assert folder_digest(model_out) == before


def test_upload_refuses_without_token_or_offline(model_out, tmp_path):
    result = run_cli(["model", str(model_out), "--repo-id", "me/tiny-ade"], tmp_path)
    assert result.returncode == 1 and "HF_HUB_OFFLINE" in result.stderr
    result = run_cli(
        ["model", str(model_out), "--repo-id", "me/tiny-ade"],
        tmp_path,
        {"HF_HUB_OFFLINE": "0", "HF_TOKEN": ""},
    )
    assert result.returncode == 1 and "hf auth login" in result.stderr


# --------------------------------------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, minilm_tokenizer):
    """A LoRA adapter (query/value + the two heads in modules_to_save) on a saved tiny joint model."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("adapter")
    save_tiny_model(root / "base", minilm_tokenizer, seed=2)
    base = JointNerReForAdeExtraction.from_pretrained(root / "base")
    config = LoraConfig(
        r=4, target_modules=["query", "value"], modules_to_save=["ner_classifier", "relation_head"]
    )
    model = get_peft_model(base, config)
    torch.manual_seed(3)
    with torch.no_grad():  # stand-in for training: non-zero LoRA B matrices, changed heads
        for name, param in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(root / "adapter")
    minilm_tokenizer.save_pretrained(root / "adapter")
    (root / "adapter" / "metrics.json").write_text(json.dumps(toy_metrics()))
    ids = minilm_tokenizer(TEXTS[0], return_tensors="pt")
    word_index = torch.tensor([[0 if w is None else w + 1 for w in ids.word_ids()]])
    with torch.no_grad():
        logits = model.eval()(**ids, word_index=word_index).ner_logits
    return root, logits, ids, word_index


def test_adapter_folder_is_uploaded_as_an_adapter(adapter, tmp_path):
    root, *_ = adapter
    assert (
        push_to_hub.main(
            ["model", str(root / "adapter"), "--repo-id", "me/lora", "--dry-run", str(tmp_path / "d")]
        )
        == 0
    )
    names = {p.name for p in (tmp_path / "d").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= names
    assert "handler.py" not in names and "model.safetensors" not in names
    meta = metadata_load(str(tmp_path / "d" / "README.md"))
    assert meta["library_name"] == "peft" and "peft" in meta["tags"]
    text = (tmp_path / "d" / "README.md").read_text()
    assert "Base model: `base`" in text and "PeftModel.from_pretrained" in text
    assert (
        push_to_hub.main(
            [
                "model",
                str(root / "adapter"),
                "--repo-id",
                "me/lora",
                "--base-model",
                "org/base-model",
                "--dry-run",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert metadata_load(str(tmp_path / "e" / "README.md"))["base_model"] == "org/base-model"


def test_merge_gives_a_full_model_with_the_adapter_outputs(adapter, tmp_path):
    root, logits, ids, word_index = adapter
    out = tmp_path / "d"
    assert (
        push_to_hub.main(
            ["model", str(root / "adapter"), "--repo-id", "me/merged", "--merge", "--dry-run", str(out)]
        )
        == 0
    )
    names = {p.name for p in out.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "pipeline_ade_extraction.py",
        "handler.py",
        "metrics.json",
    } <= names
    assert not names & {"adapter_config.json", "adapter_model.safetensors"}
    config = json.loads((out / "config.json").read_text())
    assert "ade-extraction" in config["custom_pipelines"] and "AutoModel" in config["auto_map"]
    from transformers import AutoModel

    merged = AutoModel.from_pretrained(out, trust_remote_code=True).eval()
    with torch.no_grad():
        merged_logits = merged(**ids, word_index=word_index).ner_logits
    assert torch.allclose(merged_logits, logits, atol=1e-5)
    meta = metadata_load(str(out / "README.md"))
    assert meta["library_name"] == "transformers" and "merged" in meta["tags"]


# --------------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------------


def test_ade_dataset_dry_run_loads_with_datasets(ade_data_dir, tmp_path):
    import datasets

    from datasets_scripts.ade_card import SOURCE_COMMIT_RAW, SOURCE_COMMIT_SPLIT

    out = tmp_path / "ade"
    code = push_to_hub.main(
        [
            "dataset",
            "ade",
            "--repo-id",
            "me/ade",
            "--configs",
            "fold_3",
            "--data-dir",
            str(ade_data_dir),
            "--dry-run",
            str(out),
        ]
    )
    assert code == 0
    fold = datasets.load_dataset(str(out), "fold_3", cache_dir=str(tmp_path / "cache"))
    assert set(fold) == {"train", "test"} and fold["train"].num_rows + fold["test"].num_rows == 4272
    meta = metadata_load(str(out / "README.md"))
    assert meta["license"] == "unknown" and meta["task_categories"] == ["token-classification"]
    assert meta["configs"][0]["config_name"] == "fold_3"
    text = (out / "README.md").read_text()
    for needle in (
        SOURCE_COMMIT_RAW,
        SOURCE_COMMIT_SPLIT,
        "## Statistics",
        "gurulingappa2012",
        'load_dataset("me/ade", "fold_3"',
    ):
        assert needle in text, needle


def test_chinese_dataset_dry_run_loads_with_datasets(healthner_data_dir, tmp_path):
    import datasets

    out = tmp_path / "zh"
    code = push_to_hub.main(
        [
            "dataset",
            "chinese_healthner",
            "--repo-id",
            "me/zh",
            "--configs",
            "dev",
            "--data-dir",
            str(healthner_data_dir),
            "--dry-run",
            str(out),
        ]
    )
    assert code == 0
    dev = datasets.load_dataset(str(out), "dev", cache_dir=str(tmp_path / "cache"))
    assert dev["validation"].num_rows == 916
    text = (out / "README.md").read_text()
    assert "not the official" in text and "zh" in metadata_load(str(out / "README.md"))["language"]
    assert (
        push_to_hub.main(
            [
                "dataset",
                "chinese_healthner",
                "--repo-id",
                "me/zh",
                "--configs",
                "fold_0",
                "--dry-run",
                str(tmp_path / "bad"),
            ]
        )
        == 1
    )


def test_merge_onto_a_plain_encoder_rebuilds_the_model(minilm_tokenizer, tmp_path, capsys):
    """An adapter trained on a model built from an encoder (``from_encoder``): the adapter folder holds the
    model's config.json, the base is the encoder; the heads must come from modules_to_save."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, BertModel

    torch.manual_seed(4)
    BertModel(tiny_encoder_config(minilm_tokenizer.vocab_size), add_pooling_layer=False).save_pretrained(
        tmp_path / "encoder"
    )
    base = JointNerReForAdeExtraction.from_encoder(str(tmp_path / "encoder"))
    lora = LoraConfig(
        r=4, target_modules=["query", "value"], modules_to_save=["ner_classifier", "relation_head"]
    )
    model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(0.1)
    adapter_dir = tmp_path / "adapter"
    model.save_pretrained(adapter_dir)
    base.config.save_pretrained(adapter_dir)
    minilm_tokenizer.save_pretrained(adapter_dir)
    ids = minilm_tokenizer(TEXTS[0], return_tensors="pt")
    word_index = torch.tensor([[0 if w is None else w + 1 for w in ids.word_ids()]])
    with torch.no_grad():
        expected = model.eval()(**ids, word_index=word_index).ner_logits

    out = tmp_path / "d"
    args = [
        "model",
        str(adapter_dir),
        "--repo-id",
        "me/m",
        "--merge",
        "--base-model",
        str(tmp_path / "encoder"),
    ]
    assert push_to_hub.main([*args, "--dry-run", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert "ade-extraction" in config["custom_pipelines"] and (out / "pipeline_ade_extraction.py").is_file()
    merged = AutoModel.from_pretrained(out, trust_remote_code=True).eval()
    with torch.no_grad():
        assert torch.allclose(merged(**ids, word_index=word_index).ner_logits, expected, atol=1e-5)

    # without the heads in modules_to_save the merge would ship random heads: refused
    lora = LoraConfig(r=4, target_modules=["query", "value"])
    get_peft_model(JointNerReForAdeExtraction.from_encoder(str(tmp_path / "encoder")), lora).save_pretrained(
        tmp_path / "no_heads"
    )
    base.config.save_pretrained(tmp_path / "no_heads")
    args[1] = str(tmp_path / "no_heads")
    capsys.readouterr()
    assert push_to_hub.main([*args, "--dry-run", str(tmp_path / "e")]) == 1
    assert (
        "modules ['ner_classifier', 'relation_head'] are neither in the encoder nor in the adapter's modules_to_save"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "e").exists()


def test_merge_runs_no_code_from_the_base_folder_unless_asked(tmp_path, capsys):
    """#13: --merge used to load the --base-model folder with trust_remote_code=True, even under --dry-run."""
    base = tmp_path / "base"
    base.mkdir()
    marker = tmp_path / "code_ran"
    (base / "configuration_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n",
        encoding="utf-8",
    )
    (base / "config.json").write_text(
        json.dumps({"model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}),
        encoding="utf-8",
    )
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps(
            {"peft_type": "LORA", "base_model_name_or_path": str(base), "r": 4, "target_modules": ["q"]}
        ),
        encoding="utf-8",
    )
    from modeling_ade.lora import MergeError, merge_adapter

    with pytest.raises(MergeError, match="cannot load the base model"):
        merge_adapter(adapter, tmp_path / "merged", None)
    assert not marker.exists(), "the base folder's code ran without --trust-remote-code"
