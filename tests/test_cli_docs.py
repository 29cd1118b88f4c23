"""Every command-line flag has argparse help and a README entry (STYLE: no dead, undocumented flags)."""

import argparse
from pathlib import Path

import pytest

import predict
import push_to_hub
import train
from datasets_scripts import ade_corpus, chinese_healthner
from modeling_ade import export

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def all_parsers(parser: argparse.ArgumentParser, name: str):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from all_parsers(sub, f"{name} {sub_name}")


PARSERS = [
    *all_parsers(train.build_parser(), "train.py"),
    *all_parsers(predict.build_parser(), "predict.py"),
    *all_parsers(predict.build_signals_parser(), "predict.py signals"),
    *all_parsers(push_to_hub.build_parser(), "push_to_hub.py"),
    *all_parsers(ade_corpus.build_parser(), "ade_corpus"),
    *all_parsers(chinese_healthner.build_parser(), "chinese_healthner"),
    *all_parsers(export.build_parser(), "python -m modeling_ade.export"),
]


@pytest.mark.parametrize("name, parser", PARSERS, ids=[name for name, _ in PARSERS])
def test_every_flag_has_help_and_a_readme_entry(name, parser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
        for flag in action.option_strings:
            assert f"`{flag}" in README or f" {flag}" in README, f"{name}: {flag} is not in README.md"


def readme_commands() -> list[tuple[str, list[str]]]:
    """Every command of a README ``bash`` block that runs one of this project's command-line tools, as
    ``(tool, arguments)``: optional parts written ``[--flag VALUE]`` are left out, commands with a ``...``
    placeholder skipped, launchers (``accelerate launch``, ``torchrun``) and their own flags looked past."""
    import re
    import shlex

    tools = {
        "train.py": "train.py",
        "predict.py": "predict.py",
        "push_to_hub.py": "push_to_hub.py",
        "modeling_ade.export": "export",
        "datasets_scripts.ade_corpus": "ade_corpus",
        "datasets_scripts.chinese_healthner": "chinese_healthner",
    }
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words or "..." in words:
                continue
            found = [i for i, w in enumerate(words) if w.split("/")[-1] in tools]
            if not found:
                continue
            tool, arguments, optional = tools[words[found[0]].split("/")[-1]], [], False
            for word in words[found[0] + 1 :]:
                if word.startswith("["):
                    optional = True
                if not optional:
                    arguments.append(word)
                if word.endswith("]"):
                    optional = False
            if tool == "predict.py" and arguments[:1] == ["signals"]:
                tool, arguments = "predict.py signals", arguments[1:]
            commands.append((tool, arguments))
    return commands


README_COMMANDS = readme_commands()


def test_the_readme_has_its_commands():
    tools = {tool for tool, _ in README_COMMANDS}
    assert len(README_COMMANDS) >= 30 and {"train.py", "predict.py", "push_to_hub.py", "export"} <= tools


@pytest.mark.parametrize(
    "tool, arguments", README_COMMANDS, ids=[" ".join(c[1][:3]) for c in README_COMMANDS]
)
def test_every_readme_command_parses(tool, arguments, capsys):
    """The README's commands cannot drift from the tools' flags: each one parses with today's parser."""
    parsers = {
        "train.py": train.build_parser,
        "predict.py": predict.build_parser,
        "predict.py signals": predict.build_signals_parser,
        "push_to_hub.py": push_to_hub.build_parser,
        "export": export.build_parser,
        "ade_corpus": ade_corpus.build_parser,
        "chinese_healthner": chinese_healthner.build_parser,
    }
    try:
        parsers[tool]().parse_args(arguments)
    except SystemExit:
        pytest.fail(f"README: `{tool} {' '.join(arguments)}` does not parse: {capsys.readouterr().err}")
