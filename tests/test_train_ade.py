"""train.py ade end to end on a few real ADE sentences (a 1-layer cut of the real MiniLM encoder)."""

import json

import pytest
from transformers import pipeline

import train

KEYS = [
    "ner_f1_micro",
    "ner_precision_micro",
    "ner_recall_micro",
    "ner_f1_macro",
    "ner_precision_macro",
    "ner_recall_macro",
    "re_f1_strict",
    "re_f1_boundaries",
    "re_f1_gold_entities",
]
SMALL = [
    "--max-train-samples",
    "24",
    "--max-eval-samples",
    "12",
    "--epochs",
    "1",
    "--num-hidden-layers",
    "1",
    "--batch-size",
    "8",
]


@pytest.mark.data
@pytest.mark.slow
def test_single_fold_writes_model_metrics_and_arguments(ade_data_dir, tmp_path):
    out = tmp_path / "run"
    train.main(["ade", "--output-dir", str(out), "--fold", "3", "--data-dir", str(ade_data_dir), *SMALL])
    metrics = json.loads((out / "metrics.json").read_text())
    for overlap in ("overlap_kept", "overlap_removed"):
        for key in KEYS:
            assert 0.0 <= metrics[overlap][key] <= 1.0, (overlap, key)
    assert metrics["num_train_sentences"] == 24 and metrics["num_test_sentences"] == 12
    assert metrics["overlap_kept"]["n_documents"] == 12
    args = json.loads((out / "training_args.json").read_text())
    assert args["fold"] == 3 and args["num_hidden_layers"] == 1
    assert list((out / "logs").rglob("events.out.tfevents.*")), "TensorBoard tracker wrote nothing"
    extract = pipeline("ade-extraction", model=str(out), trust_remote_code=True)
    assert extract.model.config.encoder_config.num_hidden_layers == 1
    text = "Intravenous azithromycin-induced ototoxicity."
    for entity in extract(text)["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]


@pytest.mark.data
@pytest.mark.slow
def test_cross_validation_aggregates_folds_trained_in_two_runs(ade_data_dir, tmp_path, capsys):
    """``--folds`` shares the folds out over runs; the summary comes once OUT holds every fold."""
    out = tmp_path / "cv"
    argv = ["ade", "--output-dir", str(out), "--cv", "2", "--data-dir", str(ade_data_dir), *SMALL]
    first = train.main([*argv, "--report-to", "none", "--folds", "1"])
    assert first == {"folds_finished": 1, "folds_waiting": [0]}
    assert (out / "fold_1" / "metrics.json").is_file() and not (out / "fold_0").exists()
    assert not (out / "metrics.json").exists(), "a summary of one fold of two"
    fold_1 = (out / "fold_1" / "metrics.json").read_text()
    train.main([*argv, "--report-to", "none", "--folds", "0", "--resume-from", "latest"])
    assert (out / "fold_1" / "metrics.json").read_text() == fold_1  # kept, not trained again
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["folds"] == [0, 1]
    assert json.loads((out / "training_args.json").read_text())["cv"] == 2
    assert [json.loads((out / f"fold_{k}" / "training_args.json").read_text())["fold"] for k in (0, 1)] == [
        0,
        1,
    ]
    cell = summary["cross_validation"]["overlap_kept"]["re_f1_strict"]
    fold_values = [
        json.loads((out / f"fold_{k}" / "metrics.json").read_text())["overlap_kept"]["re_f1_strict"]
        for k in (0, 1)
    ]
    assert cell["values"] == fold_values
    assert cell["mean"] == pytest.approx(sum(fold_values) / 2)
    assert "2-fold cross-validation" in capsys.readouterr().out


def test_cv_and_fold_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        train.main(["ade", "--output-dir", "x", "--cv", "10", "--fold", "2"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_missing_data_folder_is_one_clear_message(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(train.__file__)
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "ade",
            "--output-dir",
            str(tmp_path / "o"),
            "--data-dir",
            str(tmp_path / "nowhere"),
        ],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "nowhere" in result.stderr and "DRUG-AE.rel" in result.stderr
