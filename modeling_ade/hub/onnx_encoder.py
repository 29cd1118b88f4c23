"""The encoder on ONNX Runtime: a stand-in for the PyTorch encoder of a task model, for fast CPU inference.

``python -m modeling_ade.export DIR`` writes the encoder of a trained model as ``DIR/onnx/encoder.onnx`` (float32)
and, with ``--int8``, ``DIR/onnx/encoder_int8.onnx`` (dynamic int8 quantization of its matrix products). A model
loaded with ``from_pretrained(DIR, onnx="fp32" | "int8")`` (or ``pipeline(..., model_kwargs={"onnx": "int8"})``)
runs its encoder there; its heads, the CRF's Viterbi, the entity decoding and the pair scoring stay in PyTorch,
so the outputs have the same form. Only the encoder's last hidden state crosses over.

The rows of a batch run in groups of similar length, each cut to its own longest row (:func:`length_groups`): the
matrix products skip most of the padding a batch of mixed lengths carries. Padding positions of the
returned hidden state are zeros (every head reads real tokens only).

Hub code: imports only ``torch``, ``transformers`` and, when an ONNX encoder is used, ``onnxruntime``
(``pip install onnxruntime``).
"""

from __future__ import annotations

import os

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

ONNX_FOLDER = "onnx"
ONNX_FILES = {"fp32": "encoder.onnx", "int8": "encoder_int8.onnx"}
"""The encoder files under ``ONNX_FOLDER``, by variant."""


EXPORT_RECORD = "export.json"
"""Written beside the encoder files: the fingerprint of the encoder weights they were traced from."""


def encoder_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over an encoder's weights (names and float32 values, in name order): an export is checked against the
    weights it is used with, so retraining into the same folder cannot pair new heads with an old encoder."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def onnx_file(variant: str) -> str:
    """``"fp32"`` / ``"int8"`` -> the path of that encoder file inside a model folder (``onnx/encoder.onnx``)."""
    if variant not in ONNX_FILES:
        raise ValueError(f"onnx={variant!r}: expected one of {sorted(ONNX_FILES)}")
    return f"{ONNX_FOLDER}/{ONNX_FILES[variant]}"


def length_groups(lengths: list[int], run_cost: int = 64) -> list[list[int]]:
    """Rows cut into groups of similar length, each to be run cut to its own longest row: the grouping of the rows
    sorted by length that minimises the tokens computed (``rows x longest`` per group) plus ``run_cost`` tokens for
    each run (exact, by dynamic programming over the sorted rows). A batch of equal lengths stays one group."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sizes = [lengths[i] for i in order]
    best = [0.0] + [float("inf")] * len(sizes)  # best[j]: cheapest grouping of the first j sorted rows
    cut = [0] * (len(sizes) + 1)
    for j in range(1, len(sizes) + 1):
        for i in range(j):  # rows i..j-1 form the last group; its longest row is the last one
            cost = best[i] + (j - i) * sizes[j - 1] + run_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(sizes)
    while j:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


class OnnxEncoder(nn.Module):
    """Runs an exported encoder on ONNX Runtime and answers like a ``transformers`` encoder
    (``.last_hidden_state``). Holds no parameters: the task model's heads keep theirs.

    Args:
        path: the ``.onnx`` file.
        threads: ONNX Runtime's intra-op threads (default: ``torch.get_num_threads()``, so both backends use the
            same cores).
        run_cost: what one more run costs, in tokens, when rows are grouped by length (see
            :func:`length_groups`); 0 runs the padded batch as given.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, run_cost: int = 64):
        super().__init__()
        try:
            import onnxruntime
        except ImportError:
            raise ImportError(
                "an ONNX encoder needs onnxruntime: pip install onnxruntime "
                "(or pip install 'modeling-ade[onnx]'); or load the model without onnx=..."
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # no spinning between runs: the heads and the decoding run on the same cores, in PyTorch, in between
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = str(path)
        self.session = onnxruntime.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.run_cost = run_cost

    def extra_repr(self) -> str:
        return f"path={self.path!r}, run_cost={self.run_cost}"

    def _run(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: inputs[name].to("cpu", torch.int64).numpy() for name in self.input_names}
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        return torch.from_numpy(hidden)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        """input_ids, attention_mask, token_type_ids ``(B, T)`` -> ``last_hidden_state`` ``(B, T, H)`` float32, on
        the device of ``input_ids``."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        lengths = attention_mask.sum(-1).tolist()
        # grouping cuts each row at its length: only for right padding (each mask a run of 1s, then 0s)
        positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
        right_padded = bool(
            ((positions < attention_mask.sum(-1, keepdim=True)) == attention_mask.bool()).all()
        )
        if not self.run_cost or not right_padded:
            hidden = self._run(inputs)
        else:
            hidden = None
            for rows in length_groups(lengths, self.run_cost):
                width = max(1, max(lengths[r] for r in rows))
                index = torch.tensor(rows, device=input_ids.device)
                part = self._run({k: v.index_select(0, index)[:, :width] for k, v in inputs.items()})
                if hidden is None:
                    hidden = part.new_zeros((*input_ids.shape, part.size(-1)))
                hidden[rows, :width] = part
        return BaseModelOutput(last_hidden_state=hidden.to(input_ids.device))
