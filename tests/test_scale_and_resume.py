"""Scale, resilience and speed options, end to end through ``train.py ade`` on a tiny encoder.

- 2 CPU processes (``ACCELERATE_USE_CPU=true torchrun``, the README's command: real DDP over gloo) with batch 4
  reach the parameters and
  metrics of 1 process with batch 4 and 2 accumulation steps: the same 8 sentences make every optimizer step
  (process p takes batches p, p + 2, ...; accumulation takes them in turn). Dropout is off in this tiny model,
  because two processes draw different dropout masks than one. Tolerance: 1e-5 absolute on parameters (sums
  of the same gradients in another order), 1e-6 on the metrics (float32 losses).
- A run killed by SIGKILL right after a checkpoint mid-epoch and resumed with ``--resume-from latest`` ends
  with exactly the parameters and metrics of an uninterrupted run (dropout on, so the RNG must be restored).
- ``torchrun`` with 2 CPU processes and no ``ACCELERATE_USE_CPU`` is refused with a clear message.
- ``--torch-compile`` trains through the compiled module and saves the plain model; the accelerate config
  files in configs/ load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_encoder_config
from safetensors.torch import load_file

import train
from modeling_ade.checkpointing import (
    PARTIAL_PREFIX,
    STATE_FILE,
    CheckpointError,
    find_checkpoint,
    list_checkpoints,
)
from modeling_ade.training import LaunchError, check_launch

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.data, pytest.mark.slow]


def make_tiny_encoder(folder: Path, tokenizer, dropout: float) -> Path:
    from transformers import BertModel

    torch.manual_seed(0)
    config = tiny_encoder_config(
        tokenizer.vocab_size, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def ade_args(model: Path, data_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "ade",
        "--model",
        str(model),
        "--output-dir",
        str(out),
        "--data-dir",
        str(data_dir),
        "--fold",
        "2",
        "--max-train-samples",
        "40",  # 10 batches of 4: an even number, so 2 processes see the same batches as accumulation
        "--max-eval-samples",
        "13",  # not a multiple of the evaluation batch x processes: gather_for_metrics must drop padding
        "--eval-batch-size",
        "4",
        "--batch-size",
        "4",
        "--epochs",
        "2",
        "--learning-rate",
        "1e-3",
        "--report-to",
        "none",
        *extra,
    ]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model.safetensors")


def flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def scores(out: Path) -> dict:
    """Every evaluation number of a run (overlap kept and removed) and its per-epoch training losses."""
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "num_test_sentences": metrics["num_test_sentences"],
        "train_loss": [h["train_loss"] for h in metrics["train_history"]],
        **flatten({o: metrics[o] for o in ("overlap_kept", "overlap_removed")}),
    }


def assert_same_scores(a: dict, b: dict, tol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=tol), key


# ----------------------------------------------------------------------------------------------------
# distributed


def run_train(
    argv: list[str],
    script: str | None = None,
    processes: int = 1,
    use_cpu: bool = True,
    launcher: str = "torchrun",
) -> subprocess.CompletedProcess:
    """``train.py`` in a fresh interpreter: ``python train.py``, ``python -c script``, or, for ``processes`` > 1,
    the README's two CPU commands: ``ACCELERATE_USE_CPU=true torchrun ...`` or ``ACCELERATE_USE_CPU=true
    accelerate launch --multi_gpu ...`` (``use_cpu=False`` leaves the variable out). Never a fork of this pytest
    process: the OpenMP and tokenizer thread pools it has started do not survive fork, and forked children
    can hang."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(
        OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES=""
    )
    bin_dir = Path(sys.executable).parent
    if script:
        command = [sys.executable, "-c", script]
    elif processes > 1:
        if use_cpu:
            env["ACCELERATE_USE_CPU"] = "true"
        if launcher == "torchrun":
            command = [str(bin_dir / "torchrun"), "--standalone", "--nproc_per_node", str(processes)]
        else:
            port = _free_port()
            command = [
                str(bin_dir / "accelerate"),
                "launch",
                "--multi_gpu",
                "--num_processes",
                str(processes),
            ]
            command += ["--main_process_port", str(port)]
        command += [str(REPO / "train.py"), *argv]
    else:
        command = [sys.executable, str(REPO / "train.py"), *argv]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_launch_check_refuses_processes_that_would_train_alone():
    check_launch(1, {})
    check_launch(2, {"WORLD_SIZE": "2"})
    with pytest.raises(LaunchError, match="ACCELERATE_USE_CPU=true"):
        check_launch(1, {"WORLD_SIZE": "2"})


def test_two_cpu_processes_match_one_process_with_accumulation(ade_data_dir, minilm_tokenizer, tmp_path):
    model = make_tiny_encoder(tmp_path / "tiny", minilm_tokenizer, dropout=0.0)
    # dropout off (see the module docstring); long enough that the model predicts entities and relations
    no_dropout = [
        "--classifier-dropout",
        "0",
        "--epochs",
        "4",
        "--learning-rate",
        "5e-3",
        "--max-train-samples",
        "80",
    ]
    single = tmp_path / "one_process"
    # both runs in fresh processes with one thread each: Adam turns float noise in near-zero gradients (the
    # attention key biases) into full-size steps, so 1 thread against 2 differs by ~5e-4 after 4 epochs
    check(run_train(ade_args(model, ade_data_dir, single, *no_dropout, "--gradient-accumulation-steps", "2")))
    double = tmp_path / "two_processes"
    launched = check(run_train(ade_args(model, ade_data_dir, double, *no_dropout), processes=2))
    assert "2 process(es), DistributedType.MULTI_CPU" in launched.stderr
    # 80 sentences with relations + 80 negative sentences, batch 4, 2 processes: 20 batches per process and epoch
    assert "epoch 1/4: 100%|██████████| 20/20" in launched.stderr

    one, two = weights(single), weights(double)
    assert one.keys() == two.keys()
    start = load_file(model / "model.safetensors")
    moved = [k for k in one if k.startswith("encoder.") and k[len("encoder.") :] in start]
    assert moved and any(not torch.equal(one[k], start[k[len("encoder.") :]]) for k in moved), (
        "nothing trained"
    )
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=0, msg=key)
    assert_same_scores(scores(double), scores(single), tol=1e-6)
    evaluated = scores(double)
    assert evaluated["num_test_sentences"] == 13 and evaluated["overlap_kept.n_documents"] == 13
    assert evaluated["overlap_kept.n_pred_entities"] > 0 and evaluated["overlap_kept.re_f1_strict"] > 0, (
        "a model that predicts nothing tests little"
    )
    history = json.loads((double / "metrics.json").read_text())["train_history"]
    assert len(history) == 4


def test_ner_and_mlm_evaluate_every_sample_once_under_two_processes(minilm_tokenizer, tmp_path):
    """The other two tasks under 2 processes, started by ``accelerate launch``: evaluation of an odd number of
    samples gathers each exactly once. MLM's "before" score (the untrained model on fixed masks) must equal the
    1-process one."""
    model = make_tiny_encoder(tmp_path / "tiny", minilm_tokenizer, dropout=0.0)
    words = "aspirin caused a rash and fever that resolved after the drug was stopped".split()
    tags = {"aspirin": "B-DRUG", "rash": "B-AE", "fever": "B-AE"}
    rows = [
        {"tokens": words[i % 5 :], "ner_tags": [tags.get(w, "O") for w in words[i % 5 :]]} for i in range(21)
    ]
    data = tmp_path / "ner.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    text = tmp_path / "notes.txt"
    # 45 distinct lines (train.py mlm drops duplicates): 9 held out by --validation-split 0.2
    text.write_text(
        "\n".join(" ".join(words[i % 7 :]) + f" on day {i}" for i in range(45)) + "\n", encoding="utf-8"
    )
    common = ["--model", str(model), "--epochs", "1", "--batch-size", "4", "--eval-batch-size", "2"]
    common += ["--report-to", "none", "--max-length", "32"]

    def argv(task: str, out: Path) -> list[str]:
        if task == "ner":
            return [
                "ner",
                *common,
                "--output-dir",
                str(out),
                "--dataset",
                str(data),
                "--eval-split",
                "train[:13]",
            ]
        return [
            "mlm",
            *common,
            "--output-dir",
            str(out),
            "--train-file",
            str(text),
            "--validation-split",
            "0.2",
        ]

    for task in ("ner", "mlm"):
        train.main(argv(task, tmp_path / f"{task}_1"))
        launched = check(run_train(argv(task, tmp_path / f"{task}_2"), processes=2, launcher="accelerate"))
        assert "2 process(es), DistributedType.MULTI_CPU" in launched.stderr
        one = json.loads((tmp_path / f"{task}_1" / "metrics.json").read_text())
        two = json.loads((tmp_path / f"{task}_2" / "metrics.json").read_text())
        if task == "ner":
            assert one["num_eval_sentences"] == two["num_eval_sentences"] == 13
            assert one["n_gold_entities"] == two["n_gold_entities"] > 0
        else:
            assert one["before"]["examples"] == two["before"]["examples"] == 9
            assert one["before"]["masked_tokens"] == two["before"]["masked_tokens"] > 0
            assert two["before"]["mlm_loss"] == pytest.approx(one["before"]["mlm_loss"], rel=1e-5)


# ----------------------------------------------------------------------------------------------------
# resume

KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import modeling_ade.training as training
import train

save, saved = training.save_checkpoint, []

def save_then_die(*args, **kwargs):  # a real SIGKILL right after the 2nd checkpoint is on disk
    saved.append(save(*args, **kwargs))
    if len(saved) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return saved[-1]

training.save_checkpoint = save_then_die
sys.argv = ["train.py", *{argv!r}]
sys.exit(train.cli())
"""


def test_killed_run_resumes_to_the_uninterrupted_result(ade_data_dir, minilm_tokenizer, tmp_path):
    model = make_tiny_encoder(tmp_path / "tiny", minilm_tokenizer, dropout=0.1)
    options = ["--gradient-accumulation-steps", "2", "--checkpoint-every", "2", "--keep-checkpoints", "2"]
    whole = tmp_path / "uninterrupted"
    check(run_train(ade_args(model, ade_data_dir, whole, *options)))

    out = tmp_path / "interrupted"
    argv = ade_args(model, ade_data_dir, out, *options)
    killed = run_train(argv, KILLER.format(repo=str(REPO), argv=argv))
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (out / "metrics.json").exists()
    latest = find_checkpoint(out, "latest")
    state = json.loads((latest / STATE_FILE).read_text())
    # 10 optimizer steps per epoch (40 sentences with relations + 40 negatives = 20 batches, / 2): killed at
    # step 4, in the middle of epoch 1
    assert state["global_step"] == 4 and state["epoch"] == 0 and state["batches_done"] == 8
    # a checkpoint half-written by a crash is never picked up
    shutil.copytree(latest, latest.parent / f"{PARTIAL_PREFIX}step_00000099")
    (latest.parent / f"{PARTIAL_PREFIX}step_00000099" / STATE_FILE).unlink()
    assert find_checkpoint(out, "latest") == latest

    resumed = check(run_train([*argv, "--resume-from", "latest"]))
    assert "resumed from" in resumed.stderr and "step 4, epoch 1, 8 of its 20 batches done" in resumed.stderr

    a, b = weights(whole), weights(out)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert_same_scores(scores(out), scores(whole), tol=0)
    names = [p.name for p in list_checkpoints(out)]
    assert names == ["step_00000018", "step_00000020"]  # --keep-checkpoints 2
    assert not list((out / "checkpoints").glob(f"{PARTIAL_PREFIX}*")), "partial checkpoints are cleaned up"


def test_resume_from_something_else_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        find_checkpoint(tmp_path, str(tmp_path))
    assert find_checkpoint(tmp_path, "latest") is None  # nothing yet: a job script may always pass it


def test_plain_torchrun_on_cpu_is_refused(ade_data_dir, minilm_tokenizer, tmp_path):
    model = make_tiny_encoder(tmp_path / "tiny", minilm_tokenizer, dropout=0.0)
    argv = ade_args(model, ade_data_dir, tmp_path / "out", "--max-train-samples", "8")
    result = run_train(argv, processes=2, use_cpu=False)
    assert result.returncode != 0
    assert "launched as 2 processes" in result.stderr and "ACCELERATE_USE_CPU=true" in result.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


# ----------------------------------------------------------------------------------------------------
# accelerate config files

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_files_load_in_accelerate(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.main_training_function == "main"


# ----------------------------------------------------------------------------------------------------
# speed options


def test_torch_compile_trains_a_compiled_model_and_saves_the_plain_one(
    ade_data_dir, minilm_tokenizer, tmp_path, monkeypatch
):
    """``--torch-compile`` goes through Accelerate's dynamo plugin. The inductor backend needs minutes of C++
    compilation on CPU, so here every ``torch.compile`` call is sent to the ``eager`` backend: what is tested
    is that training runs through the compiled wrapper, that the saved model is the plain one, and that the
    setting does not leak into the next run in the same process (Accelerate keeps it in a singleton)."""
    calls = []
    compile_ = torch.compile

    def eager_compile(model, **kwargs):
        calls.append(kwargs.get("backend"))
        return compile_(model, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch, "compile", eager_compile)
    model = make_tiny_encoder(tmp_path / "tiny", minilm_tokenizer, dropout=0.0)
    out = tmp_path / "out"
    train.main(
        ade_args(model, ade_data_dir, out, "--epochs", "1", "--max-train-samples", "8", "--torch-compile")
    )
    assert calls == ["inductor"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "joint_ner_re"
    assert not any(key.startswith("_orig_mod") for key in weights(out))
    assert json.loads((out / "training_args.json").read_text())["torch_compile"] is True
    train.main(ade_args(model, ade_data_dir, tmp_path / "plain", "--epochs", "1", "--max-train-samples", "8"))
    assert calls == ["inductor"], "a run without --torch-compile compiled the model"


def test_task_models_use_sdpa_attention_by_default(minilm_tokenizer, tmp_path):
    from modeling_ade.hub.modeling_bert_crf import BertCrfForTokenClassification
    from modeling_ade.hub.modeling_joint_ner_re import JointNerReForAdeExtraction

    model = make_tiny_encoder(tmp_path / "tiny", minilm_tokenizer, dropout=0.0)
    for task_model in (
        JointNerReForAdeExtraction.from_encoder(str(model)),
        BertCrfForTokenClassification.from_encoder(str(model), label_list=["O", "B-X", "I-X"]),
    ):
        assert task_model.encoder.config._attn_implementation == "sdpa"


def test_pruning_is_atomic(tmp_path, monkeypatch):
    """#13: an interruption during pruning must not leave a half-deleted checkpoint that still counts."""
    from modeling_ade import checkpointing

    root = tmp_path / "checkpoints"
    for step in (1, 2):
        folder = root / f"step_{step:08d}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"x")
        (folder / checkpointing.STATE_FILE).write_text("{}")

    def interrupted_rmtree(path, *args, **kwargs):  # deletes the weights, then Ctrl-C
        (Path(path) / "model.safetensors").unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpointing.shutil, "rmtree", interrupted_rmtree)
    with pytest.raises(KeyboardInterrupt):
        checkpointing.prune(root / "step_00000001")
    assert [p.name for p in checkpointing.list_checkpoints(tmp_path)] == ["step_00000002"]


def test_damaged_checkpoint_is_named_and_latest_falls_back(ade_data_dir, minilm_tokenizer, tmp_path):
    """#13: a truncated checkpoint file used to end in a safetensors/JSON traceback, and a corrupt RNG state was
    skipped silently by Accelerate."""
    from modeling_ade.checkpointing import list_checkpoints

    model = make_tiny_encoder(tmp_path / "tiny", minilm_tokenizer, dropout=0.1)
    out = tmp_path / "out"
    options = ["--checkpoint-every", "5", "--keep-checkpoints", "0", "--epochs", "1"]
    check(run_train(ade_args(model, ade_data_dir, out, *options)))
    saved = list_checkpoints(out)
    assert len(saved) >= 2
    newest = saved[-1]
    weights_file = next(newest.rglob("*.safetensors"))
    weights_file.write_bytes(weights_file.read_bytes()[:100])  # truncated
    named = run_train(ade_args(model, ade_data_dir, out, *options, "--resume-from", str(newest)))
    assert named.returncode == 2 and "Traceback" not in named.stderr
    assert f"{weights_file}: damaged checkpoint file" in named.stderr
    latest = check(run_train(ade_args(model, ade_data_dir, out, *options, "--resume-from", "latest")))
    assert f"falling back to the previous checkpoint {saved[-2]}" in latest.stderr
    assert f"resumed from {saved[-2]}" in latest.stderr
    rng = next(saved[-2].rglob("random_states_0.pkl"))
    rng.write_bytes(b"not a pickle")
    refused = run_train(ade_args(model, ade_data_dir, out, *options, "--resume-from", str(saved[-2])))
    assert refused.returncode == 2 and f"{rng}: damaged checkpoint file" in refused.stderr
