"""What a ``train.py`` output folder holds and how it rebuilds itself (not Hub code).

A folder holds either a full model (``config.json`` naming its Auto class and code in ``auto_map``, weights,
tokenizer) or a LoRA adapter (``adapter_config.json`` + the task model's ``config.json``; see
:mod:`modeling_ade.lora`). :func:`load_trained` loads either kind; :func:`code_files` lists the Python files a
config names, which ship with the model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only where /proc says nothing)
    os.umask(mask)
    return mask


def make_readable(folder: Path) -> None:
    """Give every file under ``folder`` the read permissions a new file gets under the umask (0644 with the usual
    022): safetensors writes the weights with mode 0600, so otherwise they alone would be unreadable to the group
    or the web server that shares the run folder."""
    readable = 0o444 & ~_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & readable != readable:
            path.chmod(path.stat().st_mode | readable)


def auto_model_class(config):
    """The ``transformers`` Auto class a saved config names in ``auto_map`` (``AutoModel``,
    ``AutoModelForTokenClassification``...), ``AutoModel`` when it names none. The task models are registered
    with their Auto classes when ``modeling_ade`` is imported, so the class comes from that registry."""
    import transformers

    names = [k for k in getattr(config, "auto_map", None) or {} if k != "AutoConfig"] or ["AutoModel"]
    return getattr(transformers, names[0])


def code_files(folder: Path, config: dict) -> list[str]:
    """The Python files ``config.json`` names (``auto_map``, ``custom_pipelines``) and, recursively, the sibling
    files they import relatively, as file names. Files that are missing are returned too (the caller checks)."""
    modules = []
    for ref in (config.get("auto_map") or {}).values():
        for item in ref if isinstance(ref, list) else [ref]:
            if isinstance(item, str) and "--" not in item:  # "repo--module.Class" lives in another repo
                modules.append(item.rsplit(".", 1)[0])
    for spec in (config.get("custom_pipelines") or {}).values():
        if isinstance(spec, dict) and isinstance(spec.get("impl"), str) and "--" not in spec["impl"]:
            modules.append(spec["impl"].rsplit(".", 1)[0])
    seen: list[str] = []
    while modules:
        name = f"{modules.pop(0)}.py"
        if name in seen:
            continue
        seen.append(name)
        path = folder / name
        if path.is_file():
            source = path.read_text(encoding="utf-8")
            modules += re.findall(r"^\s*from\s+\.(\w+)\s+import", source, flags=re.MULTILINE)
            modules += re.findall(r"^\s*import\s+\.(\w+)", source, flags=re.MULTILINE)
    return seen


def load_trained(
    folder: str | Path, encoder: str | None = None, merge: bool = False, trust_remote_code: bool = False
):
    """The trained model in a ``train.py`` output folder, in eval mode, whichever kind the folder holds.

    A full model loads through the Auto class its ``config.json`` names (:func:`auto_model_class`; the code is
    this package's, or with ``trust_remote_code`` the folder's own). An adapter folder (``adapter_config.json``)
    is rebuilt on its base (:func:`load_adapter_model`; ``encoder`` overrides the base encoder) and, with
    ``merge``, merged into a plain model of the task's class (same outputs, no PEFT at inference).
    """
    from transformers import AutoConfig

    folder = Path(folder)
    if (folder / "adapter_config.json").is_file():
        from .lora import load_adapter_model

        model = load_adapter_model(folder, encoder)
        return model.merge_and_unload().eval() if merge else model
    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    return auto_model_class(config).from_pretrained(folder, trust_remote_code=trust_remote_code).eval()
