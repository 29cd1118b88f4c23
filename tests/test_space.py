"""The demo people can click: `push_to_hub.py space`, the Gradio app run locally on a trained tiny model and the
`predict.py --html` page, both opened in headless Chromium as a person would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, wait_until_listening
from huggingface_hub import metadata_load

import predict
import push_to_hub

REPO_ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "Intravenous azithromycin-induced ototoxicity was observed in a patient with AIDS."


def test_space_dry_run_pins_the_model_commit(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as under `make test`
    out = tmp_path / "space"
    args = ["space", "me/ade", "--repo-id", "me/ade-demo", "--dry-run", str(out)]
    assert push_to_hub.main(args) == 1  # offline: the commit cannot be read from the Hub, so it must be given
    assert "--model-revision is needed" in capsys.readouterr().err and not out.exists()
    assert push_to_hub.main([*args, "--model-revision", "0123abcd"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    app = (out / "app.py").read_text()
    assert "MODEL_REPO = 'me/ade'" in app and "MODEL_REVISION = '0123abcd'" in app
    meta = metadata_load(str(out / "README.md"))
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == push_to_hub.GRADIO_VERSION
    assert meta["app_file"] == "app.py" and meta["models"] == ["me/ade"]
    import gradio

    assert (
        gradio.__version__ == push_to_hub.GRADIO_VERSION
    )  # the app is tested with the version the Space runs
    requirements = (out / "requirements.txt").read_text().split()
    assert {r.split("==")[0].split(">=")[0] for r in requirements} == {"transformers", "torch", "sentencex"}


def test_model_card_links_to_its_space(model_dir, tmp_path):
    repo = tmp_path / "repo"
    args = ["model", str(model_dir), "--repo-id", "me/ade", "--space", "me/ade-demo", "--dry-run", str(repo)]
    assert push_to_hub.main(args) == 0
    assert "(https://huggingface.co/spaces/me/ade-demo)" in (repo / "README.md").read_text()
    assert "sentencex" in (repo / "requirements.txt").read_text()  # the endpoint's pipeline splits sentences


def test_local_app_in_chromium(model_dir, tmp_path, chromium):
    """`python app.py --model DIR` as the README says; type a sentence, press Extract, see the entities
    highlighted and the relation table filled."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    expected = predict.load_extractor(
        predict.build_parser().parse_args(
            [str(tmp_path / "x.txt"), "--model", str(model_dir), "--output", "x"]
        )
    )(SENTENCE)
    assert expected["entities"] and expected["relations"]  # the tiny model is biased to find both
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": str(REPO_ROOT),
    }
    app = REPO_ROOT / "modeling_ade" / "space" / "app.py"
    command = [
        sys.executable,
        str(app),
        "--model",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = (tmp_path / "app.log").open("w")
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(server, port, lambda: (tmp_path / "app.log").read_text()[-3000:])
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#text textarea", SENTENCE)
            page.click("#extract")
            highlighted = page.locator("#entities .highlighted")
            highlighted.first.wait_for(timeout=60_000)
            rows = page.locator("#relations [role=row].virtual-row")  # the grid Gradio shows
            rows.first.wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
            shown = highlighted.locator(".text").all_text_contents()
            table = [r.locator("[role=gridcell]").all_text_contents() for r in rows.all()]
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert shown == [e["text"] for e in expected["entities"]]
    assert len(table) == len(expected["relations"])
    assert {row[0].strip() for row in table} == {r["type"] for r in expected["relations"]}
    assert (tmp_path / "app.png").stat().st_size > 0 and not errors


def test_predict_html_page_in_chromium(model_dir, tmp_path, chromium):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    notes = tmp_path / "notes.txt"
    notes.write_text(SENTENCE + "\nNo adverse event was reported.\n", encoding="utf-8")
    out, page_path = tmp_path / "notes.jsonl", tmp_path / "notes.html"
    assert (
        predict.main([str(notes), "--model", str(model_dir), "--output", str(out), "--html", str(page_path)])
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(page_path.resolve().as_uri())
        docs = page.locator(".doc")
        assert docs.count() == 2
        marked = docs.nth(0).locator("span.ent").count()
        relations = docs.nth(0).locator(".rels li").count()
        page.screenshot(path=str(tmp_path / "notes.png"), full_page=True)
        browser.close()
    assert marked == len(rows[0]["entities"]) > 0 and relations == len(rows[0]["relations"]) > 0
    assert not errors


def test_app_shows_typed_entities_of_a_bert_crf_model(minilm_tokenizer, tmp_path):
    """The Chinese kind: a token-classification model gets its entities by type and no relation table."""
    import importlib.util

    from conftest import biased_bert_crf_model
    from transformers import pipeline

    model = biased_bert_crf_model(minilm_tokenizer)
    out = tmp_path / "ner"
    model.save_pretrained(out)
    minilm_tokenizer.save_pretrained(out)
    spec = importlib.util.spec_from_file_location(
        "space_app", REPO_ROOT / "modeling_ade" / "space" / "app.py"
    )
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    kind, extractor, language = app.load(str(out), None)
    assert (kind, language) == ("entities", "zh")
    text = "headache and fever after aspirin"
    shown, rows = app.extract(kind, extractor, text)
    expected = pipeline(
        "token-classification", model=model, tokenizer=minilm_tokenizer, aggregation_strategy="simple"
    )(text)
    assert rows == [] and shown["text"] == text and expected
    assert shown["entities"] == [
        {"entity": e["entity_group"], "start": e["start"], "end": e["end"]} for e in expected
    ]
    assert {e["entity"] for e in shown["entities"]} <= {"BODY", "SYMP"}
    assert app.extract(kind, extractor, "  ") == ({"text": "  ", "entities": []}, [])
