"""LoRA fine-tuning of a task model's encoder: wrap, save the adapter folder, load it back (not Hub code).

``train.py ade|ner --lora-r R`` calls :func:`apply_lora` on the task model (``JointNerReForAdeExtraction``,
``BertCrfForTokenClassification``) before training. The rule, stated once, here:

- **LoRA on the encoder only.** Rank-``r`` matrices (scaling ``alpha / r``, dropout on their input) are added
  to the encoder's linear layers named by ``target_modules``, matched as PEFT matches a list (the module's
  name, or the end of its dotted path: ``query``, ``attention.output.dense``) but only under ``encoder.``:
  a head layer is never a LoRA target. The default targets come from the encoder family
  (``config.encoder_config.model_type``, :data:`DEFAULT_TARGET_MODULES`): the attention query and value
  projections, ``query`` / ``value`` for BERT (BioBERT, PubMedBERT...), RoBERTa, XLM-R and ELECTRA;
  ``query_proj`` / ``value_proj`` for DeBERTa-v2/v3; ``q_lin`` / ``v_lin`` for DistilBERT.
  The encoder's own weights stay frozen.
- **The heads are trained fully.** Every top-level module outside the encoder that has parameters (the NER
  classifier and the relation head; the two linear layers and the CRF) is a PEFT ``modules_to_save``: trained
  as in full fine-tuning and saved with the adapter.

The adapter folder (:func:`save_adapter`) holds ``adapter_config.json`` + ``adapter_model.safetensors``
(``base_model_name_or_path`` = the encoder as given to ``--model``), the task model's ``config.json`` (with
``auto_map`` and, for ``ade-extraction``, ``custom_pipelines``) and the code files it names, and the
tokenizer. The base model of the adapter is the task model built from that ``config.json`` with the
encoder's pre-trained weights (:func:`build_base_model`); ``PeftModel.from_pretrained(base, folder)`` then
gives the trained model (:func:`load_adapter_model`). ``push_to_hub.py model OUT [--merge]`` packages it.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

from accelerate.logging import get_logger
from torch import nn

from .artifacts import auto_model_class, code_files, make_readable
from .encoders import resolve_model_name
from .settings import FineTuneSettings, LoraSettings

ENCODER_ATTR = "encoder"  # where the task models keep their pre-trained encoder (their base_model_prefix)
ADAPTER_NAME = "default"

_QUERY_VALUE = ("query", "value")
DEFAULT_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie", "megatron-bert", "albert"),
        _QUERY_VALUE,
    ),
    "deberta-v2": ("query_proj", "value_proj"),  # DeBERTa-v2 and v3
    "deberta": ("in_proj",),  # one fused query/key/value projection
    "distilbert": ("q_lin", "v_lin"),
    "mpnet": ("q", "v"),
    "modernbert": ("Wqkv",),  # one fused query/key/value projection
}
"""Encoder family (``model_type``) -> LoRA target modules: the attention query and value projections (their
fused projection where the family has one). BioBERT, PubMedBERT and ClinicalBERT are ``bert``."""

logger = get_logger(__name__)

__all__ = [
    "LoraSettings",
    "apply_lora",
    "apply_lora_from_settings",
    "build_base_model",
    "default_target_modules",
    "encoder_target_pattern",
    "head_modules",
    "load_adapter_model",
    "MergeError",
    "lora_parameter_counts",
    "merge_adapter",
    "lora_summary",
    "record_custom_pipeline",
    "save_adapter",
]


def default_target_modules(encoder_type: str) -> list[str]:
    """The default LoRA targets of an encoder family (``config.encoder_config.model_type``): its attention
    query and value projections, as in the LoRA paper (:data:`DEFAULT_TARGET_MODULES`).

    Raises:
        ValueError: no default for ``encoder_type``: pass ``--lora-target-modules``.
    """
    if encoder_type not in DEFAULT_TARGET_MODULES:
        raise ValueError(
            f"no default LoRA target modules for encoder type {encoder_type!r} (known: "
            f"{', '.join(sorted(DEFAULT_TARGET_MODULES))}): pass --lora-target-modules, usually the names of "
            "its attention query and value projections"
        )
    return list(DEFAULT_TARGET_MODULES[encoder_type])


def encoder_target_pattern(target_modules: list[str] | tuple[str, ...]) -> str:
    """A PEFT ``target_modules`` regex (matched with ``re.fullmatch`` on module names) for the modules named
    ``target_modules`` (a name or the end of a dotted path) inside the encoder, and nowhere else."""
    names = "|".join(re.escape(m.strip(".")) for m in target_modules)
    return rf"{ENCODER_ATTR}\.(?:.*\.)?(?:{names})"


def head_modules(model: nn.Module) -> list[str]:
    """Names of the top-level modules outside the encoder that have parameters (trained fully, saved)."""
    return [
        name
        for name, child in model.named_children()
        if name != ENCODER_ATTR and any(True for _ in child.parameters())
    ]


def _encoder_linear_names(model: nn.Module) -> list[str]:
    encoder = model.get_submodule(ENCODER_ATTR)
    return sorted(
        {name.rsplit(".", 1)[-1] for name, m in encoder.named_modules() if isinstance(m, nn.Linear)}
    )


def apply_lora(model: nn.Module, settings: LoraSettings, base_model_name_or_path: str | None = None):
    """Wrap a task model for LoRA training (rule in the module docstring); returns the ``PeftModel``.

    Args:
        model: a task model with its pre-trained encoder at ``model.encoder`` (modified in place by PEFT).
        settings: rank, alpha, dropout, target modules.
        base_model_name_or_path: the encoder the task model was built from (``--model``), recorded in
            ``adapter_config.json`` so the base can be rebuilt (:func:`build_base_model`).

    Raises:
        ValueError: no encoder module matches the target modules (the message lists its linear layers),
            or the encoder family has no default targets.
    """
    from peft import LoraConfig, get_peft_model

    targets = list(settings.target_modules or default_target_modules(model.config.encoder_config.model_type))
    pattern = encoder_target_pattern(targets)
    if not any(re.fullmatch(pattern, name) for name, _ in model.named_modules()):
        raise ValueError(
            f"--lora-target-modules {' '.join(targets)}: no such module in the encoder "
            f"({type(model.get_submodule(ENCODER_ATTR)).__name__}); its linear layers are named "
            f"{', '.join(_encoder_linear_names(model))}"
        )
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.dropout,
        target_modules=pattern,
        modules_to_save=head_modules(model),
        bias="none",
    )
    peft_model = get_peft_model(model, config, adapter_name=ADAPTER_NAME)
    peft_model.peft_config[ADAPTER_NAME].base_model_name_or_path = base_model_name_or_path
    counts = lora_parameter_counts(peft_model)
    if counts["trainable"] != counts["lora"] + counts["heads"]:  # PEFT's loose name matching went astray
        raise RuntimeError(
            f"unexpected trainable parameters outside the LoRA matrices and the heads: {counts}"
        )
    return peft_model


def lora_parameter_counts(peft_model: nn.Module) -> dict[str, int]:
    """Parameter counts of a LoRA-wrapped task model: ``lora`` (the LoRA matrices), ``heads`` (the trained
    copies of the heads), ``trainable`` (``requires_grad``) and ``total`` (the model as it runs: frozen encoder
    + LoRA + heads; PEFT's frozen originals of the heads are not counted)."""
    counts = {"lora": 0, "heads": 0, "trainable": 0, "total": 0}
    for name, param in peft_model.named_parameters():
        if ".original_module." in name:
            continue
        counts["total"] += param.numel()
        counts["trainable"] += param.numel() if param.requires_grad else 0
        if "lora_" in name:
            counts["lora"] += param.numel()
        elif ".modules_to_save." in name:
            counts["heads"] += param.numel()
    return counts


# ----------------------------------------------------------------------------------------------------
# the adapter folder


def record_custom_pipeline(config, task: str, folder: Path) -> None:
    """Write ``custom_pipelines`` into ``config`` and copy the pipeline's code, as ``Pipeline.save_pretrained``."""
    from transformers.dynamic_module_utils import custom_object_save
    from transformers.pipelines import PIPELINE_REGISTRY

    task, info, _ = PIPELINE_REGISTRY.check_task(task)
    impl = info["impl"]
    config.custom_pipelines = {
        task: {
            **info,
            "impl": f"{impl.__module__.rsplit('.', 1)[-1]}.{impl.__name__}",
            "pt": tuple(c.__name__ for c in info["pt"]),
        }
    }
    custom_object_save(impl, folder)


def save_adapter(peft_model, output_dir: str | Path, tokenizer, pipeline_task: str | None = None) -> None:
    """Save a LoRA-wrapped task model as an adapter folder (contents in the module docstring).

    ``pipeline_task``: the custom pipeline to record in ``config.json`` (``"ade-extraction"``), as the full
    model's ``pipeline(...).save_pretrained`` does; None for a model used with a stock pipeline.
    """
    from transformers.dynamic_module_utils import custom_object_save

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    had_card = (output_dir / "README.md").exists()
    # The vocabulary is never resized here, so no full embedding matrix (and no Hub look-up to check it).
    peft_model.save_pretrained(output_dir, save_embedding_layers=False)
    if not had_card:  # PEFT's empty template card; push_to_hub.py writes the real one
        (output_dir / "README.md").unlink(missing_ok=True)
    base = peft_model.get_base_model()
    config = copy.deepcopy(base.config)  # as PreTrainedModel.save_pretrained writes it, weights aside
    config.dtype = str(base.dtype).split(".")[1]
    config.architectures = [type(base).__name__]
    if pipeline_task is not None:
        record_custom_pipeline(config, pipeline_task, output_dir)
    custom_object_save(base, output_dir, config=config)
    config.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def build_base_model(folder: str | Path, encoder: str | None = None) -> nn.Module:
    """The model an adapter folder was trained on: the task model built from the folder's ``config.json``,
    its encoder holding the pre-trained weights of ``encoder`` (default: ``adapter_config.json``'s
    ``base_model_name_or_path``), cut to the saved encoder configuration (``--num-hidden-layers``). The heads
    are freshly initialised: the adapter's ``modules_to_save`` replace them.

    Raises:
        ValueError: the folder names no encoder, or the encoder's weights do not fit the saved configuration.
    """
    from peft import PeftConfig
    from transformers import AutoConfig

    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder)
    name = encoder or PeftConfig.from_pretrained(str(folder)).base_model_name_or_path
    if not name:
        raise ValueError(f"{folder / 'adapter_config.json'} names no base encoder: pass encoder=")
    model = auto_model_class(config).from_config(config)  # the class comes from the Auto registry
    try:
        model.load_pretrained_encoder(resolve_model_name(name))
    except ValueError as err:
        raise ValueError(f"{folder / 'config.json'}: {err}") from None
    return model


def load_adapter_model(folder: str | Path, encoder: str | None = None, is_trainable: bool = False):
    """``PeftModel.from_pretrained(build_base_model(folder, encoder), folder)``, in eval mode unless
    ``is_trainable``: the trained model of a ``train.py ... --lora-r`` run."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(
        build_base_model(folder, encoder), str(folder), adapter_name=ADAPTER_NAME, is_trainable=is_trainable
    )
    return model if is_trainable else model.eval()


class MergeError(ValueError):
    """An adapter that cannot be merged into its base (the message says why and what to pass)."""


ADAPTER_CONFIG_FILE = "adapter_config.json"


def merge_adapter(
    adapter_dir: Path, into: Path, base_model: str | None, trust_remote_code: bool = False
) -> str:
    """Merge a PEFT adapter into its base model and save the full model + tokenizer (+ code) to ``into``.

    The base is ``base_model`` or ``adapter_config.json``'s ``base_model_name_or_path``: a full model of the
    adapter's kind, or a plain encoder when the adapter folder holds the model's ``config.json`` (the model
    is then built from that config, its encoder takes the encoder's weights, and every other weight must be
    in the adapter's ``modules_to_save``). Returns the base model's name.
    """
    from peft import PeftConfig, PeftModel
    from transformers import AutoConfig, AutoTokenizer, pipeline

    from .model_run import MODEL_KINDS

    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    base_ref = base_model or peft_config.base_model_name_or_path
    if not base_ref:
        raise MergeError(f"{adapter_dir / ADAPTER_CONFIG_FILE} names no base model: pass --base-model")
    try:
        base_path = resolve_model_name(base_ref)
        base_config = AutoConfig.from_pretrained(base_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise MergeError(f"cannot load the base model {base_ref!r} ({err}); pass --base-model") from err
    has_config = (adapter_dir / "config.json").is_file()
    config = (
        AutoConfig.from_pretrained(str(adapter_dir), trust_remote_code=trust_remote_code)
        if has_config
        else base_config
    )
    auto_class = auto_model_class(config)
    if base_config.model_type == config.model_type:
        base = auto_class.from_pretrained(base_path, trust_remote_code=trust_remote_code)
    else:
        try:  # the task model from the adapter folder's config.json, its encoder cut to that configuration
            base = build_base_model(adapter_dir, base_path)
        except ValueError as err:
            raise MergeError(f"cannot rebuild the model the adapter was trained on: {err}") from err
        prefix = base.base_model_prefix
        saved = tuple(peft_config.modules_to_save or ())
        heads = {n.split(".")[0] for n, _ in base.named_parameters() if not n.startswith(prefix + ".")}
        untrained = sorted(h for h in heads if not any(h == m or h.startswith(m + ".") for m in saved))
        if untrained:
            raise MergeError(
                f"modules {untrained} are neither in the encoder nor in the adapter's modules_to_save: they "
                "would be random in the merged model; pass the full base model with --base-model"
            )
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer_source = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_path
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    # Saved through its pipeline, so a custom one (ade-extraction) is recorded in config.json with its code.
    kind = MODEL_KINDS.get(config.model_type)
    custom = list(getattr(config, "custom_pipelines", None) or {})
    task = custom[0] if custom else kind.pipeline if kind else "token-classification"
    pipeline(task, model=merged, tokenizer=tokenizer).save_pretrained(into)
    saved_config = json.loads((into / "config.json").read_text(encoding="utf-8"))
    for source in (adapter_dir, Path(base_path)):  # code files save_pretrained does not copy (the pipeline)
        for name in code_files(source, saved_config):
            if not (into / name).is_file() and (source / name).is_file():
                shutil.copy2(source / name, into / name)
    make_readable(into)
    return base_ref


def lora_summary(settings: LoraSettings, peft_model) -> dict:
    """What ``metrics.json`` (key ``lora``) records of the LoRA setup: settings and parameter counts."""
    config = peft_model.peft_config[ADAPTER_NAME]
    counts = lora_parameter_counts(peft_model)
    return {
        "r": settings.r,
        "alpha": settings.lora_alpha,
        "dropout": settings.dropout,
        "target_modules": config.target_modules,
        "modules_to_save": sorted(config.modules_to_save or ()),
        "trainable_parameters": counts["trainable"],
        "lora_parameters": counts["lora"],
        "head_parameters": counts["heads"],
        "total_parameters": counts["total"],
        "trainable_share": counts["trainable"] / max(counts["total"], 1),
    }


def apply_lora_from_settings(model: nn.Module, settings: FineTuneSettings) -> tuple[nn.Module, dict | None]:
    """``train.py``'s entry: with ``--lora-r``, wrap ``model`` (:func:`apply_lora`, base = ``--model``) and log
    its trainable vs total parameters; returns the model to train and :func:`lora_summary` (None without
    ``--lora-r``: the model is returned unchanged)."""
    lora = settings.lora
    if lora is None:
        return model, None
    peft_model = apply_lora(model, lora, base_model_name_or_path=settings.model)
    summary = lora_summary(lora, peft_model)
    logger.info(
        f"LoRA r={lora.r}, alpha={summary['alpha']:g}, dropout={lora.dropout:g} on encoder modules "
        f"{summary['target_modules']!r}; heads trained fully: {', '.join(summary['modules_to_save'])}. "
        f"Trainable parameters: {summary['trainable_parameters']:,} of {summary['total_parameters']:,} "
        f"({100 * summary['trainable_share']:.2f} %: LoRA {summary['lora_parameters']:,}, heads "
        f"{summary['head_parameters']:,})",
        main_process_only=True,
    )
    return peft_model, summary
