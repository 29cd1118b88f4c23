"""Chinese HealthNER builder: counts against SOURCE.md, tag repair, the train/dev split, custom files, export."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter

import datasets
import pytest

from datasets_scripts import chinese_healthner as chn
from datasets_scripts import healthner_files as hf
from datasets_scripts.common import DataDirError, repair_bio

SOURCE_SIZES = {"healthner": 2531, "multiner_ft": 2035, "multiner_sm": 2208, "multiner_wa": 2381}
# SOURCE.md; FT: the 4 orphan I- tags become B- (SYMP, INST +1 each, TIME +2), hence 10,849 not 10,845.
SOURCE_ENTITIES = {
    "healthner": dict(
        BODY=3171, SYMP=1481, INST=42, EXAM=404, CHEM=744, DISE=1005, DRUG=79, SUPP=122, TREAT=203, TIME=54
    ),
    "multiner_ft": dict(
        BODY=2461, SYMP=2636, INST=191, EXAM=223, CHEM=1124, DISE=2300, DRUG=932, SUPP=47, TREAT=512, TIME=423
    ),
    "multiner_sm": dict(
        BODY=2572, SYMP=2280, INST=41, EXAM=511, CHEM=321, DISE=1322, DRUG=746, SUPP=92, TREAT=363, TIME=44
    ),
    "multiner_wa": dict(
        BODY=3843, SYMP=1890, INST=149, EXAM=180, CHEM=748, DISE=1970, DRUG=451, SUPP=56, TREAT=308, TIME=166
    ),
}
SOURCE_CHARS = {"healthner": 121284, "multiner_ft": 149276, "multiner_sm": 98317, "multiner_wa": 92498}
# sha256 of the sorted dev ids joined by "\n": pins the split across runs, machines and Python versions.
DEV_IDS_SHA256 = "a5ca072eb89059c1c3dfb60235c4e9a6660a7324c8f293947776c117653772e7"


@pytest.fixture(scope="module")
def built(healthner_data_dir):
    """Every corpus config, built once for the module."""
    names = [*SOURCE_SIZES, "train", "dev"]
    return {name: chn.load_healthner(name, data_dir=healthner_data_dir) for name in names}


def _is_valid_bio(tags: list[str]) -> bool:
    prev = "O"
    for tag in tags:
        if tag not in chn.BIO_LABELS:
            return False
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            return False
        prev = tag
    return True


# ------------------------------------------------------------------------------------------ labels


def test_labels_order():
    assert chn.ENTITY_TYPES == (
        "BODY",
        "SYMP",
        "INST",
        "EXAM",
        "CHEM",
        "DISE",
        "DRUG",
        "SUPP",
        "TREAT",
        "TIME",
    )
    assert len(chn.BIO_LABELS) == 21
    assert chn.BIO_LABELS[:5] == ("O", "B-BODY", "I-BODY", "B-SYMP", "I-SYMP")
    assert chn.FEATURES["ner_tags"].feature.names == list(chn.BIO_LABELS)


# ------------------------------------------------------------------------------------------ repair_bio


@pytest.mark.parametrize(
    "tags, expected, counts",
    [
        (["b-body", "i-body", "o"], ["B-BODY", "I-BODY", "O"], {"lowercase": 3}),
        (["O-BODY", "O"], ["O", "O"], {"invalid_tag": 1}),
        (["E-BODY", "BODY", "B-"], ["O", "O", "O"], {"invalid_tag": 3}),
        (["B-FOO", "I-FOO"], ["O", "O"], {"unknown_type": 2}),
        (["O", "I-DISE", "I-DISE"], ["O", "B-DISE", "I-DISE"], {"orphan_inside": 1}),
        (["I-TIME"], ["B-TIME"], {"orphan_inside": 1}),
        (["B-BODY", "I-SYMP"], ["B-BODY", "B-SYMP"], {"orphan_inside": 1}),
    ],
)
def test_repair_bio_each_kind(tags, expected, counts):
    assert repair_bio(tags, chn.ENTITY_TYPES) == (expected, Counter(counts))


def test_repair_bio_combined_and_clean():
    fixed, counts = repair_bio(["i-drug", "O-X", "I-DRUG", "B-XYZ", "I-CHEM"], chn.ENTITY_TYPES)
    assert fixed == ["B-DRUG", "O", "B-DRUG", "O", "B-CHEM"]
    assert counts == Counter(lowercase=1, invalid_tag=1, unknown_type=1, orphan_inside=3)
    clean = ["O", "B-BODY", "I-BODY", "B-TIME"]
    assert repair_bio(clean, chn.ENTITY_TYPES) == (clean, Counter())


# ------------------------------------------------------------------------------------------ real data


@pytest.mark.data
@pytest.mark.parametrize("name", list(SOURCE_SIZES))
def test_source_counts(built, name):
    dsd = built[name]
    assert list(dsd) == ["test"]
    ds = dsd["test"]
    stats = chn.compute_stats(dsd)
    assert stats["sentences"] == len(ds) == SOURCE_SIZES[name]
    assert stats["characters"] == SOURCE_CHARS[name]
    assert stats["per_type"] == SOURCE_ENTITIES[name]
    assert len(set(ds["id"])) == len(ds)
    assert set(ds["source"]) == {name}
    names = ds.features["ner_tags"].feature.names
    for ex in ds:
        assert "".join(ex["tokens"]) == ex["text"]
        assert all(len(t) == 1 for t in ex["tokens"])
        assert len(ex["tokens"]) == len(ex["ner_tags"])
        assert _is_valid_bio([names[t] for t in ex["ner_tags"]])


@pytest.mark.data
def test_healthner_details(built):
    ds = built["healthner"]["test"]
    assert chn.compute_stats(built["healthner"])["entities"] == 7305
    assert Counter(ds["genre"]) == {"ft": 1690, "sm": 841}
    assert ds[0]["id"] == "healthner-00000"
    assert ds[0]["text"].startswith("雞蛋含有多種維生素")
    # record 01969 holds a U+FEFF inside its sentence: it is kept as a character
    assert ds[1969]["id"] == "healthner-01969" and ds[1969]["tokens"][0] == "\ufeff"


@pytest.mark.data
def test_multiner_genres(built):
    for name, genre in [("multiner_ft", "ft"), ("multiner_sm", "sm"), ("multiner_wa", "wa")]:
        assert set(built[name]["test"]["genre"]) == {genre}
    assert built["multiner_ft"]["test"][0]["id"] == "multiner_ft-00000"


@pytest.mark.data
def test_ft_orphan_inside_repaired_and_counted(healthner_data_dir, caplog):
    path = healthner_data_dir / chn.SOURCE_FILES["multiner_ft"]
    raw = list(hf.read_char_tag_file(path))
    orphans = [
        (s.line_no + i, s.tags[i])
        for s in raw
        for i in range(len(s.tags))
        if repair_bio(s.tags, chn.ENTITY_TYPES)[1]
    ]
    assert sum(repair_bio(s.tags, chn.ENTITY_TYPES)[1]["orphan_inside"] for s in raw) == 4
    hf.REPAIRS_REPORTED.clear()  # other tests may have read the file in this process
    with caplog.at_level(logging.WARNING, logger=chn.__name__):
        examples = hf.read_examples(path, "multiner_ft", "ft")
        again = hf.read_examples(path, "multiner_ft", "ft")  # read for another config: not said twice
    assert len(examples) == 2035 and orphans and again == examples
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert "orphan_inside: 4" in msg and "lowercase: 0" in msg and "in 4 of 2035 sentences" in msg
    assert "4477, 5170, 119918, 120000" in msg
    assert all(_is_valid_bio(ex["ner_tags"]) for ex in examples)


@pytest.mark.data
def test_other_sources_are_clean(healthner_data_dir, caplog):
    with caplog.at_level(logging.WARNING, logger=chn.__name__):
        for name in ("healthner", "multiner_sm", "multiner_wa"):
            hf.read_examples(healthner_data_dir / chn.SOURCE_FILES[name], name)
    assert not caplog.records


# ------------------------------------------------------------------------------------------ train / dev


@pytest.mark.data
def test_train_dev_split(built):
    assert list(built["train"]) == ["train"] and list(built["dev"]) == ["validation"]
    train, dev = built["train"]["train"], built["dev"]["validation"]
    assert len(train) + len(dev) == 9155
    assert (len(train), len(dev)) == (8239, 916)
    assert not set(train["id"]) & set(dev["id"])
    assert not set(train["text"]) & set(dev["text"])  # identical texts never straddle the split
    union = set(train["id"]) | set(dev["id"])
    assert union == {i for name in SOURCE_SIZES for i in built[name]["test"]["id"]}
    dev_by_source = Counter(dev["source"])
    for name, n in SOURCE_SIZES.items():
        assert dev_by_source[name] == round(n / 10 + 1e-9)  # 253, 204, 221, 238
        assert 0.09 < dev_by_source[name] / n < 0.11
    total = chn.compute_stats(built["train"])["entities"] + chn.compute_stats(built["dev"])["entities"]
    assert total == 36203 + 4  # SOURCE.md B- tags + the 4 repaired FT orphans


@pytest.mark.data
def test_split_is_deterministic(built, healthner_data_dir):
    dev_ids = sorted(built["dev"]["validation"]["id"])
    assert hashlib.sha256("\n".join(dev_ids).encode()).hexdigest() == DEV_IDS_SHA256
    again = chn.load_healthner("train", data_dir=healthner_data_dir)["train"]
    assert again["id"] == built["train"]["train"]["id"]
    assert again["ner_tags"] == built["train"]["train"]["ner_tags"]


def test_dev_ids_groups_duplicates_and_stratifies():
    examples = [{"id": f"a-{i:03d}", "source": "a", "text": f"t{i}"} for i in range(50)]
    examples += [{"id": "a-dup1", "source": "a", "text": "t0"}, {"id": "a-dup2", "source": "a", "text": "t0"}]
    examples += [{"id": f"b-{i:03d}", "source": "b", "text": f"u{i}"} for i in range(25)]
    chosen = chn.dev_ids(examples)
    assert chosen == chn.dev_ids(list(reversed(examples)))  # input order does not matter
    assert len({"a-000", "a-dup1", "a-dup2"} & chosen) in (0, 3)
    assert 5 <= sum(i.startswith("a-") for i in chosen) <= 7  # 10 % of 52 = 5, +2 if the triple came last
    assert sum(i.startswith("b-") for i in chosen) == 3  # 2.5 rounds up
    assert chn.dev_ids(examples, seed=1) != chosen


# ------------------------------------------------------------------------------------------ readers


def test_read_char_tag_file_crlf_bom(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes("\ufeff頭 B-BODY\r\n痛 I-BODY\r\n\r\n\r\n吃 O\r\n  O\r\n藥 B-DRUG \r\n".encode())
    sents = list(hf.read_char_tag_file(path))
    assert [(s.line_no, s.chars, s.tags) for s in sents] == [
        (1, ["頭", "痛"], ["B-BODY", "I-BODY"]),
        (5, ["吃", " ", "藥"], ["O", "O", "B-DRUG"]),
    ]


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("頭B-BODY", "separated by a space"),
        ("頭\tB-BODY", "separated by a space"),
        ("頭 B-BODY extra", "more"),
        ("頭痛 B-BODY", "one character"),
        (" O", "one character"),
    ],
)
def test_char_tag_errors_name_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "bad.txt"
    path.write_text(f"吃 O\n\n藥 O\n{bad_line}\n", encoding="utf-8")
    with pytest.raises(chn.HealthNerFormatError, match=message) as err:
        list(hf.read_char_tag_file(path))
    assert str(err.value).startswith(f"{path}:4: ")
    assert err.value.line_no == 4 and err.value.path == str(path)


@pytest.mark.parametrize(
    "bad_record, message",
    [
        ('{"character": ["頭"], "character_label": ["O"', "invalid JSON"),
        ('["頭"]', "JSON object"),
        ('{"character": ["頭"]}', "missing key 'character_label'"),
        ('{"words": ["頭"]}', "missing key 'tokens'"),
        ('{"character": ["頭", "痛"], "character_label": ["O"]}', "2 character but 1 character_label"),
        ('{"tokens": ["頭痛"], "ner_tags": ["O"]}', "single characters"),
        ('{"tokens": [], "ner_tags": []}', "empty sentence"),
        ('{"tokens": ["頭"], "ner_tags": [99]}', "label id 99"),
        ('{"sentence": "頭", "character": ["痛"], "character_label": ["O"]}', "'sentence' differs"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, bad_record, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"tokens": ["吃"], "ner_tags": ["O"]}\n\n' + bad_record + "\n", encoding="utf-8")
    with pytest.raises(chn.HealthNerFormatError, match=message) as err:
        list(hf.read_healthner_jsonl(path))
    assert str(err.value).startswith(f"{path}:3: ")


# ------------------------------------------------------------------------------------------ custom config


def test_custom_config_both_formats(tmp_path, caplog):
    healthner_style = tmp_path / "mine.json"
    records = [
        {
            "id": "a1",
            "genre": "sm",
            "sentence": "頭痛",
            "character": ["頭", "痛"],
            "character_label": ["B-SYMP", "I-SYMP"],
        },
        {
            "id": "a2",
            "genre": "sm",
            "sentence": "吃藥",
            "character": ["吃", "藥"],
            "character_label": ["O", "i-drug"],
        },
    ]
    healthner_style.write_bytes(
        ("\ufeff" + "\r\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\r\n").encode()
    )
    generic = tmp_path / "generic.jsonl"
    generic.write_text(json.dumps({"tokens": ["發", "燒"], "ner_tags": [3, 4]}) + "\n", encoding="utf-8")
    char_tag = tmp_path / "dev.conll"
    char_tag.write_bytes("\ufeff手 B-BODY\r\n腳 O-BODY\r\n\r\n痛 B-SYMP\r\n".encode())

    with caplog.at_level(logging.WARNING, logger=chn.__name__):
        dsd = chn.load_healthner(
            "custom", data_files={"train": [healthner_style, generic], "validation": [char_tag]}
        )
    assert set(dsd) == {"train", "validation"}
    train, dev = dsd["train"], dsd["validation"]
    labels = train.features["ner_tags"].feature
    assert train["id"] == ["mine.json-a1", "mine.json-a2", "generic.jsonl-00000"]
    assert train["source"] == ["mine.json", "mine.json", "generic.jsonl"]
    assert train["genre"] == ["sm", "sm", ""]
    assert train["text"] == ["頭痛", "吃藥", "發燒"]
    assert [labels.int2str(t) for t in train["ner_tags"]] == [
        ["B-SYMP", "I-SYMP"],
        ["O", "B-DRUG"],
        ["B-SYMP", "I-SYMP"],
    ]
    assert dev["id"] == ["dev.conll-00000", "dev.conll-00001"]
    assert dev["tokens"] == [["手", "腳"], ["痛"]]
    assert [labels.int2str(t) for t in dev["ner_tags"]] == [["B-BODY", "O"], ["B-SYMP"]]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert any("mine.json" in m and "lowercase: 1" in m and "orphan_inside: 1" in m for m in messages)
    assert any("dev.conll" in m and "invalid_tag: 1" in m and "at line(s) 2;" in m for m in messages)


def test_custom_config_requires_data_files_and_others_refuse_them(tmp_path):
    with pytest.raises(ValueError, match="needs data_files"):
        chn.load_healthner("custom")
    f = tmp_path / "x.txt"
    f.write_text("頭 O\n", encoding="utf-8")
    with pytest.raises(ValueError, match="only for 'custom'"):
        chn.load_healthner("healthner", data_files={"test": [f]})


def test_custom_config_bad_file_raises(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("頭 O\n痛 B-SYMP I\n", encoding="utf-8")
    with pytest.raises(chn.HealthNerFormatError, match=r"x\.txt:2: "):
        chn.load_healthner("custom", data_files={"train": [f]})


# ------------------------------------------------------------------------------------------ data dir


def test_missing_data_dir_lists_expected_files(tmp_path, monkeypatch):
    monkeypatch.delenv(chn.ENV_VAR, raising=False)
    with pytest.raises(DataDirError) as err:
        chn.resolve_corpus_dir(tmp_path / "nowhere")
    for rel in chn.SOURCE_FILES.values():
        assert rel in str(err.value)
    (tmp_path / "healthner_corpus").mkdir()
    (tmp_path / chn.HEALTHNER_FILE).write_text("", encoding="utf-8")
    monkeypatch.setenv(chn.ENV_VAR, str(tmp_path))
    with pytest.raises(DataDirError, match="lacks: rocling2023_multinerhealth/MultiNER-Health_truth_FT.txt"):
        chn.load_healthner("healthner")


# ------------------------------------------------------------------------------------------ export + CLI


@pytest.mark.data
def test_export_loads_offline(healthner_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "hub"
    assert chn.main(["export", str(out), "--data-dir", str(healthner_data_dir)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"README.md", "train", "dev", *SOURCE_SIZES}
    train = datasets.load_dataset(str(out), "train")
    dev = datasets.load_dataset(str(out), "dev")
    assert list(train) == ["train"] and list(dev) == ["validation"]
    assert len(train["train"]) + len(dev["validation"]) == 9155
    feature = train["train"].features["ner_tags"]
    assert isinstance(feature, datasets.List) and isinstance(feature.feature, datasets.ClassLabel)
    assert feature.feature.names == list(chn.BIO_LABELS)
    ft = datasets.load_dataset(str(out), "multiner_ft")["test"]
    assert len(ft) == 2035
    card = (out / "README.md").read_text(encoding="utf-8")
    for needle in [
        "NOT the official HealthNER protocol",
        "28,161",
        "a5eaca54376267cee7a015eb870f7f302517d813",
        "a1e05a61d79c0718ec22dbdca4167b9e6d336849",
        "Unknown — research use",
        "doi:10.1109/JBHI.2020.3048700",
        "| healthner | 2,531 | 121,284 | 7,305 | 3,171 |",
        "language:\n- zh",
        "default: true",
    ]:
        assert needle in card, needle


@pytest.mark.data
def test_stats_cli(healthner_data_dir, capsys):
    assert chn.main(["stats", "--data-dir", str(healthner_data_dir), "--configs", "multiner_sm"]) == 0
    out = capsys.readouterr().out
    assert "| config | sentences | characters | entities | BODY |" in out
    assert "| multiner_sm | 2,208 | 98,317 | 8,292 | 2,572 |" in out


def test_cli_help_documents_every_flag(capsys):
    for command in ("export", "stats"):
        with pytest.raises(SystemExit):
            chn.main([command, "--help"])
        text = capsys.readouterr().out
        assert "--data-dir" in text and "--configs" in text and "not the official" in text
    with pytest.raises(SystemExit):
        chn.main(["stats", "--configs", "custom"])


def test_format_detection_by_extension(tmp_path):
    assert hf.is_json_lines("a.json") and hf.is_json_lines("b.JSONL")
    assert not hf.is_json_lines("c.txt") and not hf.is_json_lines("d.conll") and not hf.is_json_lines("e")
    path = tmp_path / "no_extension"
    path.write_text('{"tokens": ["頭"], "ner_tags": ["B-BODY"]}\n', encoding="utf-8")
    assert [s.tags for s in hf.read_sentences(path, json_lines=True)] == [["B-BODY"]]
    with pytest.raises(chn.HealthNerFormatError, match="no_extension:1: "):
        list(hf.read_sentences(path))


def test_non_utf8_custom_file_names_file_line_and_byte(tmp_path):
    """#13: used to end in a 54-line DatasetGenerationError naming no file."""
    bad = tmp_path / "mine.txt"
    bad.write_bytes("頭 B-SYMP\n痛 I-SYMP\n\n".encode() + b"\xff O\n")
    from datasets_scripts.chinese_healthner import HealthNerFormatError, load_healthner

    with pytest.raises(HealthNerFormatError, match=r"mine.txt:4: not UTF-8 \(byte 0xff at byte offset 23"):
        load_healthner("custom", data_files={"train": [str(bad)]})
