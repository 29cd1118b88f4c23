"""predict.py --output-dir (#21): streamed inputs, chunks on several processes, resume, bad rows, PubMed XML,
and the signal table. Tiny random models: the outputs are compared between runs, never hard-coded."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import pipeline

import predict
from modeling_ade import AdeExtractionPipeline
from modeling_ade.doc_sources import (
    Columns,
    SourceError,
    _plan_plain_file,
    plan_units,
    pubmed_records,
    read_unit,
)
from modeling_ade.signals import aggregate, normalise, read_synonyms, write_signals

REPO = Path(predict.__file__).resolve().parent
SENTENCES = [
    "Intravenous azithromycin-induced ototoxicity.",
    "A 54-year-old woman developed severe hepatotoxicity after two months of methotrexate.",
    "Lithium toxicity and rash were seen.",
    "The patient recovered.",
    "Seizures followed the first dose of tramadol. Renal failure was reversible.",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """JSONL (ids), plain text, a Parquet file of 3 row groups and a gzipped JSONL: 120 documents."""
    folder = tmp_path_factory.mktemp("corpus")
    docs = [
        {"pmid": f"p{i}", "title": f"Case {i}", "abstract": SENTENCES[i % 5] + " " + SENTENCES[(i * 3) % 5]}
        for i in range(120)
    ]
    (folder / "a.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[:40]))
    (folder / "b.txt").write_text("".join(d["abstract"] + "\n" for d in docs[40:70]))
    pq.write_table(pa.Table.from_pylist(docs[70:100]), folder / "c.parquet", row_group_size=10)
    with gzip.open(folder / "d.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(d) + "\n" for d in docs[100:])
    return folder


def bulk(model_dir, inputs, out, *extra):
    return predict.main(
        [
            *map(str, inputs),
            "--model",
            str(model_dir),
            "--output-dir",
            str(out),
            "--text-column",
            "abstract",
            "--chunk-size",
            "7",
            *extra,
        ]
    )


def read_rows(out):
    rows = pa.concat_tables([pq.read_table(p) for p in sorted((out / "parts").glob("*.parquet"))]).to_pylist()
    return sorted(rows, key=lambda r: r["id"])


def comparable(rows):
    return [
        (
            r["id"],
            [(e["type"], e["start"], e["end"]) for e in r["entities"]],
            [
                (x["type"], x["head"]["start"], x["tail"]["start"], x["sentence_start"])
                for x in r["relations"]
            ],
        )
        for r in rows
    ]


# ----------------------------------------------------------------------------------------------------
# reading


def test_plain_file_units_cover_every_line_once(tmp_path):
    path = tmp_path / "x.txt"
    lines = [f"line {i} " + "x" * (i % 13 + 1) for i in range(200)]
    path.write_text("\n".join(lines))  # no newline at the end
    units = _plan_plain_file(str(path), "text", chunk_bytes=97)
    assert len(units) > 10 and units[0].start == 0 and units[-1].stop == path.stat().st_size
    assert all(a.stop == b.start for a, b in zip(units, units[1:]))
    rows = [row for unit in units for row in read_unit(unit, Columns())]
    assert [r.text for r in rows] == lines and [r.row for r in rows] == list(range(200))
    assert rows[5].id == f"{path}:5"


def test_folders_globs_and_row_ids(corpus):
    units = plan_units([str(corpus)])
    assert [u.kind for u in units] == ["jsonl", "text", "parquet", "parquet", "parquet", "jsonl"]
    assert [u.first_row for u in units if u.kind == "parquet"] == [0, 10, 20]
    assert plan_units([str(corpus / "*.parquet")]) == units[2:5]
    columns = Columns(("title", "abstract"), "pmid", ("title",))
    rows = [r for u in units[2:5] for r in read_unit(u, columns)]
    assert [r.id for r in rows] == [f"p{i}" for i in range(70, 100)]
    assert rows[0].text.startswith("Case 70\n\n") and rows[0].copied == {"title": "Case 70"}
    with pytest.raises(SourceError, match="no such file"):
        plan_units([str(corpus / "missing.jsonl")])


def test_a_datasets_folder_is_streamed_by_shard(tmp_path):
    folder = tmp_path / "hub_like"
    (folder / "data").mkdir(parents=True)
    for k in range(2):
        rows = [{"pmid": f"x{k}-{i}", "abstract": SENTENCES[i % 5]} for i in range(6)]
        pq.write_table(pa.Table.from_pylist(rows), folder / "data" / f"train-0000{k}-of-00002.parquet")
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*.parquet\n---\n"
    )
    units = plan_units([str(folder)])
    assert [(u.kind, u.start) for u in units] == [("dataset", 0), ("dataset", 1)]
    rows = [r for u in units for r in read_unit(u, Columns(("abstract",), "pmid"))]
    assert sorted(r.id for r in rows) == sorted(f"x{k}-{i}" for k in range(2) for i in range(6))
    assert all(r.error is None and r.text for r in rows)


def test_pubmed_xml_reads_id_title_and_abstract(tmp_path):
    path = tmp_path / "pubmed26n0001.xml.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(
            '<?xml version="1.0"?><PubmedArticleSet>'
            '<PubmedArticle><MedlineCitation><PMID Version="1">101</PMID><Article>'
            "<ArticleTitle>Hepatotoxicity of <i>methotrexate</i>.</ArticleTitle><Abstract>"
            '<AbstractText Label="BACKGROUND">Methotrexate is used.</AbstractText>'
            '<AbstractText Label="RESULTS">Two patients developed hepatitis.</AbstractText>'
            "</Abstract></Article></MedlineCitation></PubmedArticle>"
            "<PubmedArticle><MedlineCitation><PMID>102</PMID><Article><ArticleTitle>No abstract.</ArticleTitle>"
            "</Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"
        )
    assert list(pubmed_records(str(path), True)) == [
        {
            "pmid": "101",
            "title": "Hepatotoxicity of methotrexate.",
            "abstract": "BACKGROUND: Methotrexate is used. RESULTS: Two patients developed hepatitis.",
        },
        {"pmid": "102", "title": "No abstract.", "abstract": ""},
    ]
    (unit,) = plan_units([str(path)])
    rows = list(read_unit(unit, Columns()))
    assert [r.id for r in rows] == ["101", "102"] and rows[1].text == "No abstract."
    broken = tmp_path / "broken.xml"
    broken.write_text("<PubmedArticleSet><PubmedArticle><MedlineCitation>\n<PMID>1</PMID></Oops>")
    with pytest.raises(SourceError, match=r"broken\.xml:2:\d+: broken XML"):
        list(read_unit(plan_units([str(broken)])[0], Columns()))


# ----------------------------------------------------------------------------------------------------
# the job


def test_bulk_equals_the_pipeline_and_a_rerun_does_nothing(model_dir, corpus, tmp_path, capsys):
    out = tmp_path / "out2"
    job = (
        [corpus / "a.jsonl", corpus / "c.parquet", corpus / "d.jsonl.gz"],
        out,
        "--id-column",
        "pmid",
        "--copy-columns",
        "title",
    )
    assert bulk(model_dir, *job) == 0
    rows = read_rows(out)
    assert len(rows) == 90 and len({r["id"] for r in rows}) == 90 and rows[0]["title"].startswith("Case")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["totals"]["documents"] == 90
    assert manifest["model"]["sha256"] and manifest["settings"]["chunk_size"] == 7
    # the same documents through the plain pipeline: the same entities and relations
    extract = pipeline("ade-extraction", model=str(model_dir), pipeline_class=AdeExtractionPipeline)
    texts = {r["id"]: r for r in rows}
    source = [json.loads(line) for line in (corpus / "a.jsonl").read_text().splitlines()]
    for doc, expected in zip(source, extract([d["abstract"] for d in source], batch_size=4)):
        got = texts[doc["pmid"]]
        assert [(e["type"], e["start"], e["end"]) for e in got["entities"]] == [
            (e["type"], e["start"], e["end"]) for e in expected["entities"]
        ]
        assert len(got["relations"]) == len(expected["relations"])
        for rel in got["relations"]:
            assert doc["abstract"][rel["sentence_start"] : rel["sentence_end"]] == rel["sentence"]
            assert rel["sentence_start"] <= rel["head"]["start"] < rel["sentence_end"]
    assert sum(len(r["relations"]) for r in rows) > 0
    # a finished OUT: nothing to do, nothing rewritten
    stamps = {p: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    capsys.readouterr()
    assert bulk(model_dir, *job) == 0
    assert "finished" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    # a job written before --dtype existed (no dtype in its manifest) ran in float32: still the same job
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["settings"]["dtype"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert bulk(model_dir, *job) == 0 and "finished" in capsys.readouterr().out
    # other settings refuse; --overwrite starts afresh
    assert bulk(model_dir, [corpus / "a.jsonl"], out, "--id-column", "pmid") == 2
    assert "other inputs" in capsys.readouterr().err
    assert bulk(model_dir, [corpus / "a.jsonl"], out, "--id-column", "pmid", "--overwrite") == 0
    assert len(read_rows(out)) == 40
    # another dtype is another setting (scores differ); bfloat16 runs (a GPU's choice) and finds entities too
    assert bulk(model_dir, [corpus / "a.jsonl"], out, "--id-column", "pmid", "--dtype", "bfloat16") == 2
    assert "dtype: 'float32' there, 'bfloat16' now" in capsys.readouterr().err
    half = tmp_path / "bf16"
    assert bulk(model_dir, [corpus / "a.jsonl"], half, "--id-column", "pmid", "--dtype", "bfloat16") == 0
    assert json.loads((half / "manifest.json").read_text())["settings"]["dtype"] == "bfloat16"
    assert len(read_rows(half)) == 40 and sum(len(r["entities"]) for r in read_rows(half)) > 0


def test_bad_rows_are_reported_and_the_run_goes_on(model_dir, tmp_path):
    source = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"id": "ok1", "abstract": SENTENCES[0]}),
        json.dumps({"id": "empty", "abstract": "   "}),
        json.dumps({"id": "missing", "title": "no abstract"}),
        json.dumps({"id": "number", "abstract": 42}),
        "{not json",
        json.dumps({"id": "long", "abstract": "word " * 400}),
        json.dumps({"id": "ok1", "abstract": SENTENCES[1]}),
    ]
    source.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "bytes", "abstract": "caf\xe9"}\n')
    out = tmp_path / "out"
    assert bulk(model_dir, [source], out, "--id-column", "id", "--max-chars", "1000") == 0
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    reasons = {e["id"]: e["reason"] for e in errors}
    assert "no text" in reasons["empty"] and "no text" in reasons["missing"]
    assert "int, not text" in reasons["number"] and "over --max-chars" in reasons["long"]
    assert "not valid JSON" in reasons[f"{source}:4"] and "not UTF-8" in reasons[f"{source}:7"]
    assert "duplicated id" in reasons["ok1"]
    assert all(e["file"] and "reason" in e for e in errors)
    assert json.loads((out / "manifest.json").read_text())["totals"]["errors"] == len(errors) == 7
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    assert bulk(model_dir, [corrupt], tmp_path / "out3") == 2


# ----------------------------------------------------------------------------------------------------
# several processes, and a run killed half-way


def launch(args, processes=1, **kwargs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(
        OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES=""
    )
    bin_dir = Path(sys.executable).parent
    command = (
        [sys.executable]
        if processes == 1
        else [str(bin_dir / "torchrun"), "--standalone", "--nproc_per_node", str(processes)]
    )
    return subprocess.Popen(
        [*command, str(REPO / "predict.py"), *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_two_processes_and_a_killed_run_give_the_rows_of_one_run(model_dir, corpus, tmp_path):
    args = [*sorted(corpus.iterdir()), "--model", model_dir, "--text-column", "abstract", "--chunk-size", "5"]
    one = launch([*args, "--output-dir", tmp_path / "one"])
    two = launch([*args, "--output-dir", tmp_path / "two"], processes=2)
    for proc in (one, two):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    expected = comparable(read_rows(tmp_path / "one"))
    assert len(expected) == 120 and comparable(read_rows(tmp_path / "two")) == expected
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["num_processes_last_run"] == 2

    killed = launch([*args, "--output-dir", tmp_path / "killed"])
    chunks = tmp_path / "killed" / "chunks"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(chunks.glob("*-*.json")) if chunks.is_dir() else []) < 3:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert (
        json.loads((tmp_path / "killed" / "manifest.json").read_text())["status"] == "running"
    )  # killed half-way
    again = launch([*args, "--output-dir", tmp_path / "killed"])
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    rows = read_rows(tmp_path / "killed")
    assert comparable(rows) == expected and len({r["id"] for r in rows}) == len(rows)
    assert json.loads((tmp_path / "killed" / "manifest.json").read_text())["status"] == "finished"

    # Ctrl-C: the current chunk is finished, then the command that continues is printed
    stopped = launch([*args, "--output-dir", tmp_path / "stopped"])
    chunks = tmp_path / "stopped" / "chunks"
    while time.time() < deadline and len(list(chunks.glob("*-*.json")) if chunks.is_dir() else []) < 2:
        time.sleep(0.01)
    stopped.send_signal(signal.SIGINT)
    _, err = stopped.communicate(timeout=600)
    assert stopped.returncode == 130 and "run the same command to continue" in err, err[-2000:]
    again = launch([*args, "--output-dir", tmp_path / "stopped"])
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert comparable(read_rows(tmp_path / "stopped")) == expected


# ----------------------------------------------------------------------------------------------------
# signals


def relation(drug, event, start, sentence="s", score=0.5):
    return {
        "type": "ADE",
        "head": {"type": "Adverse-Effect", "text": event, "start": start, "end": start + 1, "score": 1.0},
        "tail": {"type": "Drug", "text": drug, "start": start + 2, "end": start + 3, "score": 1.0},
        "score": score,
        "sentence_start": start,
        "sentence_end": start + 5,
        "sentence": sentence,
    }


def test_signals_count_pairs_per_sentence_and_document(tmp_path):
    rows = [
        # two mentions of one pair in one sentence count once; "Rash " and "rash" are one name
        {
            "id": "d1",
            "relations": [
                relation("Methotrexate", "Rash ", 0, "MTX rash.", 0.9),
                relation("methotrexate", "rash", 0, score=0.7),
            ],
        },
        {"id": "d1", "relations": []},
        {
            "id": "d2",
            "relations": [relation("MTX", "rash", 10, "MTX again."), relation("MTX", "hepatitis", 30)],
        },
        {"id": "d3", "relations": [relation("aspirin", "ulcer", 0)]},
    ]
    synonyms = tmp_path / "syn.tsv"
    synonyms.write_text("# drugs\nMTX\tmethotrexate\n")
    found = {(s.drug, s.event): s for s in aggregate(rows, read_synonyms(synonyms))}
    rash = found[("methotrexate", "rash")]
    assert (len(rash.places), len(rash.documents), rash.n_relations) == (2, 2, 3)
    assert rash.score_sum / rash.n_relations == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    assert [e["id"] for e in rash.examples] == ["d1", "d2"]
    assert (len(found[("methotrexate", "hepatitis")].places), len(found[("aspirin", "ulcer")].documents)) == (
        1,
        1,
    )
    assert list(found)[0] == ("methotrexate", "rash")  # most reported first
    assert normalise("  Ｒash\u00a0 Score ") == "rash score"

    out = tmp_path / "job"
    (out / "parts").mkdir(parents=True)
    schema = None
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / "parts" / "part-000000-00000.parquet")
    assert predict.main(["signals", str(out), "--synonyms", str(synonyms)]) == 0
    table = pq.read_table(out / "signals.parquet").to_pylist()
    assert (table[0]["drug"], table[0]["event"], table[0]["n_sentences"], table[0]["n_documents"]) == (
        "methotrexate",
        "rash",
        2,
        2,
    )
    assert (
        "methotrexate" in (out / "signals.csv").read_text() and "<table" in (out / "signals.html").read_text()
    )
    assert predict.main(["signals", str(tmp_path / "nothing")]) == 2


def test_signals_page_sorts_filters_and_charts_in_chromium(tmp_path, chromium):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    rows = [
        {"id": f"d{i}", "relations": [relation(drug, event, 0, f"{drug} and {event}.")]}
        for i, (drug, event) in enumerate(
            [("methotrexate", "rash")] * 3 + [("methotrexate", "hepatitis")] * 2 + [("aspirin", "ulcer")] * 4
        )
    ]
    out = tmp_path / "job"
    (out / "parts").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "parts" / "part-000000-00000.parquet")
    write_signals(out)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto((out / "signals.html").resolve().as_uri())
        first_column = lambda: page.locator("#signals tbody tr td:nth-child(2)").all_text_contents()  # noqa: E731
        assert first_column() == ["ulcer", "rash", "hepatitis"]  # most sentences first
        page.click("th[data-key=event]")  # sort by event, A-Z
        assert first_column() == ["hepatitis", "rash", "ulcer"]
        page.click("th[data-key=event]")
        assert first_column() == ["ulcer", "rash", "hepatitis"]
        page.fill("#filter", "methotrexate")
        assert first_column() == ["rash", "hepatitis"]
        page.select_option("#drug", "methotrexate")
        labels = page.locator("#chart .label").all_text_contents()
        widths = [page.locator("#chart .bar").nth(i).evaluate("e => e.offsetWidth") for i in range(2)]
        assert labels == ["rash", "hepatitis"] and widths[0] > widths[1] > 0
        browser.close()
    assert not errors


def test_processes_share_the_gpus_round_robin():
    from modeling_ade.bulk_predict import process_device

    assert process_device(0, 2, 1).type == "cpu"
    assert [str(process_device(2, 2, i)) for i in range(2)] == ["cuda:0", "cuda:1"]  # one per GPU (NCCL)
    assert [process_device(1, 8, i).index for i in range(8)] == [0] * 8  # 8 processes, one GPU
    assert [process_device(2, 5, i).index for i in range(5)] == [0, 1, 0, 1, 0]
