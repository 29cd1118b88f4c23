"""The README's first hour, as a newcomer follows it: `make demo`'s script (with a tiny model), then every command
of "3. Use your model" and of the ONNX section exactly as the README prints them, only with the demo folder moved
to a temporary one."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, wait_until_listening

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = "--num-hidden-layers 1 --max-train-samples 48 --max-eval-samples 24 --batch-size 8"


def readme_block(heading: str) -> list[str]:
    """The shell lines of the first ``bash`` block after ``heading`` in the README."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(heading, 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def use_your_model_commands() -> list[str]:
    """The README's "3. Use your model" block."""
    return readme_block("**3. Use your model**")


@pytest.mark.data
@pytest.mark.slow
def test_demo_then_every_use_command_runs_as_written(tmp_path, ade_data_dir, healthner_data_dir):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "ADE_CORPUS_DIR": str(ade_data_dir),
        "CHINESE_HEALTHNER_DIR": str(healthner_data_dir),
        "DEMO_OUTPUT_DIR": str(tmp_path / "runs" / "demo"),
        "DEMO_EPOCHS": "1",
        "DEMO_TRAIN_ARGS": TINY,
    }
    # make demo = make setup (done: this test runs in the installed .venv) + scripts/demo.sh
    demo = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    model = tmp_path / "runs" / "demo" / "model"
    assert f"metrics: {model}/metrics.json" in demo.stdout and (model / "model.safetensors").is_file()

    commands = use_your_model_commands()
    assert len(commands) == 3 and all("runs/demo" in c for c in commands)
    # run from a folder that looks like the clone (its .venv, scripts and package), so that the relative paths
    # of the README, runs/demo included, mean what they mean there
    for name in (".venv", "predict.py", "modeling_ade"):
        if (REPO_ROOT / name).exists():
            (tmp_path / name).symlink_to(REPO_ROOT / name)
    for command in commands:
        args = shlex.split(command.split("  #", 1)[0])  # the README's trailing comment is not part of it
        assert args[0] == ".venv/bin/python"
        if not (tmp_path / ".venv").exists():
            args[0] = sys.executable
        if "app.py" in command:  # a server: started, then checked to answer, then stopped
            port = free_port()
            log = tmp_path / "app.log"  # a file, not a pipe: a full pipe would stall the server
            with log.open("w") as handle:
                server = subprocess.Popen(
                    [*args, "--port", str(port)],
                    cwd=tmp_path,
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_until_listening(server, port, lambda log=log: log.read_text()[-3000:])
            finally:
                server.terminate()
                server.wait(timeout=30)
            continue
        result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (command, result.stderr[-3000:])
        if "predict.py" in command:
            rows = [json.loads(line) for line in (tmp_path / "notes.jsonl").read_text().splitlines()]
            assert len(rows) == 3 and (tmp_path / "notes.html").is_file()
        else:  # the stranger's pipeline prints its result
            assert re.search(r"'entities': \[", result.stdout), result.stdout[-2000:]
    # then the ONNX section's commands on the same model: export, and predict.py on the int8 encoder
    onnx_commands = readme_block("### Fast CPU inference: ONNX Runtime")
    assert len(onnx_commands) == 2 and all("runs/demo/model" in c for c in onnx_commands)
    (tmp_path / "notes.jsonl").unlink()  # written again by the ONNX predict.py below
    for command in onnx_commands:
        args = shlex.split(command.split("  #", 1)[0])
        if not (tmp_path / ".venv").exists():
            args[0] = sys.executable
        result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (command, result.stderr[-3000:])
    assert (model / "onnx" / "encoder_int8.onnx").is_file()
    rows = [json.loads(line) for line in (tmp_path / "notes.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all({"entities", "relations"} <= set(row) for row in rows)
