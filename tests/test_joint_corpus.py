"""Users' own entity-and-relation corpora (#15): the formats, their errors, the label sets, long documents, and
``train.py joint`` end to end on a small multi-type corpus (overfit, then loaded by a stranger)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import train
from datasets_scripts.relation_formats import (
    BratCounts,
    CorpusFormatError,
    check_schema_record,
    parse_split,
    read_brat_folder,
    read_spert_file,
    record_to_spert,
    spert_to_record,
    take_split,
    write_brat,
)
from modeling_ade.joint_data import (
    SentenceSplitCounts,
    corpus_types,
    detect_format,
    load_relation_corpus,
    split_long_records,
)


def record(text, entities, relations, rid="doc"):
    """A project-schema record from ``(surface, type)`` entities (first occurrence) and ``(h, t, type)``."""
    spans = []
    for surface, entity_type in entities:
        start = text.index(surface)
        spans.append({"start": start, "end": start + len(surface), "type": entity_type, "text": surface})
    return {
        "id": rid,
        "text": text,
        "entities": spans,
        "relations": [{"head": h, "tail": t, "type": r} for h, t, r in relations],
    }


# A small corpus in the shape of CoNLL04: three entity types, four relation types, one symmetric relation
# (Colleague_Of) and one pair holding two relation types (Live_In and Born_In).
CORPUS = [
    record(
        "Maria Lopez works for Pfizer in New York .",
        [("Maria Lopez", "Peop"), ("Pfizer", "Org"), ("New York", "Loc")],
        [(0, 1, "Work_For"), (1, 2, "Located_In")],
        "d0",
    ),
    record(
        "John Smith was born and lives in Boston .",
        [("John Smith", "Peop"), ("Boston", "Loc")],
        [(0, 1, "Live_In"), (0, 1, "Born_In")],
        "d1",
    ),
    record(
        "Anna Berg joined Novartis , based in Basel .",
        [("Anna Berg", "Peop"), ("Novartis", "Org"), ("Basel", "Loc")],
        [(0, 1, "Work_For"), (1, 2, "Located_In")],
        "d2",
    ),
    record(
        "Peter Hall and Susan Reid are colleagues at Roche .",
        [("Peter Hall", "Peop"), ("Susan Reid", "Peop"), ("Roche", "Org")],
        [(1, 0, "Colleague_Of"), (0, 2, "Work_For"), (1, 2, "Work_For")],
        "d3",
    ),
    record(
        "Lena Fischer lives in Berlin .",
        [("Lena Fischer", "Peop"), ("Berlin", "Loc")],
        [(0, 1, "Live_In")],
        "d4",
    ),
    record("The weather was cold that winter .", [], [], "d5"),
    record(
        "Omar Haddad was born and lives in Cairo .",
        [("Omar Haddad", "Peop"), ("Cairo", "Loc")],
        [(0, 1, "Live_In"), (0, 1, "Born_In")],
        "d6",
    ),
    record(
        "Sanofi is located in Paris .",
        [("Sanofi", "Org"), ("Paris", "Loc")],
        [(0, 1, "Located_In")],
        "d7",
    ),
]


# ----------------------------------------------------------------------------------------------------
# formats and round trips


def test_brat_round_trip_keeps_every_annotation(tmp_path):
    write_brat(CORPUS, tmp_path / "a")
    counts = BratCounts()
    back = read_brat_folder(tmp_path / "a", counts)
    assert sorted(back, key=lambda r: r["id"]) == sorted(CORPUS, key=lambda r: r["id"])
    assert counts.documents == len(CORPUS) and counts.relations == sum(len(r["relations"]) for r in CORPUS)
    write_brat(back, tmp_path / "b")  # brat -> dataset -> brat: the same files
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_brat_discontinuous_and_other_lines_are_counted(tmp_path):
    text = "Severe pain in the left and right knee after ibuprofen .\n"
    (tmp_path / "n1.txt").write_text(text)
    (tmp_path / "n1.ann").write_text(
        "T1\tDrug 45 54\tibuprofen\n"
        "T2\tADE 0 11\tSevere pain\n"
        "T3\tADE 19 23;33 38\tleft knee\n"  # discontinuous: cannot be one span
        "R1\tCause Arg1:T2 Arg2:T1\n"
        "R2\tCause Arg1:T3 Arg2:T1\n"
        "A1\tNegated T2\n"
        "#1\tAnnotatorNotes T1\tbrand name\n"
    )
    counts = BratCounts()
    (doc,) = read_brat_folder(tmp_path, counts)
    assert [(e["type"], e["text"]) for e in doc["entities"]] == [
        ("Drug", "ibuprofen"),
        ("ADE", "Severe pain"),
    ]
    assert doc["relations"] == [{"head": 1, "tail": 0, "type": "Cause"}]
    assert counts.discontinuous_entities == 1 and counts.relations_on_discontinuous == 1
    assert counts.other_lines == {"A": 1, "#": 1}
    assert "1 discontinuous entities" in counts.describe()


def test_spert_to_dataset_rebuilds_text_and_offsets(tmp_path):
    item = {
        "tokens": ["Ototoxicity", "after", "intravenous", "azithromycin", "."],
        "entities": [{"type": "AE", "start": 0, "end": 1}, {"type": "Drug", "start": 2, "end": 4}],
        "relations": [{"type": "ADE", "head": 0, "tail": 1}],
        "orig_id": 7,
    }
    got = spert_to_record(item, "f.json: record 0", "x")
    assert got["text"] == "Ototoxicity after intravenous azithromycin ."
    assert [e["text"] for e in got["entities"]] == ["Ototoxicity", "intravenous azithromycin"]
    assert got["relations"] == [{"head": 0, "tail": 1, "type": "ADE"}]
    assert record_to_spert(got) == {**item, "orig_id": "7"}
    path = tmp_path / "f.json"
    path.write_text(json.dumps([item, item]))
    assert detect_format(str(path)) == "spert"
    assert read_spert_file(path)[1] == got


@pytest.mark.data
def test_spert_fold_files_and_brat_written_from_them_read_the_same(ade_data_dir, tmp_path):
    """The ADE fold files as SpERT, written as brat and read back: the same records, text and offsets."""
    path = ade_data_dir / "spert_10fold" / "ade_split_0_test.json"
    spert = read_spert_file(path)
    assert len(spert) == 427
    for r in spert:
        for e in r["entities"]:
            assert r["text"][e["start"] : e["end"]] == e["text"]
    renamed = [{**r, "id": f"{i:05d}"} for i, r in enumerate(spert)]
    write_brat(renamed, tmp_path / "brat")
    assert read_brat_folder(tmp_path / "brat") == renamed
    assert detect_format(str(tmp_path / "brat")) == "brat"


def test_schema_jsonl_and_splits(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in CORPUS))
    corpus = load_relation_corpus(str(path))
    assert corpus.format == "schema" and corpus.splits["train"] == CORPUS
    assert corpus.split("train[:25%]") == CORPUS[:2] and corpus.split("train[6:]") == CORPUS[6:]
    assert parse_split("fold_3_test") == ("fold_3_test", slice(None, None))
    assert take_split(list(range(10)), parse_split("x[-3:]")[1]) == [7, 8, 9]
    with pytest.raises(CorpusFormatError, match="no split 'test'.*'train'"):
        corpus.split("test")


@pytest.mark.data
def test_exported_parquet_folder_with_configs_is_the_project_schema(ade_data_dir, tmp_path):
    from datasets_scripts.ade_corpus import ade_records, export

    export(tmp_path / "parquet", data_dir=ade_data_dir, configs=["fold_0"])
    corpus = load_relation_corpus(str(tmp_path / "parquet"), config="fold_0")
    assert corpus.format == "schema" and sorted(corpus.splits) == ["test", "train"]
    expected = ade_records("fold_0", data_dir=ade_data_dir)["test"]
    got = corpus.splits["test"]
    assert [(r["id"], r["text"]) for r in got] == [(r["id"], r["text"]) for r in expected]
    strip = lambda r: [(e["start"], e["end"], e["type"]) for e in r["entities"]]  # noqa: E731
    assert [strip(r) for r in got] == [strip(r) for r in expected]
    assert [r["relations"] for r in got] == [
        [{"head": x["head"], "tail": x["tail"], "type": x["type"]} for x in r["relations"]] for r in expected
    ]


def test_brat_sub_folders_are_splits(tmp_path):
    write_brat(CORPUS[:6], tmp_path / "train")
    write_brat(CORPUS[6:], tmp_path / "dev")
    corpus = load_relation_corpus(str(tmp_path))
    assert corpus.format == "brat" and sorted(corpus.splits) == ["dev", "train"]
    assert [r["id"] for r in corpus.splits["dev"]] == ["d6", "d7"]


# ----------------------------------------------------------------------------------------------------
# bad input: one clear error naming file, line or record, and field


def write_ann(tmp_path, text, ann):
    (tmp_path / "doc.txt").write_text(text)
    (tmp_path / "doc.ann").write_text(ann)


@pytest.mark.parametrize(
    ("ann", "message"),
    [
        (
            "T1\tDrug 0 7\taspirin\nR1\tCause Arg1:T9 Arg2:T1\n",
            r"doc\.ann:2: field 2: Arg1 names T9, which no T line",
        ),
        (
            "T1\tDrug 0 70\taspirin\n",
            r"doc\.ann:1: field 2: end 70 is past the end of doc\.txt \(16 characters\)",
        ),
        ("T1\tDrug 0 7\taspiron\n", r"doc\.ann:1: field 3: the span text 'aspiron' disagrees with doc\.txt"),
        ("T1\tDrug zero 7\taspirin\n", r"doc\.ann:1: field 2 'Drug zero 7' is not 'Type start end'"),
    ],
)
def test_brat_errors_name_file_line_and_field(tmp_path, ann, message):
    write_ann(tmp_path, "aspirin and rash", ann)
    with pytest.raises(CorpusFormatError, match=message):
        read_brat_folder(tmp_path)


def test_unreadable_inputs_are_named(tmp_path):
    from datasets_scripts.common import NotUtf8Error

    (tmp_path / "doc.txt").write_bytes(b"aspirin\nand caf\xe9 rash")
    (tmp_path / "doc.ann").write_text("T1\tDrug 0 7\taspirin\n")
    with pytest.raises(NotUtf8Error, match=r"doc\.txt:2: not UTF-8"):
        read_brat_folder(tmp_path)
    with pytest.raises(CorpusFormatError, match="no such file or folder"):
        load_relation_corpus(str(tmp_path / "missing.jsonl"))
    (tmp_path / "broken.jsonl").write_text('{"text": "a"}\n{not json\n')
    with pytest.raises(CorpusFormatError, match=r"broken\.jsonl: cannot be read"):
        load_relation_corpus(str(tmp_path / "broken.jsonl"))


def test_relation_index_out_of_range_is_named():
    bad = {**CORPUS[0], "relations": [{"head": 0, "tail": 5, "type": "Work_For"}]}
    with pytest.raises(
        CorpusFormatError,
        match=r"data\.jsonl: line 4: field relations\[0\]\.tail = 5 is out of range \(3 entities\)",
    ):
        check_schema_record(bad, "data.jsonl: line 4")
    item = {
        "tokens": ["a", "b"],
        "entities": [{"type": "X", "start": 0, "end": 1}],
        "relations": [{"type": "R", "head": 0, "tail": 1}],
    }
    with pytest.raises(
        CorpusFormatError, match=r"f\.json: record 2: field relations\[0\]\.tail = 1 is out of range"
    ):
        spert_to_record(item, "f.json: record 2", "x")
    late = {**CORPUS[0], "entities": [{"start": 0, "end": 99, "type": "Peop"}], "relations": []}
    with pytest.raises(CorpusFormatError, match=r"field entities\[0\]\.end = 99 is past the end of the text"):
        check_schema_record(late, "r")


def test_empty_corpus_and_types_seen_only_in_evaluation():
    with pytest.raises(CorpusFormatError, match="training split is empty"):
        corpus_types([], CORPUS, "test")
    with pytest.raises(CorpusFormatError, match="no relation"):
        corpus_types([CORPUS[5], {**CORPUS[4], "relations": []}], [], "test")
    only_eval = record("Tom Ray visited Oslo .", [("Tom Ray", "Peop"), ("Oslo", "City")], [], "e1")
    with pytest.raises(
        CorpusFormatError,
        match=r"test: record 1 \(id e1\): entities\[1\]\.type 'City' is not in the training split",
    ):
        corpus_types(CORPUS, [CORPUS[0], only_eval], "test")


def test_train_py_joint_reports_bad_input_in_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "corpus").mkdir()
    write_ann(tmp_path / "corpus", "aspirin and rash", "T1\tDrug 0 7\taspirin\nR1\tCause Arg1:T1 Arg2:T4\n")
    monkeypatch.setattr(
        sys,
        "argv",
        ["train.py", "joint", "--dataset", str(tmp_path / "corpus"), "--output-dir", str(tmp_path / "out")],
    )
    assert train.cli() == 2
    err = capsys.readouterr().err
    assert "doc.ann:2: field 2: Arg2 names T4" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


# ----------------------------------------------------------------------------------------------------
# label sets, long documents


def test_label_sets_come_from_the_training_data():
    types = corpus_types(CORPUS, CORPUS, "train", symmetric=["Colleague_Of"])
    assert types.entity_types == ["Peop", "Org", "Loc"]
    assert types.relation_types == ["Work_For", "Located_In", "Live_In", "Born_In", "Colleague_Of"]
    assert ["Peop", "Org"] in types.candidate_types and ["Org", "Loc"] in types.candidate_types
    assert ["Loc", "Peop"] not in types.candidate_types
    assert types.multi_label  # d1 and d6: Live_In and Born_In on one pair
    assert types.symmetric_relations == ["Colleague_Of"]
    assert not corpus_types(CORPUS[:1], [], "test").multi_label
    with pytest.raises(CorpusFormatError, match="--symmetric-relations"):
        corpus_types(CORPUS, [], "test", symmetric=["Sibling_Of"])


def test_long_documents_are_cut_at_sentences_but_never_inside_an_entity_or_relation():
    text = "Maria Lopez works for Pfizer. She moved. Later Pfizer hired Anna Berg. Rain fell. Anna Berg left."
    doc = record(
        text,
        [("Maria Lopez", "Peop"), ("Pfizer", "Org"), ("Anna Berg", "Peop")],
        [(0, 1, "Work_For"), (2, 1, "Work_For")],  # Anna Berg -> the first Pfizer: crosses two boundaries
    )
    counts = SentenceSplitCounts()
    pieces = split_long_records([doc], lambda t: True, "en", counts)
    assert "".join(p["text"] for p in pieces) == text
    assert [p["id"] for p in pieces] == ["doc#0", "doc#1", "doc#2"]
    assert pieces[0]["text"].startswith("Maria Lopez") and pieces[0]["text"].rstrip().endswith("Anna Berg.")
    assert counts.records_split == 1 and counts.units == 3 and counts.boundaries_kept == 2
    kept = [(p["text"][e["start"] : e["end"]], e["type"]) for p in pieces for e in p["entities"]]
    assert kept == [("Maria Lopez", "Peop"), ("Pfizer", "Org"), ("Anna Berg", "Peop")]
    assert sum(len(p["relations"]) for p in pieces) == 2
    assert split_long_records([doc], lambda t: False, "en", counts) == [doc]


# ----------------------------------------------------------------------------------------------------
# train.py joint end to end: several types, overfit, stranger load


@pytest.mark.slow
def test_joint_overfits_a_multi_type_corpus_and_a_stranger_loads_it(tmp_path):
    write_brat(CORPUS, tmp_path / "corpus" / "train")
    write_brat(CORPUS, tmp_path / "corpus" / "test")
    out = tmp_path / "run"
    metrics = train.main(
        [
            "joint",
            "--dataset",
            str(tmp_path / "corpus"),
            "--symmetric-relations",
            "Colleague_Of",
            "--output-dir",
            str(out),
            "--num-hidden-layers",
            "2",
            "--epochs",
            "40",
            "--batch-size",
            "4",
            "--learning-rate",
            "1e-3",
            "--report-to",
            "none",
        ]
    )
    block = metrics["overlap_kept"]
    assert block["ner_f1_micro"] >= 0.95 and block["ner_f1_macro"] >= 0.95, block
    assert block["re_f1_strict"] >= 0.95 and block["re_f1_strict_macro"] >= 0.95, block
    assert set(block["re_per_type_strict"]) == {
        "Work_For",
        "Located_In",
        "Live_In",
        "Born_In",
        "Colleague_Of",
    }
    assert set(block["ner_per_type"]) == {"Peop", "Org", "Loc"}
    config = json.loads((out / "config.json").read_text())
    assert config["entity_types"] == ["Peop", "Org", "Loc"] and config["relation_multi_label"] is True
    assert config["symmetric_relations"] == ["Colleague_Of"]
    assert json.loads((out / "training_args.json").read_text())["dataset"] == str(tmp_path / "corpus")

    from modeling_ade.model_card import build_model_card
    from modeling_ade.model_run import read_model_run

    card = str(build_model_card(read_model_run(out), "someone/people-and-places"))
    assert (
        "A model for joint entity and relation extraction" in card
        and "adverse" not in card.split("## How")[0]
    )
    assert "Entity types: `Peop`, `Org`, `Loc`." in card and "`Colleague_Of`" in card and "Symmetric" in card
    assert "RE F1, end-to-end strict, macro over relation types" in card  # in the model-index and the table
    assert "adverse-drug-events" not in card and "train.py joint --dataset" in card

    import predict

    (tmp_path / "notes.txt").write_text("Lena Fischer lives in Berlin .\nSanofi is located in Paris .\n")
    assert (
        predict.main(
            ["--model", str(out), str(tmp_path / "notes.txt"), "--output", str(tmp_path / "o.jsonl")]
        )
        == 0
    )
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert {e["type"] for line in lines for e in line["entities"]} <= {"Peop", "Org", "Loc"}
    assert [r["type"] for r in lines[1]["relations"]] == ["Located_In"]
    assert (
        lines[1]["relations"][0]["org"]["text"] == "Sanofi"
        and lines[1]["relations"][0]["loc"]["text"] == "Paris"
    )

    text = "John Smith was born and lives in Boston . Peter Hall and Susan Reid are colleagues at Roche ."
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["modeling_ade"] = None
        sys.modules["datasets_scripts"] = None
        from transformers import pipeline
        pipe = pipeline("ade-extraction", model={str(out)!r}, trust_remote_code=True)
        print("RESULT:" + json.dumps(pipe({text!r})))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT:")[1])
    for entity in got["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    found = {(r["type"], *(v["text"] for k, v in r.items() if isinstance(v, dict))) for r in got["relations"]}
    assert ("Live_In", "John Smith", "Boston") in found and ("Born_In", "John Smith", "Boston") in found
    colleagues = [r for r in got["relations"] if r["type"] == "Colleague_Of"]
    assert [(r["head"]["text"], r["tail"]["text"]) for r in colleagues] == [("Peter Hall", "Susan Reid")]


# ----------------------------------------------------------------------------------------------------
# several relation types per pair, symmetric relations, per-type scores


def test_multi_label_targets_loss_and_predicted_entity_negatives(minilm_tokenizer):
    from conftest import tiny_encoder_config

    from modeling_ade import JointNerReConfig, JointNerReForAdeExtraction
    from modeling_ade.ade_data import AdeCollator, encode_ade_record

    types = corpus_types(CORPUS, [], "test", symmetric=["Colleague_Of"])
    config = JointNerReConfig(
        encoder_config=tiny_encoder_config(minilm_tokenizer.vocab_size),
        entity_types=types.entity_types,
        relation_labels=["none", *types.relation_types],
        relation_candidate_types=types.candidate_types,
        relation_multi_label=True,
        symmetric_relations=types.symmetric_relations,
    )
    model = JointNerReForAdeExtraction(config)
    features = [encode_ade_record(r, minilm_tokenizer, config, 64).features for r in (CORPUS[1], CORPUS[3])]
    assert [0, 1, 5] in features[1]["gold_relations"] and [1, 0, 5] in features[1][
        "gold_relations"
    ]  # both orders
    batch = AdeCollator(
        0, model.candidate_type_ids(), num_relation_labels=6, predicted_entity_negatives=True
    )(features)
    labels = batch["relation_labels"]  # (B, P, R) multi-hot
    assert labels.shape[-1] == 6
    live, born = 1 + types.relation_types.index("Live_In"), 1 + types.relation_types.index("Born_In")
    (row,) = [
        labels[0, p] for p, (h, t) in enumerate(batch["relation_pairs"][0].tolist()) if (h, t) == (0, 1)
    ]
    assert row.tolist() == [1.0 if i in (live, born) else 0.0 for i in range(6)]
    output = model(**batch)
    assert torch.isfinite(output.loss) and output.relation_loss > 0
    output.loss.backward()
    assert model.relation_head.mlp[-1].weight.grad.abs().sum() > 0


def test_window_predictions_report_every_label_and_symmetric_relations_once():
    from modeling_ade.hub.pipeline_ade_extraction import relation_label_ids, window_predictions

    assert relation_label_ids([0.1, 0.7, 0.6], 0.5, multi_label=True) == [1, 2]
    assert relation_label_ids([0.1, 0.5, 0.4], 0.5) == [1]
    offsets = [[0, 0], [0, 5], [6, 11], [12, 17], [0, 0]]
    entities, relations = window_predictions(
        offsets,
        5,
        [[1, 1, 0], [3, 3, 0]],
        [0.9, 0.9],
        [[1, 0], [0, 1]],
        [[0.1, 0.9, 0.8], [0.2, 0.1, 0.7]],
        ["Peop"],
        ["none", "Colleague_Of", "Knows"],
        multi_label=True,
        symmetric_relations=["Colleague_Of"],
    )
    assert [(e["start"], e["end"]) for e in entities] == [(0, 5), (12, 17)]
    # Colleague_Of from (second, first) is reported with the first entity as head; Knows keeps its direction
    assert sorted((h, t, label) for h, t, label, _ in relations) == [(0, 1, 1), (0, 1, 2), (1, 0, 2)]


def test_relation_scores_have_micro_macro_and_per_type():
    from modeling_ade.metrics import compute_ade_metrics, per_type_tables

    a, b, c = ("Peop", 0, 5), ("Org", 10, 16), ("Loc", 20, 25)
    gold = [
        {"entities": [a, b, c], "relations": [(a, b, "Work_For"), (b, c, "Located_In"), (a, c, "Live_In")]}
    ]
    pred = [{"entities": [a, b, c], "relations": [(a, b, "Work_For"), (b, c, "Live_In")]}]
    block = compute_ade_metrics(gold, pred)["overlap_kept"]
    assert block["re_precision_strict"] == 0.5 and block["re_recall_strict"] == 1 / 3
    per_type = block["re_per_type_strict"]
    assert per_type["Work_For"]["f1"] == 1.0 and per_type["Located_In"]["f1"] == 0.0
    assert per_type["Live_In"]["support"] == 1 and per_type["Live_In"]["precision"] == 0.0
    assert block["re_f1_strict_macro"] == pytest.approx(1 / 3)
    table = per_type_tables(block)
    assert "| Work_For | 1.0000 | 1.0000 | 1.0000 | 1 |" in table and "| **macro** |" in table
