"""One CLI for every training task; runs unchanged under ``python train.py`` and ``accelerate launch train.py``.

    python train.py ade --model all-MiniLM-L6-v2 --output-dir runs/ade --fold 0
    python train.py ade --model all-MiniLM-L6-v2 --output-dir runs/ade-cv --cv 10
    python train.py ner --model m3e-small --output-dir runs/ner --head crf --layer-decay 0.8333
    python train.py ade --output-dir runs/ade-lora --fold 0 --lora-r 8 --learning-rate 5e-4   # LoRA adapter
    python train.py mlm --output-dir runs/mlm --dataset ade_corpus:negatives --exclude-fold 0

``python train.py TASK --help`` documents every flag.

A dispatcher: every ``modeling_ade/<name>_task.py`` is a task ``<name>``. Each holds ``HELP``, ``DESCRIPTION``,
a settings dataclass (``Settings``-suffixed, a subclass of :class:`modeling_ade.settings.TrainSettings`),
``add_arguments(parser)`` and ``run(settings)``. Only the chosen task's module is imported, and
``train.py --help`` imports nothing of the package (whose ``__init__`` registers the models, so loads torch).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modeling_ade.settings import TrainSettings

TASK_DIR = Path(__file__).resolve().parent / "modeling_ade"


def task_names() -> dict[str, str]:
    """Task name -> its one-line ``HELP``, read from ``modeling_ade/*_task.py`` without importing them."""
    names = {}
    for path in sorted(TASK_DIR.glob("*_task.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        help_text = next(
            (
                ast.literal_eval(node.value)
                for node in tree.body
                if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "HELP" for t in node.targets)
            ),
            "",
        )
        names[path.name.removesuffix("_task.py")] = help_text
    return names


def task_module(name: str):
    """The module of task ``name`` (``modeling_ade.<name>_task``)."""
    return importlib.import_module(f"modeling_ade.{name}_task")


def settings_class(module) -> type[TrainSettings]:
    """The task's settings dataclass: the :class:`~modeling_ade.settings.TrainSettings` subclass defined in its
    module."""
    from modeling_ade.settings import TrainSettings

    (cls,) = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, TrainSettings) and v.__module__ == module.__name__
    ]
    return cls


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every task, or with ``only`` the flags of that task alone (the others listed by name only, their
    modules not imported; ``only=""`` imports none)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, help_text in task_names().items():
        if only is not None and name != only:
            tasks.add_parser(name, help=help_text)
            continue
        from modeling_ade.settings import add_common_arguments

        module = task_module(name)
        sub = tasks.add_parser(name, help=help_text, description=module.DESCRIPTION)
        add_common_arguments(sub, settings_class(module))
        module.add_arguments(sub)
    return parser


def parse_settings(argv: list[str] | None = None) -> TrainSettings:
    """The typed settings of a command line; a bad value exits with the parser's usage and the flag named."""
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen if chosen in task_names() else "")  # "": no task module imported
    args = parser.parse_args(argv)
    try:
        settings = settings_class(task_module(args.task)).from_args(args)
    except ValueError as err:
        parser.error(str(err))
    check_max_length(settings, parser)
    return settings


def main(argv: list[str] | None = None) -> dict:
    settings = parse_settings(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    from modeling_ade.run_guard import guard_output_dir, release_lock

    # before any data or model is loaded: nothing is trained into a folder that refuses
    lock = guard_output_dir(settings)
    try:
        return task_module(settings.task).run(settings)
    finally:
        if lock is not None:
            release_lock(lock)


def check_max_length(settings: TrainSettings, parser: argparse.ArgumentParser) -> None:
    """Refuse a ``--max-length`` that cannot hold the tokenizer's special tokens plus one word (two with NSP's
    sentence pairs), the same way for every task."""
    from transformers import AutoTokenizer

    from modeling_ade.encoders import resolve_model_name

    path = resolve_model_name(
        settings.model
    )  # a missing --model folder is named here, before anything is written
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        return  # the task reports an unloadable --model with its own message
    pair = settings.sentence_pairs
    least = tokenizer.num_special_tokens_to_add(pair=pair) + (2 if pair else 1)
    if settings.max_length < least:
        parser.error(
            f"--max-length {settings.max_length} cannot hold the tokenizer's special tokens and "
            f"{'two sentences' if pair else 'one word'}: it must be at least {least}"
        )


def input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input (data folder, corpus file, dataset column, checkpoint, launch, output
    folder, model name, a diverging loss): reported as one line, not a traceback. Imported only when an error
    happens, so ``--help`` stays light."""
    from datasets_scripts.ade_files import AdeFormatError
    from datasets_scripts.common import DataDirError, NotUtf8Error
    from datasets_scripts.healthner_files import HealthNerFormatError
    from datasets_scripts.relation_formats import CorpusFormatError
    from modeling_ade.checkpointing import CheckpointError
    from modeling_ade.encoders import ModelNameError
    from modeling_ade.run_guard import RunGuardError
    from modeling_ade.training import LaunchError, NonFiniteLossError

    return (
        DataDirError,
        AdeFormatError,
        HealthNerFormatError,
        CorpusFormatError,
        NotUtf8Error,
        CheckpointError,
        LaunchError,
        RunGuardError,
        NonFiniteLossError,
        ModelNameError,
    )


def cli() -> int:
    """Command-line entry: bad input is one clear message, exit 2 (:func:`input_errors`)."""
    try:
        return 0 if main() is not None else 1
    except Exception as err:
        if not isinstance(err, input_errors()):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
