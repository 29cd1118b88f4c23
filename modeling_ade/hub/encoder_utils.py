"""The pre-trained encoder inside the task models: built from the saved config, filled with pre-trained weights.

Both task models (``modeling_joint_ner_re``, ``modeling_bert_crf``) keep any ``AutoModel`` encoder under
``encoder``; :func:`build_encoder` builds it (without the unused pooler where the family allows), and
:func:`load_encoder_weights` copies a pre-trained checkpoint's weights into it, refusing weights that do not
fit. :class:`EncoderModelMixin` gives both models what follows from that: ``from_encoder`` (a new model on a
pre-trained encoder, for training), ``load_pretrained_encoder`` (rebuilding a LoRA adapter's base) and
``get_input_embeddings``; :class:`EncoderConfigMixin` gives both configs the encoder's sizes.

Hub code: imports only ``torch`` and ``transformers`` (this file is copied next to the weights).
"""

from __future__ import annotations

from torch import nn
from transformers import AutoModel, PretrainedConfig


def no_pooler_kwargs(encoder_config: PretrainedConfig) -> dict:
    """``{"add_pooling_layer": False}`` for an encoder family whose ``AutoModel`` takes it (BERT, RoBERTa, MPNet,
    ...; the pooler is unused, and sentence-embedding checkpoints such as all-mpnet-base-v2 have no pooler weights),
    else ``{}``."""
    import inspect

    model_class = AutoModel._model_mapping.get(type(encoder_config), None)
    takes = (
        model_class is not None and "add_pooling_layer" in inspect.signature(model_class.__init__).parameters
    )
    return {"add_pooling_layer": False} if takes else {}


def build_encoder(encoder_config: PretrainedConfig) -> nn.Module:
    """A randomly initialised encoder of ``encoder_config``, without the pooler where the family allows."""
    return AutoModel.from_config(encoder_config, **no_pooler_kwargs(encoder_config))


def load_encoder_weights(encoder: nn.Module, pretrained: nn.Module, name: str) -> None:
    """Copy the weights of ``pretrained`` (an ``AutoModel``; its pooler is skipped) into ``encoder``.

    Raises:
        ValueError: the weights do not fit ``encoder`` (names what is missing and what is unexpected).
    """
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("pooler.")}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"encoder weights of {name!r} do not fit: missing {missing}, unexpected {unexpected}"
        )


def load_pretrained_encoder(encoder: nn.Module, name_or_path: str, encoder_config: PretrainedConfig) -> None:
    """Fill ``encoder`` with the weights of the checkpoint ``name_or_path`` (Hub id or folder), read with the
    saved ``encoder_config`` (so a model trained with fewer layers takes only those)."""
    pretrained = AutoModel.from_pretrained(name_or_path, config=encoder_config)
    load_encoder_weights(encoder, pretrained, name_or_path)


class EncoderConfigMixin:
    """For the task configs: the encoder's ``hidden_size`` and ``max_position_embeddings``, read from their
    ``encoder_config``."""

    @property
    def hidden_size(self) -> int:
        return self.encoder_config.hidden_size

    @property
    def max_position_embeddings(self) -> int | None:
        return getattr(self.encoder_config, "max_position_embeddings", None)


class EncoderModelMixin:
    """For the task models (a ``PreTrainedModel`` whose ``config_class`` takes ``encoder_config``; the encoder
    under ``encoder``)."""

    @classmethod
    def from_encoder(cls, encoder_name_or_path: str, encoder_kwargs: dict | None = None, **config_kwargs):
        """Build the model on pre-trained encoder weights (any ``AutoModel`` checkpoint); the heads start random.

        Args:
            encoder_name_or_path: Hub id or folder of the encoder.
            encoder_kwargs: passed to the encoder's ``from_pretrained`` (``{"num_hidden_layers": 2}`` keeps the
                first two layers).
            config_kwargs: passed to the model's config class.
        """
        encoder = AutoModel.from_pretrained(encoder_name_or_path, **(encoder_kwargs or {}))
        model = cls(cls.config_class(encoder_config=encoder.config.to_dict(), **config_kwargs))
        load_encoder_weights(model.encoder, encoder, encoder_name_or_path)
        return model

    def load_pretrained_encoder(self, encoder_name_or_path: str) -> None:
        """Fill the encoder with a pre-trained checkpoint's weights, read with the saved ``encoder_config`` (e.g.
        to rebuild the base model of a LoRA adapter: the heads then come from the adapter)."""
        load_pretrained_encoder(self.encoder, encoder_name_or_path, self.config.encoder_config)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, onnx: str | None = None, **kwargs):
        """``PreTrainedModel.from_pretrained``, plus ``onnx="fp32" | "int8"``: run the encoder on ONNX Runtime from
        the model's ``onnx/`` files (:meth:`use_onnx`)."""
        model = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        if onnx is not None:
            hub = {
                k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs
            }
            model.use_onnx(onnx, source=str(pretrained_model_name_or_path), **hub)
        return model

    def use_onnx(
        self, variant: str = "fp32", source: str | None = None, threads: int | None = None, **hub
    ) -> None:
        """Replace the PyTorch encoder by its ONNX export (``onnx/encoder.onnx``, or ``onnx/encoder_int8.onnx`` for
        ``"int8"``) from ``source`` (a model folder or Hub id; default: where the model was loaded from). For
        inference only; such a model cannot be saved (load it without ``onnx`` to save or train it).

        Raises:
            FileNotFoundError: the model has no such export (``python -m modeling_ade.export DIR [--int8]`` writes it).
            ValueError: the export was traced from other encoder weights than this model's (export it again).
        """
        import json
        import os

        from transformers.utils import cached_file

        from .onnx_encoder import EXPORT_RECORD, ONNX_FOLDER, OnnxEncoder, encoder_fingerprint, onnx_file

        source = source or self.name_or_path
        filename = onnx_file(variant)
        flag = " --int8" if variant == "int8" else ""
        paths = {}
        for name in (filename, f"{ONNX_FOLDER}/{EXPORT_RECORD}"):
            if os.path.isdir(source):
                path = os.path.join(source, name)
                paths[name] = path if os.path.isfile(path) else None
            else:
                paths[name] = cached_file(source, name, _raise_exceptions_for_missing_entries=False, **hub)
        if paths[filename] is None:
            raise FileNotFoundError(
                f"{source} has no {filename}: write it with `python -m modeling_ade.export DIR{flag}` "
                "(modeling_ade), or load the model without onnx=..."
            )
        record_path = paths[f"{ONNX_FOLDER}/{EXPORT_RECORD}"]
        record = {}
        if record_path:
            with open(record_path, encoding="utf-8") as handle:
                record = json.load(handle)
        if record.get("encoder_sha256") != encoder_fingerprint(self.encoder.state_dict()):
            raise ValueError(
                f"{source}: {filename} was exported from other encoder weights than the model's (trained again "
                f"since?): export it again with `python -m modeling_ade.export DIR{flag}`"
            )
        self.encoder = OnnxEncoder(paths[filename], threads=threads)
        self.float()  # the encoder's output is float32: the heads run in float32 too
        self.eval()

    def save_pretrained(self, *args, **kwargs):
        from .onnx_encoder import OnnxEncoder

        if isinstance(self.encoder, OnnxEncoder):
            raise ValueError(
                "this model runs its encoder on ONNX Runtime (onnx=...) and holds no encoder weights: load it "
                "without onnx=... to save it"
            )
        return super().save_pretrained(*args, **kwargs)
