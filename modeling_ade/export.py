"""Export a trained model's encoder to ONNX (and int8) for fast CPU inference with ONNX Runtime.

    python -m modeling_ade.export MODEL_DIR [--int8] [--output OUT]

writes ``onnx/encoder.onnx`` (float32) and, with ``--int8``, ``onnx/encoder_int8.onnx`` (dynamic int8
quantization of the matrix products, ``onnxruntime.quantization.quantize_dynamic``) into the model folder, and
refreshes the model's code files there (the code that loads them). The model's weights and everything else in
the folder are left as they are. With ``--output OUT`` the folder is first copied to ``OUT`` (a LoRA adapter
folder is merged into its base there) and ``MODEL_DIR`` is not touched.

Then ``from_pretrained(DIR, onnx="fp32" | "int8")``, ``pipeline(..., model_kwargs={"onnx": "int8"})`` or
``predict.py --onnx int8`` run the encoder on ONNX Runtime (see ``modeling_ade/hub/onnx_encoder.py``); the heads,
the decoding and the output format stay the same. Needs ``pip install 'modeling-ade[onnx]'`` (onnx, onnxruntime).

Each export is checked before it is kept: the ONNX encoder's hidden states on a batch of other shapes than the
one traced must match PyTorch's (float32: within ``FP32_TOLERANCE``), else nothing is written.
"""

from __future__ import annotations

import argparse
import json
import logging as std_logging
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn
from transformers.utils import logging

from .hub.onnx_encoder import EXPORT_RECORD, ONNX_FILES, ONNX_FOLDER, OnnxEncoder, encoder_fingerprint

logger = logging.get_logger("modeling_ade.export")

FP32_TOLERANCE = 1e-3
"""Largest absolute difference of any hidden-state value allowed between the float32 export and PyTorch."""

OPSET = 17


class ExportError(RuntimeError):
    """The model cannot be exported (the message says why)."""


class _EncoderGraph(nn.Module):
    """The encoder as a function of its id tensors only, returning the last hidden state (what gets traced)."""

    def __init__(self, encoder: nn.Module, input_names: list[str]):
        super().__init__()
        self.encoder, self.input_names = encoder, input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.encoder(**dict(zip(self.input_names, inputs))).last_hidden_state


def encoder_input_names(encoder: nn.Module) -> list[str]:
    """The id inputs the encoder takes: ``input_ids``, ``attention_mask`` and, for the families that have them,
    ``token_type_ids`` (BERT, not MPNet)."""
    import inspect

    takes = inspect.signature(encoder.forward).parameters
    has_types = "token_type_ids" in takes and getattr(encoder.config, "type_vocab_size", 0)
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if has_types else [])


def sample_batch(encoder: nn.Module, lengths: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    """A right-padded batch of random ids with the given real lengths (for tracing and for the check)."""
    generator = torch.Generator().manual_seed(seed)
    vocab = encoder.config.vocab_size
    width = max(lengths)
    ids = torch.randint(min(5, vocab - 1), vocab, (len(lengths), width), generator=generator)
    mask = (torch.arange(width) < torch.tensor(lengths).unsqueeze(-1)).long()
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def export_encoder(encoder: nn.Module, path: Path) -> None:
    """Trace ``encoder`` (eager attention, batch and sequence length dynamic) into the ONNX file ``path``."""
    names = encoder_input_names(encoder)
    batch = sample_batch(encoder, [7, 5])
    saved = encoder.config._attn_implementation
    encoder.config._attn_implementation = "eager"  # the plain attention graph; ONNX Runtime fuses what it can
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # the tracer's notes on Python control flow over shapes (checked below)
            torch.onnx.export(
                _EncoderGraph(encoder, names).eval(),
                tuple(batch[n] for n in names),
                str(path),
                dynamo=False,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
                opset_version=OPSET,
            )
    finally:
        encoder.config._attn_implementation = saved


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of ``source``'s matrix products (weights int8, activations quantized on the fly)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = std_logging.getLogger()
    level = root.level
    root.setLevel(std_logging.ERROR)  # quantize_dynamic's advice to pre-process the model, on every call
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=[
                "MatMul"
            ],  # the embeddings (Gather) stay float32: 0.3 F1 points better on ADE
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


def max_difference(encoder: nn.Module, path: Path) -> float:
    """Largest absolute difference between PyTorch's and the ONNX file's hidden states, at real tokens, on a batch
    whose shapes differ from the traced one."""
    batch = sample_batch(encoder, [19, 3, 11, 19, 6], seed=1)
    mask = batch["attention_mask"].bool().unsqueeze(-1)  # shape: (B, T, 1)
    with torch.no_grad():
        expected = encoder(**{n: batch[n] for n in encoder_input_names(encoder)}).last_hidden_state
        got = OnnxEncoder(path, run_cost=0)(**batch).last_hidden_state
    return float((expected - got).abs()[mask.squeeze(-1)].max())  # NaN anywhere real gives NaN


def load_for_export(folder: Path, output: Path | None) -> tuple[nn.Module, Path]:
    """The PyTorch model and the folder its export goes to (``output``: a copy of ``folder``, or ``folder``)."""
    from .artifacts import load_trained

    if not (folder / "config.json").is_file():
        raise ExportError(f"{folder}: no config.json here (not a trained model folder)")
    if (folder / "adapter_config.json").is_file():
        if output is None:
            raise ExportError(
                f"{folder} is a LoRA adapter: give --output OUT to write it merged into its base there, with its "
                "ONNX encoder"
            )
        from .lora import MergeError, merge_adapter

        try:
            merge_adapter(folder, output, None)
        except MergeError as err:
            raise ExportError(str(err)) from err
        folder = output
    elif output is not None:
        output.mkdir(parents=True, exist_ok=True)
        for (
            path
        ) in folder.iterdir():  # the model's files; subfolders (checkpoints, an old export) stay behind
            if path.is_file():
                shutil.copy2(path, output / path.name)
        folder = output
    try:
        model = load_trained(folder)
    except (OSError, ValueError, KeyError) as err:
        raise ExportError(f"{folder}: cannot load the model: {str(err).splitlines()[0]}") from None
    if not hasattr(model, "use_onnx"):
        raise ExportError(
            f"{folder} holds a {type(model).__name__}, not a modeling_ade task model (train.py ade, joint or ner)"
        )
    return model, folder


def refresh_code(model: nn.Module, folder: Path) -> list[str]:
    """Write this package's version of the model's code files into ``folder`` (the files that load an ONNX
    encoder); returns the names of the files whose content changed."""
    from transformers.dynamic_module_utils import custom_object_save

    with tempfile.TemporaryDirectory() as scratch:
        written = custom_object_save(model, scratch, config=model.config)
        changed = []
        for source in map(Path, written):
            target = folder / source.name
            if not target.is_file() or target.read_bytes() != source.read_bytes():
                shutil.copyfile(source, target)
                changed.append(source.name)
    return changed


def export(folder: Path, int8: bool = False, output: Path | None = None) -> list[Path]:
    """Write the ONNX encoder(s) of the model in ``folder`` (see the module docstring); returns the files written."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("exporting needs onnx and onnxruntime: pip install 'modeling-ade[onnx]'") from None
    model, folder = load_for_export(folder, output)
    encoder = model.encoder
    target_dir = folder / ONNX_FOLDER
    existed = target_dir.is_dir()
    target_dir.mkdir(exist_ok=True)
    written = []
    try:
        with tempfile.TemporaryDirectory(dir=target_dir) as scratch:  # renamed into place only once checked
            fp32 = Path(scratch) / ONNX_FILES["fp32"]
            logger.warning(f"exporting the encoder of {folder} to ONNX")
            export_encoder(encoder, fp32)
            difference = max_difference(encoder, fp32)
            if not difference <= FP32_TOLERANCE:  # NaN fails too
                raise ExportError(
                    f"the ONNX encoder differs from PyTorch by up to {difference:.2e} (allowed {FP32_TOLERANCE:g}): "
                    "nothing was written"
                )
            files = [fp32]
            if int8:
                quantized = Path(scratch) / ONNX_FILES["int8"]
                quantize_int8(fp32, quantized)
                files.append(quantized)
                logger.warning(
                    f"int8: hidden states within {max_difference(encoder, quantized):.3f} of float32"
                )
            record = Path(scratch) / EXPORT_RECORD
            record.write_text(
                json.dumps(
                    {
                        "encoder_sha256": encoder_fingerprint(encoder.state_dict()),
                        "files": [path.name for path in files],
                        "int8": "quantize_dynamic, int8 weights per channel, MatMul only" if int8 else None,
                    },
                    indent=1,
                )
                + "\n",
                encoding="utf-8",
            )
            for name in set(ONNX_FILES.values()) - {
                path.name for path in files
            }:  # an older export of the other kind
                if (target_dir / name).is_file():
                    (target_dir / name).unlink()
                    logger.warning(f"removed {target_dir / name}: exported from the model as it was before")
            for path in [*files, record]:
                path.replace(target_dir / path.name)
                written.append(target_dir / path.name)
    except BaseException:
        if not existed and not any(target_dir.iterdir()):
            target_dir.rmdir()
        raise
    changed = refresh_code(model, folder)
    if changed:
        logger.warning(f"updated the model code in {folder}: {', '.join(changed)}")
    from .artifacts import make_readable

    make_readable(folder)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_ade.export",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model", type=Path, metavar="MODEL_DIR", help="a trained model folder (train.py output)"
    )
    parser.add_argument(
        "--int8", action="store_true", help="also write the int8 encoder (onnx/encoder_int8.onnx)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="OUT",
        help="write a copy of the model folder with its ONNX encoder here (a LoRA adapter merged into its base) "
        "instead of adding it to MODEL_DIR",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.model.is_dir():
        print(f"error: {args.model}: no such model folder", file=sys.stderr)
        return 2
    if args.output is not None and args.output.resolve() == args.model.resolve():
        print("error: --output is MODEL_DIR; leave it out to add the export to MODEL_DIR", file=sys.stderr)
        return 2
    logging.set_verbosity_warning()
    try:
        written = export(args.model, args.int8, args.output)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        if path.suffix == ".onnx":
            print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
