"""predict.py: plain text / JSONL in, JSONL + HTML out, clear errors for bad input."""

import json

import pytest

import predict


def test_plain_text_keeps_one_line_per_document(model_dir, tmp_path):
    source = tmp_path / "notes.txt"
    lines = ["Intravenous azithromycin-induced ototoxicity.", "", "Lithium <toxicity> & rash"]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out, page = tmp_path / "out.jsonl", tmp_path / "out.html"
    assert (
        predict.main([str(source), "--model", str(model_dir), "--output", str(out), "--html", str(page)]) == 0
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == lines
    assert rows[1]["entities"] == []
    for row in rows:
        for e in row["entities"]:
            assert row["text"][e["start"] : e["end"]] == e["text"]
    page_text = page.read_text(encoding="utf-8")
    assert "<toxicity>" not in page_text, "text must be HTML-escaped"
    assert "&lt;" in page_text and "&amp;" in page_text
    assert page_text.count('class="doc"') == 3 and "→" in page_text
    first = rows[0]["relations"][0]
    link = f"{first['drug']['text']} <small>(Drug)</small> → {first['adverse_effect']['text']}"
    assert link in page_text, "relations read drug → adverse effect"


def test_jsonl_with_a_text_field_copies_other_fields(model_dir, tmp_path):
    source = tmp_path / "reports.jsonl"
    source.write_text(json.dumps({"id": 7, "abstract": "Aspirin caused rash."}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert (
        predict.main(
            [str(source), "--model", str(model_dir), "--output", str(out), "--text-field", "abstract"]
        )
        == 0
    )
    row = json.loads(out.read_text(encoding="utf-8"))
    assert row["id"] == 7 and row["abstract"] == "Aspirin caused rash." and "entities" in row
    assert "text" not in row


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"text": "ok"}\n{not json}\n', "reports.jsonl:2: not valid JSON"),
        ('{"body": "x"}\n', "reports.jsonl:1: field 'text' missing"),
        ('{"text": 3}\n', "reports.jsonl:1: field 'text' is not a string"),
        ('{"text": "x", "entities": []}\n', "reports.jsonl:1: field 'entities' would be overwritten"),
    ],
)
def test_bad_jsonl_names_file_line_and_field(model_dir, tmp_path, capsys, content, message):
    source = tmp_path / "reports.jsonl"
    source.write_text(content, encoding="utf-8")
    assert predict.main([str(source), "--model", str(model_dir), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert message in capsys.readouterr().err


def test_missing_input_file(model_dir, tmp_path, capsys):
    assert (
        predict.main([str(tmp_path / "nope.txt"), "--model", str(model_dir), "--output", str(tmp_path / "o")])
        == 2
    )
    assert "nope.txt: no such file" in capsys.readouterr().err


def test_output_equal_to_input_is_refused_and_the_input_kept(model_dir, tmp_path, capsys):
    source = tmp_path / "notes.txt"
    source.write_text("Aspirin caused rash.\n", encoding="utf-8")
    for flag in ("--output", "--html"):
        args = [
            str(source),
            "--model",
            str(model_dir),
            "--output",
            str(tmp_path / "o.jsonl"),
            flag,
            str(source),
        ]
        assert predict.main(args) == 2
        assert "is the input file" in capsys.readouterr().err
        assert source.read_text(encoding="utf-8") == "Aspirin caused rash.\n"


def test_empty_input_gives_an_empty_output(model_dir, tmp_path, capsys):
    source = tmp_path / "empty.jsonl"
    source.write_text("", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    assert predict.main([str(source), "--model", str(model_dir), "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == ""
    assert "no document" in capsys.readouterr().err


def test_non_utf8_input_names_file_line_and_byte(model_dir, tmp_path, capsys):
    source = tmp_path / "latin1.txt"
    source.write_bytes(b"fine line\nna\xefve patient\n")
    assert predict.main([str(source), "--model", str(model_dir), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert (
        "latin1.txt:2: not UTF-8" in err and "byte 0xef at byte offset 12" in err and "Traceback" not in err
    )


@pytest.mark.parametrize("broken", ["missing", "no_config", "bad_config"])
def test_model_folder_problems_are_named(tmp_path, capsys, broken):
    source = tmp_path / "notes.txt"
    source.write_text("Aspirin caused rash.\n", encoding="utf-8")
    model = tmp_path / "runs" / "model"
    if broken != "missing":
        model.mkdir(parents=True)
    if broken == "bad_config":
        (model / "config.json").write_text("{not json", encoding="utf-8")
    assert predict.main([str(source), "--model", str(model), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    expected = {
        "missing": "no such model folder",
        "no_config": "no config.json",
        "bad_config": "not valid JSON",
    }
    assert expected[broken] in err and str(model) in err


def test_batch_size_must_be_positive(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        predict.main(
            [str(tmp_path / "x.txt"), "--model", str(model_dir), "--output", "o", "--batch-size", "0"]
        )
    assert "--batch-size" in capsys.readouterr().err
