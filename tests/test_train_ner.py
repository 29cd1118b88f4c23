"""train.py ner: data loading, words -> sub-words, windows, evaluation mapping, and end-to-end runs."""

import json
import logging
import os
from collections import Counter
from types import SimpleNamespace

import datasets
import pytest
import torch
from transformers import pipeline

import train
from datasets_scripts.common import repair_bio
from modeling_ade.encoders import M3E_SMALL, resolve_model_name
from modeling_ade.ner_data import (
    NerCollator,
    TaggedSentences,
    bio_label_list,
    encode_sentences,
    load_tokenizer,
    tagged_sentences_from_dataset,
    window_bounds,
)
from modeling_ade.ner_task import predict_word_tags

SMALL = ["--epochs", "1", "--num-hidden-layers", "1", "--batch-size", "8", "--report-to", "none"]


@pytest.fixture(scope="module")
def m3e_path():
    try:
        return resolve_model_name(M3E_SMALL)
    except FileNotFoundError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def m3e_tokenizer(m3e_path):
    return load_tokenizer(M3E_SMALL, m3e_path)


# ----------------------------------------------------------------------------------------------------
# pure pieces


def test_m3e_tokenizer_lower_cases_also_when_given_as_a_folder(m3e_path, m3e_tokenizer):
    # The folder ships do_lower_case=false with an uncased vocabulary: capitals would be [UNK].
    assert m3e_tokenizer.tokenize("COVID ABC") == m3e_tokenizer.tokenize("covid abc")
    assert m3e_tokenizer.unk_token not in m3e_tokenizer.tokenize("COVID ABC")
    by_folder = load_tokenizer(m3e_path, m3e_path)  # no name to recognise: detected from the vocabulary
    assert by_folder.tokenize("ABC") == ["abc"]
    assert by_folder.backend_tokenizer.normalizer.lowercase


def test_window_bounds():
    assert window_bounds([1, 1, 1], 5) == [(0, 3)]
    assert window_bounds([2, 2, 2, 0, 1], 4) == [(0, 2), (2, 5)]
    assert window_bounds([], 4) == [(0, 0)]
    with pytest.raises(ValueError, match="word 1 needs 5 tokens, more than the 4"):
        window_bounds([1, 5], 4)


def test_repair_bio_any_types():
    """Without a type list (``--dataset``), any type is kept and only its shape and order are repaired."""
    assert repair_bio(["I-A", "I-A", "O", "I-B", "B-A", "I-B"]) == (
        ["B-A", "I-A", "O", "B-B", "B-A", "B-B"],
        Counter(orphan_inside=3),
    )
    assert repair_bio(["B-drug", "I-drug"]) == (["B-drug", "I-drug"], Counter())  # the user's type names
    assert repair_bio(["b-drug", "O-SYMP", "i-drug", "E-X"]) == (
        ["B-drug", "O", "B-drug", "O"],
        Counter(lowercase=2, invalid_tag=2, orphan_inside=1),
    )


def test_dataset_tags_repaired_with_counts(caplog):
    """``O-SYMP`` and an orphan ``I-`` in a ``--dataset`` are repaired as the HealthNER files are."""
    ds = datasets.Dataset.from_dict(
        {
            "tokens": [["a", "b", "c"], ["d", "e"], ["f"]],
            "ner_tags": [["O-SYMP", "I-SYMP", "I-SYMP"], ["B-X", "I-X"], ["i-x"]],
        }
    )
    with caplog.at_level(logging.WARNING):
        data = tagged_sentences_from_dataset(ds, "tokens", "ner_tags", "mine.jsonl")
    assert data.tags == [["O", "B-SYMP", "I-SYMP"], ["B-X", "I-X"], ["B-x"]]
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert message.startswith(
        "mine.jsonl: repaired BIO tags (lowercase: 1, invalid_tag: 1, unknown_type: 0, "
    )
    assert "orphan_inside: 2) in 2 of 3 sentences; at row(s) 0, 2;" in message
    assert bio_label_list([data]) == ["O", "B-SYMP", "I-SYMP", "B-X", "I-X", "B-x", "I-x"]


def test_bio_label_list():
    strings = TaggedSentences([["a", "b"]], [["B-Y", "I-X"]])
    assert bio_label_list([strings]) == ["O", "B-X", "I-X", "B-Y", "I-Y"]
    named = TaggedSentences([["a"]], [["B-Z"]], label_names=["O", "B-Z", "I-Z", "B-A"])
    assert bio_label_list([named]) == ["O", "B-Z", "I-Z", "B-A", "I-A"]
    with pytest.raises(
        ValueError, match=r"sentence 0, word 1: tag 'E-X' is not 'O', 'B-<type>' or 'I-<type>'"
    ):
        bio_label_list([TaggedSentences([["a", "b"]], [["O", "E-X"]])])


def test_columns_are_checked_by_name():
    ds = datasets.Dataset.from_dict({"chars": [["a"]], "ner_tags": [["O"]]})
    with pytest.raises(
        ValueError,
        match=r"--tokens-column 'tokens': no such column in here; its columns are \['chars', 'ner_tags'\]",
    ):
        tagged_sentences_from_dataset(ds, "tokens", "ner_tags", "here")
    with pytest.raises(ValueError, match="--tags-column 'labels': no such column"):
        tagged_sentences_from_dataset(ds, "chars", "labels", "here")
    ints = datasets.Dataset.from_dict({"tokens": [["a"]], "tags": [[1]]})
    with pytest.raises(ValueError, match="int tags without ClassLabel names"):
        tagged_sentences_from_dataset(ints, "tokens", "tags", "here")
    uneven = datasets.Dataset.from_dict({"tokens": [["a", "b"]], "tags": [["O"]]})
    with pytest.raises(ValueError, match="row 0: 2 words in 'tokens' but 1 tags in 'tags'"):
        tagged_sentences_from_dataset(uneven, "tokens", "tags", "here")


def test_class_label_tags_become_strings():
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-X", "I-X"])),
        }
    )
    ds = datasets.Dataset.from_dict({"tokens": [["a", "b"]], "ner_tags": [[1, 2]]}, features=features)
    data = tagged_sentences_from_dataset(ds, "tokens", "ner_tags", "here")
    assert data.tags == [["B-X", "I-X"]] and data.label_names == ["O", "B-X", "I-X"]


LABELS = ["O", "B-DRUG", "I-DRUG", "B-SYMP", "I-SYMP"]
LABEL2ID = {label: i for i, label in enumerate(LABELS)}


def test_encoding_counts_dropped_characters_and_windows_long_sentences(m3e_tokenizer):
    text = "患者服用阿\u3000斯匹靈後頭痛\ufeff。" + "今天天氣很好" * 3
    words = list(text)
    tags = ["O"] * len(words)
    tags[4:9] = ["B-DRUG", "I-DRUG", "I-DRUG", "I-DRUG", "I-DRUG"]  # 阿 U+3000 斯 匹 靈
    tags[10:12] = ["B-SYMP", "I-SYMP"]
    data = TaggedSentences([words], [tags])
    windows, counts = encode_sentences(data, m3e_tokenizer, LABEL2ID, 8, with_labels=True)
    assert counts.words_without_token == 2  # U+3000 and U+FEFF
    assert counts.gold_entities == 2 and counts.gold_entities_with_dropped_words == 1
    assert counts.longer_than_max_length == 1 and counts.windows == len(windows) > 1
    covered = [w for window in windows for w in window.words]
    assert covered == [i for i in range(len(words)) if i not in (5, 12)]  # each kept word exactly once
    for window in windows:
        features = window.features
        assert len(features["input_ids"]) <= 8
        assert sum(features["decode_mask"]) == len(window.words)
        labelled = [LABELS[i] for i in features["labels"] if i != -100]
        assert labelled == repair_bio([tags[w] for w in window.words])[0]
        assert labelled[0][:2] != "I-"  # a window starting inside an entity starts it with B-
    assert windows[0].words[-1] == 6 and windows[1].words[0] == 7  # 阿 斯 | 匹 靈: the drug is cut
    assert counts.labels_repaired == 1  # 匹 starts the second window: B-DRUG in its labels
    evaluation, _ = encode_sentences(data, m3e_tokenizer, LABEL2ID, 8, with_labels=False)
    assert all("labels" not in w.features for w in evaluation)
    assert [w.words for w in evaluation] == [w.words for w in windows]


def test_first_subword_carries_the_label(minilm_tokenizer):
    data = TaggedSentences([["Azithromycin", "caused", "ototoxicity"]], [["B-DRUG", "O", "B-SYMP"]])
    (window,), counts = encode_sentences(data, minilm_tokenizer, LABEL2ID, 64, with_labels=True)
    assert counts.words_split_into_subwords >= 2
    tokens = minilm_tokenizer.convert_ids_to_tokens(window.features["input_ids"])
    labelled = [(tok, LABELS[i]) for tok, i in zip(tokens, window.features["labels"]) if i != -100]
    assert [tag for _, tag in labelled] == ["B-DRUG", "O", "B-SYMP"]
    assert not any(tok.startswith("##") for tok, _ in labelled)


def test_predictions_map_back_to_every_character(m3e_tokenizer):
    """An oracle that decodes the gold labels gets every word back; dropped words come back as O."""
    from accelerate import Accelerator

    words = list("阿\u3000斯很好用") * 4  # 5 tokens per block: with --max-length 7, one window each
    tags = ["B-DRUG", "I-DRUG", "I-DRUG", "O", "O", "O"] * 4
    data = TaggedSentences([words, words[:6]], [tags, tags[:6]])
    windows, counts = encode_sentences(data, m3e_tokenizer, LABEL2ID, 7, with_labels=True)
    assert len(windows) == 5 and counts.labels_repaired == 0

    class Oracle(torch.nn.Module):
        def forward(self, labels, decode_mask, **inputs):
            return SimpleNamespace(tags=labels.masked_fill(~decode_mask, -100))

    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(
        torch.utils.data.DataLoader(
            [{**w.features, "index": i} for i, w in enumerate(windows)],
            batch_size=3,
            collate_fn=NerCollator(m3e_tokenizer.pad_token_id),
        )
    )
    predicted = predict_word_tags(accelerator, Oracle(), loader, windows, data, dict(enumerate(LABELS)))
    block = ["B-DRUG", "O", "I-DRUG", "O", "O", "O"]  # the dropped U+3000 is predicted O
    assert predicted == [block * 4, block]


def test_dataset_flags_need_dataset():
    from modeling_ade.ner_task import NerSettings

    with pytest.raises(ValueError, match="--eval-split applies to --dataset only"):
        NerSettings(output_dir="unused", eval_split="validation")
    with pytest.raises(ValueError, match="--train-split without --dataset is one of train, train\\+dev"):
        NerSettings(output_dir="unused", train_split="dev")


@pytest.mark.data
def test_final_model_trains_on_train_and_dev(healthner_data_dir):
    from modeling_ade.ner_data import load_ner_data
    from modeling_ade.ner_task import NerSettings

    train, dev, _ = load_ner_data(NerSettings(output_dir="unused", data_dir=str(healthner_data_dir)))
    everything, dev_again, where = load_ner_data(
        NerSettings(output_dir="unused", data_dir=str(healthner_data_dir), train_split="train+dev")
    )
    assert len(everything.words) == len(train.words) + len(dev.words) == 9155
    assert everything.words[len(train.words) :] == dev.words and dev_again.words == dev.words
    assert "dev is NOT held out" in where
    # what metrics.json's eval_held_out says
    assert NerSettings(output_dir="o", train_split="train+dev").trains_on_eval
    assert not NerSettings(output_dir="o").trains_on_eval
    assert NerSettings(output_dir="o", dataset="d", train_split="train+validation").trains_on_eval
    assert not NerSettings(output_dir="o", dataset="d", train_split="train").trains_on_eval
    assert not NerSettings(
        output_dir="o", dataset="d", train_split="train[:90%]", eval_split="train[90%:]"
    ).trains_on_eval


# ----------------------------------------------------------------------------------------------------
# end to end


def check_run(out, num_train, num_eval):
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("ner_f1_micro", "ner_precision_micro", "ner_recall_micro", "ner_f1_macro"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["num_train_sentences"] == num_train and metrics["num_eval_sentences"] == num_eval
    assert metrics["train_history"][0]["epoch_seconds"] > 0
    config = json.loads((out / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModelForTokenClassification"}
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o444 & ~mask for p in out.iterdir() if p.is_file()}
    assert set(modes.values()) == {0o444 & ~mask}, modes  # the weights too (safetensors writes 0600)
    assert config["encoder_config"]["num_hidden_layers"] == 1
    return metrics, json.loads((out / "training_args.json").read_text())


@pytest.mark.data
@pytest.mark.slow
def test_healthner_run_writes_model_metrics_and_arguments(healthner_data_dir, m3e_path, tmp_path, capsys):
    out = tmp_path / "run"
    train.main(
        [
            "ner",
            "--output-dir",
            str(out),
            "--data-dir",
            str(healthner_data_dir),
            "--max-train-samples",
            "24",
            "--max-eval-samples",
            "12",
            "--layer-decay",
            "0.8333",
            "--eval-every-epoch",
            *SMALL,
        ]
    )
    metrics, args = check_run(out, 24, 12)
    last = metrics["train_history"][-1]  # scored after the last epoch: the same model as the final scores
    assert last["eval_ner_f1_micro"] == metrics["ner_f1_micro"] and metrics["eval_held_out"] is True
    assert metrics["encoding"]["evaluation"]["sentences"] == 12
    assert args["head"] == "crf" and args["layer_decay"] == 0.8333 and args["model"] == M3E_SMALL
    assert "| **micro** |" in capsys.readouterr().out
    ner = pipeline(
        "token-classification", model=str(out), aggregation_strategy="simple", trust_remote_code=True
    )
    text = "服用阿斯匹靈後出現胃痛 ABC"
    for entity in ner(text):
        assert 0 <= entity["start"] < entity["end"] <= len(text)


@pytest.mark.slow
def test_custom_jsonl_dataset_with_string_tags(m3e_path, tmp_path, caplog):
    rows = [
        {
            "tokens": list("患者服用阿斯匹靈後胃痛"),
            "ner_tags": ["O"] * 4 + ["B-DRUG"] + ["I-DRUG"] * 3 + ["O", "B-SYMP", "I-SYMP"],
        },
        {"tokens": list("頭\u3000痛很久了"), "ner_tags": ["B-SYMP", "I-SYMP", "I-SYMP", "O", "O", "O"]},
        {
            "tokens": list("今天天氣很好，沒有頭痛也沒有胃痛"),
            # O-SYMP and an orphan I- (repaired to O and B-SYMP, with a warning), as in the HealthNER files
            "ner_tags": ["O-SYMP"] + ["O"] * 8 + ["I-SYMP", "I-SYMP"] + ["O"] * 3 + ["B-SYMP", "I-SYMP"],
        },
    ] * 3
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "run"
    train.main(
        [
            "ner",
            "--output-dir",
            str(out),
            "--dataset",
            str(path),
            "--eval-split",
            "train[:3]",
            "--max-length",
            "14",
            "--head",
            "softmax",
            "--layer-decay",
            "1.0",
            *SMALL,
        ]
    )
    metrics, args = check_run(out, 9, 3)
    repairs = [r.getMessage() for r in caplog.records if "repaired BIO tags" in r.getMessage()]
    assert len(repairs) == 2 and all(str(path) in m for m in repairs)  # training and evaluation split
    assert (
        "invalid_tag: 3" in repairs[0]
        and "orphan_inside: 3" in repairs[0]
        and "at row(s) 2, 5, 8;" in repairs[0]
    )
    assert args["dataset"] == str(path) and args["head"] == "softmax"
    assert metrics["n_gold_entities"] == 5  # the entity with the dropped U+3000 counts as gold
    evaluation = metrics["encoding"]["evaluation"]
    assert evaluation["words_without_token"] == 1 and evaluation["gold_entities_with_dropped_words"] == 1
    assert evaluation["longer_than_max_length"] == 1  # the 16-character sentence, in windows
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "O", "1": "B-DRUG", "2": "I-DRUG", "3": "B-SYMP", "4": "I-SYMP"}
    assert config["head"] == "softmax"


@pytest.mark.data
@pytest.mark.slow
def test_exported_parquet_folder(healthner_data_dir, m3e_path, tmp_path):
    from datasets_scripts.chinese_healthner import export

    folder = export(tmp_path / "parquet", data_dir=healthner_data_dir, configs=["multiner_ft", "multiner_sm"])
    out = tmp_path / "run"
    train.main(
        [
            "ner",
            "--output-dir",
            str(out),
            "--dataset",
            str(folder),
            "--dataset-config",
            "multiner_ft",
            "--train-split",
            "test[:16]",
            "--eval-dataset-config",
            "multiner_sm",
            "--eval-split",
            "test[:8]",
            "--no-bio-constraints",
            *SMALL,
        ]
    )
    metrics, _ = check_run(out, 16, 8)
    assert metrics["data"].startswith(str(folder))
    config = json.loads((out / "config.json").read_text())
    assert config["use_bio_constraints"] is False and len(config["id2label"]) == 21  # the ClassLabel names


def test_missing_column_names_the_column(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"chars": ["a"], "ner_tags": ["O"]}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="--tokens-column 'tokens': no such column"):
        train.main(
            [
                "ner",
                "--output-dir",
                str(tmp_path / "run"),
                "--dataset",
                str(path),
                "--eval-split",
                "train",
                "--report-to",
                "none",
            ]
        )
