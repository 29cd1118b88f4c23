"""Every ``modeling_ade/*_task.py`` has the one task shape that ``train.py`` dispatches to (README: Layout)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import train
from modeling_ade.settings import TrainSettings

TASKS = sorted(train.task_names())
REPO = Path(train.__file__).resolve().parent


REQUIRED = {"joint": ["--dataset", "corpus.jsonl"]}  # a task's own required flags


def test_the_four_tasks_are_found_with_their_help():
    assert TASKS == ["ade", "joint", "mlm", "ner"]
    assert all(train.task_names().values())


@pytest.mark.parametrize("name", TASKS)
def test_task_module_shape(name, tmp_path):
    module = train.task_module(name)
    for attribute in ("HELP", "DESCRIPTION", "add_arguments", "run"):
        assert hasattr(module, attribute), f"{name}_task.py lacks {attribute}"
    settings_class = train.settings_class(module)
    assert issubclass(settings_class, TrainSettings) and settings_class.task == name
    assert module.HELP == train.task_names()[name]  # read without importing the module
    args = train.build_parser(only=name).parse_args(
        [name, "--output-dir", str(tmp_path), *REQUIRED.get(name, [])]
    )
    settings = settings_class.from_args(args)  # every flag lands in a field (no dead flag)
    record = settings.record()
    assert record["task"] == name and json.loads(json.dumps(record)) == record
    assert settings_class(**{k: v for k, v in record.items() if k != "task"}).record() == record


def test_a_settings_field_without_its_flag_is_caught():
    args = train.build_parser(only="ner").parse_args(["ner", "--output-dir", "x"])
    args.not_a_field = 1
    with pytest.raises(TypeError, match="no field for the flag.*--not-a-field"):
        train.settings_class(train.task_module("ner")).from_args(args)


def test_top_level_help_imports_no_task_module_and_no_torch():
    script = (
        "import sys, train\n"
        "try:\n    train.parse_settings(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TASKS:' + ','.join(sorted(m for m in sys.modules if m.endswith('_task'))))\n"
        "print('HEAVY:' + ','.join(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'})))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "joint NER + relation extraction" in result.stdout  # the task list, from HELP
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("TASKS:")]
    assert line == "TASKS:", line
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("HEAVY:")]
    assert line == "HEAVY:", line
