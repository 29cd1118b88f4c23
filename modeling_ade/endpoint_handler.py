"""Custom handler for Hugging Face Inference Endpoints; ``push_to_hub.py`` copies this file unchanged as
``handler.py`` into every full-model repository.

The Hub's hosted widget does not run custom code; an Inference Endpoint with a custom handler does. The
endpoint builds ``EndpointHandler(path)`` once (``path``: the repository folder) and calls it with
``{"inputs": str | list[str], "parameters": {...}}``. Imports only ``torch`` and ``transformers``: the model's
own code is loaded from ``path`` with ``trust_remote_code=True`` (this file is not part of ``modeling_ade``'s
import graph and must stay self-contained).

Task: the custom pipeline saved with the model (``config.custom_pipelines``, e.g. ``ade-extraction``), else
``token-classification`` with ``aggregation_strategy="simple"`` (entity groups, as the Hub's own API does);
``parameters`` override these defaults and go to the pipeline call.

With the environment variable ``MODELING_ADE_ONNX=fp32`` or ``int8`` (an endpoint setting) the model's encoder runs
on ONNX Runtime, from the ``onnx/`` files ``python -m modeling_ade.export`` wrote into the repository (the
``requirements.txt`` of such a repository adds ``onnxruntime``).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import AutoConfig, pipeline

USAGE = 'expected {"inputs": "a text" or ["text", ...], "parameters": {...}}'


def _plain(value: Any) -> Any:
    """Pipeline output -> JSON-serialisable Python (numpy / torch scalars become floats and ints)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):
        return value.tolist()
    return value


class EndpointHandler:
    """``EndpointHandler(path)({"inputs": ..., "parameters": ...})`` -> the pipeline's output.

    One text gives one result (a dict for ``ade-extraction``, a list of entities for ``token-classification``);
    a list of texts gives a list of results, in order.
    """

    def __init__(self, path: str = "") -> None:
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        custom = getattr(config, "custom_pipelines", None) or {}
        self.task = next(iter(custom), "token-classification")
        self.default_parameters = {} if custom else {"aggregation_strategy": "simple"}
        device = 0 if torch.cuda.is_available() else "cpu"
        onnx = os.environ.get("MODELING_ADE_ONNX") or None
        self.pipeline = pipeline(
            self.task,
            model=path,
            trust_remote_code=True,
            device=device,
            model_kwargs={"onnx": onnx} if onnx else None,
        )

    def __call__(self, data: dict[str, Any]) -> list | dict:
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError(USAGE)
        inputs = data["inputs"]
        if not (
            isinstance(inputs, str) or (isinstance(inputs, list) and all(isinstance(t, str) for t in inputs))
        ):
            raise ValueError(f"`inputs` must be a string or a list of strings; {USAGE}")
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError(f"`parameters` must be an object; {USAGE}")
        if isinstance(inputs, list) and not inputs:
            return []
        with torch.inference_mode():
            output = self.pipeline(inputs, **{**self.default_parameters, **parameters})
        return _plain(output)
