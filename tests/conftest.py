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
