"""The Hub-code folder (``modeling_ade/hub``) holds exactly what ``save_pretrained`` ships, and runs on its own."""

import ast
import sys
from pathlib import Path

import pytest
from conftest import tiny_encoder_config
from transformers import pipeline

import modeling_ade.hub
from modeling_ade import (
    BertCrfConfig,
    BertCrfForTokenClassification,
    JointNerReConfig,
    JointNerReForAdeExtraction,
)

HUB = Path(modeling_ade.hub.__file__).parent
HUB_FILES = sorted(p.name for p in HUB.glob("*.py") if p.name != "__init__.py")
OPTIONAL = {"sentencex", "onnxruntime"}  # inside a function: when a document is split; when onnx=... is asked
"""Third-party modules Hub code may import lazily; each is named in the importing file's docstring."""


def imports_of(path: Path) -> tuple[set[str], set[str], set[str]]:
    """``(module-level absolute roots, relative module names, roots imported inside functions)`` of a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top, relative, lazy = set(), set(), set()
    top_nodes = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level == 1, f"{path.name}: only sibling imports (from .x import y)"
                relative.add(node.module)
                continue
            roots = {node.module.split(".")[0]}
        else:
            continue
        (top if id(node) in top_nodes else lazy).update(roots)
    return top, relative, lazy


@pytest.mark.parametrize("name", HUB_FILES)
def test_hub_file_imports_only_torch_transformers_and_siblings(name):
    top, relative, lazy = imports_of(HUB / name)
    allowed = set(sys.stdlib_module_names) | {"__future__", "torch", "transformers"}
    assert top <= allowed, f"{name} imports {top - allowed} at module level"
    assert {f"{m}.py" for m in relative} <= set(HUB_FILES), f"{name}: relative import outside the folder"
    assert lazy <= allowed | OPTIONAL, f"{name} imports {lazy - allowed - OPTIONAL} inside a function"
    text = (HUB / name).read_text(encoding="utf-8")
    for module in lazy & OPTIONAL:
        assert module in text.split('"""')[1], f"{name}: the optional import {module} is not in its docstring"


def test_save_pretrained_ships_exactly_the_hub_folder(tmp_path):
    """The two task models (the joint one with its pipeline) ship every Hub file and nothing else."""
    joint = JointNerReForAdeExtraction(JointNerReConfig(encoder_config=tiny_encoder_config(8)))
    crf = BertCrfForTokenClassification(
        BertCrfConfig(encoder_config=tiny_encoder_config(8), id2label={0: "O", 1: "B-X", 2: "I-X"})
    )
    from transformers import BertTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])}
    tokenizer = BertTokenizerFast(vocab=vocab)
    pipeline("ade-extraction", model=joint, tokenizer=tokenizer).save_pretrained(tmp_path / "joint")
    crf.save_pretrained(tmp_path / "crf")
    shipped = {p.name for folder in ("joint", "crf") for p in (tmp_path / folder).glob("*.py")}
    assert sorted(shipped) == HUB_FILES
