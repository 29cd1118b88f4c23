"""Every command-line flag has argparse help and a README entry (STYLE: no dead, undocumented flags)."""

import argparse
from pathlib import Path

import pytest

import predict
import push_to_hub
import train
from datasets_scripts import ade_corpus, chinese_healthner

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
]


@pytest.mark.parametrize("name, parser", PARSERS, ids=[name for name, _ in PARSERS])
def test_every_flag_has_help_and_a_readme_entry(name, parser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
        for flag in action.option_strings:
            assert f"`{flag}" in README or f" {flag}" in README, f"{name}: {flag} is not in README.md"
