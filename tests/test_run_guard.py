"""train.py never loses a finished run or mixes two runs: output folder checks, lock, resume settings, NaN stop."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import train
from modeling_ade.ade_task import AdeSettings
from modeling_ade.run_guard import (
    LOCK_FILE,
    SETTINGS_FILE,
    RunGuardError,
    guard_output_dir,
    result_settings,
    settings_differences,
)
from modeling_ade.settings import TrainSettings
from modeling_ade.training import NonFiniteLossError, check_finite


def args_for(out, **changes):
    values = dict(
        output_dir=str(out),
        overwrite_output_dir=False,
        resume_from=None,
        batch_size=16,
        learning_rate=1e-4,
        seed=42,
        max_length=128,
        eval_batch_size=64,
        logging_steps=20,
    )
    values.update(changes)
    return AdeSettings(**values)


def release_lock(out):
    (out / LOCK_FILE).unlink(missing_ok=True)  # the lock is released at exit; a test process lives on


def test_settings_differences_name_each_flag():
    recorded = result_settings(args_for("a").record())
    current = result_settings(args_for("b", batch_size=8, seed=1, eval_batch_size=7).record())
    lines = settings_differences(recorded, current)
    assert len(lines) == 2
    assert lines[0].startswith("--batch-size: 16") and lines[1].startswith("--seed: 42")
    assert "eval_batch_size" not in recorded, "a result-neutral setting was recorded"


def test_output_dir_that_is_a_file_is_refused_before_training(tmp_path):
    target = tmp_path / "out"
    target.write_text("my notes", encoding="utf-8")
    with pytest.raises(RunGuardError, match="is a file"):
        guard_output_dir(args_for(target))
    with pytest.raises(RunGuardError, match="is a file"):
        guard_output_dir(args_for(target / "sub"))
    assert target.read_text(encoding="utf-8") == "my notes"


def test_finished_run_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}", encoding="utf-8")
    with pytest.raises(RunGuardError, match="finished run.*--overwrite-output-dir"):
        guard_output_dir(args_for(out))
    release_lock(out)
    guard_output_dir(args_for(out, overwrite_output_dir=True))
    assert json.loads((out / SETTINGS_FILE).read_text())["batch_size"] == 16


def test_started_run_is_refused_without_resume(tmp_path):
    out = tmp_path / "run"
    guard_output_dir(args_for(out))
    release_lock(out)
    with pytest.raises(RunGuardError, match="did not finish.*--resume-from latest"):
        guard_output_dir(args_for(out))


def test_resume_refuses_changed_settings_and_allows_neutral_ones(tmp_path):
    out = tmp_path / "run"
    guard_output_dir(args_for(out))
    release_lock(out)
    with pytest.raises(RunGuardError) as info:
        guard_output_dir(args_for(out, resume_from="latest", batch_size=8, learning_rate=2e-5, seed=3))
    message = str(info.value)
    for flag in ("--batch-size", "--learning-rate", "--seed"):
        assert flag in message
    release_lock(out)
    guard_output_dir(args_for(out, resume_from="latest", eval_batch_size=8, logging_steps=5))


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        with pytest.raises(RunGuardError, match=f"in use by another train.py run \\(process {holder.pid}"):
            guard_output_dir(args_for(out))
    finally:
        holder.kill()
        holder.wait()
    guard_output_dir(args_for(out))  # the holder has ended: its lock is stale and taken over
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_lock_is_released_when_the_run_ends(tmp_path):
    out = tmp_path / "run"
    script = (
        "from modeling_ade.ade_task import AdeSettings\n"
        "from modeling_ade.run_guard import guard_output_dir\n"
        f"guard_output_dir(AdeSettings(output_dir={str(out)!r}, seed=1))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=os.path.dirname(train.__file__))
    assert out.is_dir() and not (out / LOCK_FILE).exists()


@pytest.mark.parametrize(
    "flag, value", [("--batch-size", "0"), ("--epochs", "0"), ("--epochs", "-1"), ("--learning-rate", "0")]
)
def test_bad_numbers_are_rejected_by_argparse_naming_the_flag(flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        train.main(["ade", "--output-dir", "never", flag, value])
    assert info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "task, extra", [("ade", []), ("ner", ["--model", "sentence-transformers/all-MiniLM-L6-v2"])]
)
def test_max_length_too_short_for_a_word_is_refused_up_front(task, extra, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        train.main([task, "--output-dir", str(tmp_path / "o"), "--max-length", "2", *extra])
    assert info.value.code == 2
    assert "--max-length 2 cannot hold" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_check_finite():
    check_finite(torch.tensor(3.0), "here")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(NonFiniteLossError, match="saved no model"):
            check_finite(torch.tensor(bad), "epoch 1")


def test_fit_stops_on_a_nan_loss(tmp_path):
    from modeling_ade.training import fit, make_accelerator

    class NanModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(2, 2)

        def forward(self, x):
            return SimpleNamespace(loss=self.encoder(x).sum() * float("nan"))

    args = TrainSettings(
        output_dir=str(tmp_path),
        model="unused",
        max_length=8,
        report_to="none",
        mixed_precision="no",
        epochs=1,
        learning_rate=1e-3,
        weight_decay=0.0,
        scheduler="constant",
        logging_steps=1,
        keep_checkpoints=0,
    )
    loader = torch.utils.data.DataLoader([{"x": torch.ones(2)}] * 4, batch_size=2)
    with pytest.raises(NonFiniteLossError, match="nan"):
        fit(make_accelerator(args), NanModel(), loader, args)


@pytest.mark.parametrize("model", ["runs/not-there", "./nowhere/model", "/abs/missing/model"])
def test_missing_model_folder_is_named_before_anything_is_written(model, tmp_path):
    result = subprocess.run(
        [sys.executable, train.__file__, "ade", "--model", model, "--output-dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--model {model}: no such model folder" in result.stderr
    assert not (tmp_path / "o").exists()


def test_model_folder_without_config_and_offline_encoder_pass_through(tmp_path, monkeypatch):
    from modeling_ade import encoders

    (tmp_path / "empty").mkdir()
    with pytest.raises(encoders.ModelNameError, match="no config.json"):
        encoders.resolve_model_name(str(tmp_path / "empty"))
    monkeypatch.setenv("M3E_SMALL_DIR", str(tmp_path / "empty"))  # no config.json: not installed
    monkeypatch.setenv("MPNET_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert encoders.resolve_model_name("m3e-small") == "moka-ai/m3e-small"  # a pip user with Hub access
    assert encoders.resolve_model_name("all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(encoders.ModelNameError, match="make setup"):
        encoders.resolve_model_name("m3e-small")
    with pytest.raises(encoders.ModelNameError, match="make mpnet"):
        encoders.resolve_model_name("all-mpnet-base-v2")
    (tmp_path / "mpnet").mkdir()
    (tmp_path / "mpnet" / "config.json").write_text("{}")
    monkeypatch.setenv("MPNET_DIR", str(tmp_path / "mpnet"))  # `make mpnet` done: found by name
    assert encoders.resolve_model_name("all-mpnet-base-v2") == str(tmp_path / "mpnet")


def test_scoring_every_epoch_may_change_on_a_resume():
    """`train.py ner --eval-every-epoch` only adds scores: a run started without it (or before it existed) resumes
    with it, and the other way round."""
    from modeling_ade.ner_task import NerSettings
    from modeling_ade.run_guard import result_settings, settings_differences

    before = result_settings(NerSettings(output_dir="o").record())
    after = result_settings(NerSettings(output_dir="o", eval_every_epoch=True).record())
    assert not settings_differences(before, after)
    assert settings_differences(before, result_settings(NerSettings(output_dir="o", epochs=4).record()))
