"""Pins the ADE corpus builder: published counts, offsets, the SpERT folds, error messages, export."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import datasets
import pytest

from datasets_scripts import ade_card, ade_corpus
from datasets_scripts.ade_corpus import CONFIG_NAMES, ade_records, load_ade, resolve_corpus_dir
from datasets_scripts.ade_files import (
    ENTITY_TYPES,
    RELATION_TYPES,
    AdeFormatError,
    group_sentences,
    parse_negative_line,
    parse_relation_line,
    relation_example,
)
from datasets_scripts.ade_text import (
    align_tokens,
    char_span_to_token_span,
    count_overlapping_pairs,
    find_occurrences,
    infer_sentence_offset,
    is_whole_word,
    locate_mention,
    tokenize,
)
from datasets_scripts.common import DataDirError, rows_with_type_names, type_names

FOLDS = [f"fold_{k}" for k in range(10)]
GOOD_LINE = "10030778|Intravenous azithromycin-induced ototoxicity.|ototoxicity|43|54|azithromycin|22|34"
GOOD_SENTENCE_TOKENS = ["Intravenous", "azithromycin", "-", "induced", "ototoxicity", "."]


@pytest.fixture(autouse=True, scope="module")
def _quiet_progress():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


@pytest.fixture(scope="module")
def built(ade_data_dir, tmp_path_factory):
    """``built(name)`` -> rows of every split of config ``name``, built once per module."""
    cache_dir = tmp_path_factory.mktemp("ade_cache")
    rows: dict[str, dict[str, list[dict]]] = {}

    def get(name: str) -> dict[str, list[dict]]:
        if name not in rows:
            dsd = load_ade(name, ade_data_dir, cache_dir=cache_dir)
            rows[name] = {split: rows_with_type_names(ds) for split, ds in dsd.items()}
        return rows[name]

    return get


def _entity_keys(row: dict) -> list[tuple[int, int, str]]:
    return [(e["start"], e["end"], e["type"]) for e in row["entities"]]


def _relation_keys(row: dict) -> set:
    keys = _entity_keys(row)
    return {(keys[r["head"]], keys[r["tail"]], r["type"]) for r in row["relations"]}


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.data
def test_relations_config_counts(built):
    rows = built("relations")["train"]
    types = Counter(e["type"] for row in rows for e in row["entities"])
    assert len(rows) == 4272
    assert sum(len(row["relations"]) for row in rows) == 6821
    assert sum(types.values()) == 10839
    assert types == {"Drug": 5063, "Adverse-Effect": 5776}
    assert sum(count_overlapping_pairs(row["entities"]) for row in rows) == 120
    assert len({row["id"] for row in rows}) == 4272
    assert rows[0]["id"] == "10030778-0"
    assert rows[0]["tokens"] == GOOD_SENTENCE_TOKENS


@pytest.mark.data
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_entities_match_text_and_tokens(built, name):
    for split, rows in built(name).items():
        for row in rows:
            where = f"{name}/{split} {row['id']}"
            spans = align_tokens(row["tokens"], row["text"])
            keys = _entity_keys(row)
            assert keys == sorted(set(keys)), where
            for ent in row["entities"]:
                assert ent["type"] in ENTITY_TYPES, where
                assert row["text"][ent["start"] : ent["end"]] == ent["text"], where
                assert ent["text"] == ent["text"].strip(), where
                # the entity's tokens cover exactly its characters
                assert 0 <= ent["token_start"] < ent["token_end"] <= len(row["tokens"]), where
                assert spans[ent["token_start"]][0] == ent["start"], where
                assert spans[ent["token_end"] - 1][1] == ent["end"], where
            for rel in row["relations"]:
                assert rel["type"] in RELATION_TYPES, where
                assert row["entities"][rel["head"]]["type"] == "Adverse-Effect", where
                assert row["entities"][rel["tail"]]["type"] == "Drug", where


@pytest.mark.data
@pytest.mark.parametrize("name", FOLDS)
def test_fold_sizes_and_disjointness(built, name):
    splits = built(name)
    expected = (3843, 429) if name == "fold_9" else (3845, 427)
    assert (len(splits["train"]), len(splits["test"])) == expected
    train_ids = {row["id"] for row in splits["train"]}
    test_ids = {row["id"] for row in splits["test"]}
    assert not train_ids & test_ids
    assert train_ids | test_ids == {row["id"] for row in built("relations")["train"]}


@pytest.mark.data
def test_test_folds_partition_corpus_and_match_raw_annotations(built):
    relations = {row["id"]: row for row in built("relations")["train"]}
    test_ids: list[str] = []
    mismatches = []
    for name in FOLDS:
        for row in built(name)["test"]:
            test_ids.append(row["id"])
            raw = relations[row["id"]]
            if row["text"] != raw["text"] or set(_entity_keys(row)) != set(_entity_keys(raw)):
                mismatches.append((row["id"], "entities"))
            elif _relation_keys(row) != _relation_keys(raw):
                mismatches.append((row["id"], "relations"))
    assert len(test_ids) == len(set(test_ids)) == len(relations)
    assert not mismatches, f"{len(mismatches)} sentences differ between relations and folds: {mismatches[:5]}"
    relations_per_test_fold = [sum(len(r["relations"]) for r in built(n)["test"]) for n in FOLDS]
    assert relations_per_test_fold == [666, 724, 688, 657, 648, 732, 666, 704, 688, 648]


@pytest.mark.data
def test_negatives(built):
    rows = built("negatives")["train"]
    assert len(rows) == 16695
    assert all(not row["entities"] and not row["relations"] and row["tokens"] for row in rows)
    assert len({row["id"] for row in rows}) == 16695
    assert rows[0]["id"] == "6460590-neg-0"


@pytest.mark.data
def test_export_loads_offline(ade_data_dir, tmp_path):
    out = tmp_path / "export"
    rc = ade_corpus.main(
        ["export", str(out), "--data-dir", str(ade_data_dir), "--configs", "fold_0", "negatives"]
    )
    assert rc == 0
    dsd = datasets.load_dataset(str(out), "fold_0", cache_dir=str(tmp_path / "cache"))
    assert (dsd["train"].num_rows, dsd["test"].num_rows) == (3845, 427)
    assert dsd["train"].features == ade_corpus.FEATURES
    card = (out / "README.md").read_text()
    assert "head = the Adverse-Effect entity, tail = the Drug entity" in card
    assert "| fold_0 | test | 427 |" in card
    assert "gurulingappa2012development" in card and "eberts2020spert" in card
    assert ade_card.SOURCE_COMMIT_RAW in card and ade_card.SOURCE_COMMIT_SPLIT in card
    # a second export replaces its own card; a hand-written README is kept and the export refused (#13)
    args = ["export", str(out), "--data-dir", str(ade_data_dir), "--configs", "fold_0"]
    assert ade_corpus.main(args) == 0
    (out / "README.md").write_text("# my notes on this export\n", encoding="utf-8")
    assert ade_corpus.main(args) != 0
    assert (out / "README.md").read_text(encoding="utf-8") == "# my notes on this export\n"


@pytest.mark.data
def test_stats_cli(ade_data_dir, capsys):
    assert ade_corpus.main(["stats", "--data-dir", str(ade_data_dir)]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[2].split()
    assert first == ["relations", "train", "4,272", "5,063", "5,776", "6,821", "120"]
    assert "fold_9" in out and "16,695" in out


def test_cli_help_documents_every_flag():
    parser = ade_corpus.build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "export" in a.choices).choices
    for sub in subparsers.values():
        for action in sub._actions:
            assert action.help, f"{sub.prog}: {action.option_strings or action.dest} has no help"


# ---------------------------------------------------------------------------------------------- pure helpers


def test_find_occurrences_is_plain_and_overlapping():
    assert find_occurrences("aa", "aaa") == [0, 1]
    assert find_occurrences("5-FU (i.v.)", "x 5-FU (i.v.) and 5-FUxi.v.)") == [2]
    assert find_occurrences("[a-z]+", "abc") == []


def test_infer_sentence_offset_resolves_repeated_mentions():
    sentence = "heparin given; heparin caused HIT"
    # 'heparin' occurs twice; 'HIT' once at 30 -> s = 130 - 30 = 100, so heparin at 115 is index 15
    assert infer_sentence_offset([("HIT", 130), ("heparin", 115)], sentence) == 100
    # every mention occurs twice, but only one offset fits both
    sentence = "A causes B. A causes B again with A"
    assert infer_sentence_offset([("A", 1012), ("B", 1009)], sentence) == 1000
    # two offsets fit (1000 and 1012), or none: no single s
    assert infer_sentence_offset([("A", 1012), ("B", 1021)], sentence) is None
    assert infer_sentence_offset([("A", 1000), ("B", 1000)], sentence) is None


def test_locate_mention_uses_offset_then_whole_word():
    sentence = "insulin in insulin-treated patients"
    assert locate_mention("insulin", sentence, doc_begin=111, sentence_offset=100) == 11
    assert locate_mention("in", sentence) == 8  # first whole-word occurrence, not inside 'insulin'
    assert locate_mention("sul", sentence) == 2  # no whole-word occurrence: first occurrence
    assert is_whole_word(sentence, 0, 7) and not is_whole_word(sentence, 0, 2)
    with pytest.raises(ValueError, match="not at offset"):
        locate_mention("insulin", sentence, doc_begin=103, sentence_offset=100)
    with pytest.raises(ValueError, match="not in sentence"):
        locate_mention("ototoxicity", sentence)


def test_tokenize_splits_at_entity_boundaries():
    tokens, spans = tokenize("anti-TNFalpha therapy")
    assert tokens == ["anti", "-", "TNFalpha", "therapy"]
    tokens, spans = tokenize("anti-TNFalpha therapy", boundaries=[5, 8])
    assert tokens == ["anti", "-", "TNF", "alpha", "therapy"]
    assert char_span_to_token_span(spans, 5, 8) == (2, 3)
    assert char_span_to_token_span(spans, 0, 13) == (0, 4)


def test_align_tokens():
    text = "Intravenous  azithromycin-induced ototoxicity."
    spans = align_tokens(GOOD_SENTENCE_TOKENS, text)
    assert [text[s:e] for s, e in spans] == GOOD_SENTENCE_TOKENS
    with pytest.raises(ValueError, match="token 1 'azithromycine'"):
        align_tokens(["Intravenous", "azithromycine"], text)


def test_count_overlapping_pairs():
    ents = [
        {"start": 0, "end": 10},
        {"start": 5, "end": 8},
        {"start": 9, "end": 12},
        {"start": 12, "end": 13},
    ]
    assert count_overlapping_pairs(ents) == 2


# ---------------------------------------------------------------------------------------------- bad input


def _write_corpus(folder: Path, rel_lines: list[str], neg_lines: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "DRUG-AE.rel").write_text("".join(line + "\n" for line in rel_lines))
    (folder / "ADE-NEG.txt").write_text("".join(line + "\n" for line in (neg_lines or ["1 NEG A sentence."])))
    return folder


def test_rel_line_with_wrong_field_count(tmp_path):
    folder = _write_corpus(tmp_path, [GOOD_LINE, "10030778|Intravenous azithromycin.|x|1|2"])
    with pytest.raises(AdeFormatError, match=r"^DRUG-AE\.rel:2: expected 8 '\|'-separated fields, got 5$"):
        load_ade("relations", folder, cache_dir=tmp_path / "cache")


def test_rel_line_with_non_integer_offset():
    line = GOOD_LINE.replace("|43|", "|4x3|")
    with pytest.raises(
        AdeFormatError, match=r"^DRUG-AE\.rel:812: field 4 \(adverse effect begin\) '4x3' is not"
    ):
        parse_relation_line(line, lineno=812)
    with pytest.raises(AdeFormatError, match=r"^DRUG-AE\.rel:7: field 8 \(drug end\) 33: end - begin = 11"):
        parse_relation_line(GOOD_LINE.replace("|34", "|33"), lineno=7)


def test_rel_mention_not_in_sentence(tmp_path):
    bad = GOOD_LINE.replace("|ototoxicity|", "|nephrotoxicity|").replace("|43|54|", "|43|57|")
    folder = _write_corpus(tmp_path, [GOOD_LINE] * 811 + [bad])
    with pytest.raises(
        AdeFormatError,
        match=r"^DRUG-AE\.rel:812: field 3 \(adverse effect\) 'nephrotoxicity' not in sentence$",
    ):
        load_ade("relations", folder, cache_dir=tmp_path / "cache")


def test_empty_rel_file(tmp_path):
    folder = _write_corpus(tmp_path, [])
    with pytest.raises(AdeFormatError, match=r"^DRUG-AE\.rel: empty file"):
        load_ade("relations", folder, cache_dir=tmp_path / "cache")


def test_missing_files_are_listed(tmp_path):
    _write_corpus(tmp_path, [GOOD_LINE])
    with pytest.raises(DataDirError) as info:
        resolve_corpus_dir(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "spert_10fold/ade_split_0_train.json" in message and "DRUG-AE.rel" in message
    with pytest.raises(DataDirError, match=r"lacks: spert_10fold/ade_split_3_train\.json"):
        load_ade("fold_3", tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(DataDirError, match="does not exist"):
        load_ade("relations", tmp_path / "nowhere", cache_dir=tmp_path / "cache")
    # a config only needs its own files
    assert load_ade("relations", tmp_path, cache_dir=tmp_path / "cache")["train"].num_rows == 1


def test_malformed_negative_line(tmp_path):
    folder = _write_corpus(tmp_path, [GOOD_LINE], ["1 NEG Fine.", "", "12345 POS Not negative."])
    with pytest.raises(AdeFormatError, match=r"^ADE-NEG\.txt:3: field 2 \(marker\) 'POS' should be 'NEG'$"):
        load_ade("negatives", folder, cache_dir=tmp_path / "cache")
    with pytest.raises(AdeFormatError, match=r"^ADE-NEG\.txt:4: field 1 \(PubMed id\) 'x1'"):
        parse_negative_line("x1 NEG text", lineno=4)


def _spert_record(**changes) -> dict:
    record = {
        "tokens": GOOD_SENTENCE_TOKENS,
        "entities": [
            {"type": "Adverse-Effect", "start": 4, "end": 5},
            {"type": "Drug", "start": 1, "end": 2},
        ],
        "relations": [{"type": "Adverse-Effect", "head": 0, "tail": 1}],
        "orig_id": 0,
    }
    record.update(changes)
    return record


def _write_fold(folder: Path, test_records: list[dict]) -> None:
    split_dir = folder / "spert_10fold"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "ade_split_0_train.json").write_text(json.dumps([_spert_record()]))
    (split_dir / "ade_split_0_test.json").write_text(json.dumps(test_records))


def test_fold_file_converts_to_schema(tmp_path):
    folder = _write_corpus(tmp_path, [GOOD_LINE])
    _write_fold(folder, [_spert_record()])
    row = ade_records("fold_0", folder, cache_dir=tmp_path / "cache")["test"][0]
    assert row["id"] == "10030778-0"
    assert [(e["text"], e["type"], e["start"], e["token_start"]) for e in row["entities"]] == [
        ("azithromycin", "Drug", 12, 1),
        ("ototoxicity", "Adverse-Effect", 33, 4),
    ]
    assert row["relations"] == [{"head": 1, "tail": 0, "type": "ADE"}]  # head = AE, tail = Drug


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"relations": [{"type": "Adverse-Effect", "head": 0, "tail": 5}]},
            r"relations\[0\]\.tail = 5 out of range \(2 entities\)",
        ),
        (
            {"entities": [{"type": "Drug", "start": 1, "end": 9}]},
            r"entities\[0\]\.end = 9 out of range \(6 tokens, start 1\)",
        ),
        (
            {"relations": [{"type": "Adverse-Effect", "head": 1, "tail": 0}]},
            r"relations\[0\]: head must be an Adverse-Effect entity and tail a Drug entity, got Drug -> Adverse",
        ),
        ({"tokens": ["Something", "else"]}, r"tokens do not match any sentence of DRUG-AE\.rel"),
    ],
)
def test_bad_fold_record(tmp_path, changes, message):
    folder = _write_corpus(tmp_path, [GOOD_LINE])
    _write_fold(folder, [_spert_record(), _spert_record(orig_id=17, **changes)])
    with pytest.raises(
        AdeFormatError, match=r"^spert_10fold/ade_split_0_test\.json: record 1 \(orig_id 17\): " + message
    ):
        load_ade("fold_0", folder, cache_dir=tmp_path / "cache")


def test_same_sentence_under_two_pmids_is_matched_by_orig_id(tmp_path):
    other = GOOD_LINE.replace("10030778", "999")
    folder = _write_corpus(tmp_path, [GOOD_LINE, other])
    _write_fold(folder, [_spert_record(orig_id=1), _spert_record(orig_id=0)])
    rows = load_ade("fold_0", folder, cache_dir=tmp_path / "cache")["test"]
    assert rows["id"] == ["999-0", "10030778-0"]


def test_invalid_json_fold_file(tmp_path):
    folder = _write_corpus(tmp_path, [GOOD_LINE])
    _write_fold(folder, [])
    (folder / "spert_10fold" / "ade_split_0_test.json").write_text('[\n{"tokens": [}\n]')
    with pytest.raises(AdeFormatError, match=r"^spert_10fold/ade_split_0_test\.json:2:\d+: invalid JSON"):
        load_ade("fold_0", folder, cache_dir=tmp_path / "cache")


def test_unknown_config():
    with pytest.raises(ValueError, match="unknown ADE corpus config 'fold_10'"):
        load_ade("fold_10")


def test_relation_example_dedups_mentions_and_strips_spaces():
    sentence = "Heparin caused HIT and heparin caused bleeding."  # document offset 100
    lines = [
        f"7|{sentence}|HIT|115|118|heparin|123|130",
        f"7|{sentence}|bleeding|138|146|heparin|123|130",
        f"7|{sentence}|HIT |115|119|Heparin|100|107",
    ]
    (raw,) = group_sentences(parse_relation_line(line, lineno=i) for i, line in enumerate(lines, 1))
    counts = Counter()
    row = relation_example(raw, counts)
    assert row["id"] == "7-0"
    assert [(e["text"], e["type"], e["start"]) for e in row["entities"]] == [
        ("Heparin", "Drug", 0),
        ("HIT", "Adverse-Effect", 15),
        ("heparin", "Drug", 23),
        ("bleeding", "Adverse-Effect", 38),
    ]
    assert [(r["head"], r["tail"]) for r in row["relations"]] == [(1, 0), (1, 2), (3, 2)]
    assert counts["stripped_mentions"] == 1 and counts["fallback_sentences"] == 0


@pytest.mark.data
def test_dataset_loads_leave_no_temporary_folder(ade_data_dir, tmp_path):
    import subprocess
    import sys

    script = (
        "from datasets_scripts.ade_corpus import load_ade\n"
        f"splits = load_ade('negatives', data_dir={str(ade_data_dir)!r})\n"
        "assert sum(len(s) for s in splits.values()) > 0\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-c", script], check=True, env=env, cwd=Path(__file__).resolve().parents[1]
    )
    assert not list(tmp_path.glob("modeling_ade_ds_*")), "a dataset load left its temporary folder behind"


def test_non_utf8_relation_file_names_file_line_and_byte(tmp_path):
    """#13: used to end in a 54-line DatasetGenerationError naming no file."""
    first = b"10030778|Intravenous azithromycin-induced ototoxicity.|ototoxicity|43|54|azithromycin|22|34\n"
    (tmp_path / "DRUG-AE.rel").write_bytes(first + b"10030778|Caf\xe9 sentence.|x|1|2|y|3|4\n")
    offset = len(first) + len(b"10030778|Caf")
    message = rf"DRUG-AE.rel:2: not UTF-8 \(byte 0xe9 at byte offset {offset} "
    with pytest.raises(ade_corpus.AdeFormatError, match=message):
        ade_corpus.load_ade("relations", data_dir=tmp_path)


def test_types_are_class_labels_and_records_name_them(tmp_path):
    """The builder stores entity and relation types as ClassLabels (the label set lives in the features);
    ``rows_with_type_names`` decodes them, and keeps a dataset whose types are strings as it is."""
    assert type_names(ade_corpus.FEATURES, "entities") == list(ENTITY_TYPES)
    assert type_names(ade_corpus.FEATURES, "relations") == list(RELATION_TYPES)
    folder = _write_corpus(tmp_path, [GOOD_LINE])
    built = load_ade("relations", folder, cache_dir=tmp_path / "cache")["train"]
    assert [e["type"] for e in built[0]["entities"]] == [
        ENTITY_TYPES.index("Drug"),
        ENTITY_TYPES.index("Adverse-Effect"),
    ]
    (row,) = rows_with_type_names(built)
    assert [e["type"] for e in row["entities"]] == ["Drug", "Adverse-Effect"]
    assert [r["type"] for r in row["relations"]] == ["ADE"]
    as_strings = datasets.Dataset.from_list([row])
    assert type_names(as_strings.features, "entities") is None
    assert rows_with_type_names(as_strings) == [row]
