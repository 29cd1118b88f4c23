"""Typed run settings: what a ``train.py`` run is, built once from the command line (not Hub code).

:class:`TrainSettings` holds what every task shares (output, optimisation, scale and resilience, data size
and logging), :class:`FineTuneSettings` adds LoRA for the fine-tuning tasks, and each task module subclasses
one of them with its own fields and defaults (``ade_task.AdeSettings``...). The dataclass is the one source
of truth: :func:`add_common_arguments` takes each flag's default from it, :meth:`TrainSettings.from_args`
turns a parsed command line into it (every flag must land in a field: no dead flags), and the shared layer
(:mod:`~modeling_ade.training`, :mod:`~modeling_ade.run_guard`) reads only these typed fields.

The field names are the flags' (``--batch-size`` -> ``batch_size``), so ``training_args.json`` and
``run_settings.json`` keep their keys. Imports only the standard library: ``train.py --help`` stays light.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

SettingsT = TypeVar("SettingsT", bound="TrainSettings")


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """What every training task shares. A task subclass gives ``task`` and its own defaults.

    Attributes are the flags of ``train.py TASK --help`` (group "model and output", "optimisation", "scale and
    resilience", "data size and logging"); ``head_learning_rate`` / ``crf_learning_rate`` are set by the tasks
    that have such heads (None: ``learning_rate``).
    """

    task: ClassVar[str] = ""
    long_sentences: ClassVar[str] = "cut and counted in the log"  # what --max-length's help says of them

    # model and output
    output_dir: str
    model: str
    overwrite_output_dir: bool = False
    num_hidden_layers: int | None = None
    data_dir: str | None = None
    # optimisation
    epochs: int
    batch_size: int = 16
    eval_batch_size: int = 64
    learning_rate: float
    weight_decay: float = 5e-3
    layer_decay: float = 1.0
    head_learning_rate: float | None = None
    crf_learning_rate: float | None = None
    scheduler: str = "linear"
    warmup_ratio: float | None = None
    warmup_steps: int | None = None
    max_length: int
    seed: int = 42
    # scale and resilience
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None
    torch_compile: bool = False
    checkpoint_every: int = 0
    resume_from: str | None = None
    keep_checkpoints: int = 2
    # data size and logging
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    logging_steps: int = 20
    report_to: str = "tensorboard"

    def __post_init__(self) -> None:
        for name, least in (
            ("epochs", 1),
            ("batch_size", 1),
            ("eval_batch_size", 1),
            ("max_length", 1),
            ("logging_steps", 1),
            ("gradient_accumulation_steps", 1),
            ("checkpoint_every", 0),
            ("keep_checkpoints", 0),
        ):
            if getattr(self, name) < least:
                raise ValueError(f"{flag(name)} must be at least {least}, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning-rate must be > 0, got {self.learning_rate}")

    @classmethod
    def from_args(cls: type[SettingsT], args: argparse.Namespace) -> SettingsT:
        """The settings of a parsed command line. Every parsed flag must be a field (``task`` aside).

        Raises:
            ValueError: a bad value (named by its flag), from ``__post_init__``.
        """
        values = {k: v for k, v in vars(args).items() if k != "task"}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field for the flag(s) {', '.join(map(flag, unknown))}")
        if isinstance(values.get("lora_target_modules"), list):
            values["lora_target_modules"] = tuple(values["lora_target_modules"])
        return cls(**values)

    @property
    def sentence_pairs(self) -> bool:
        """Whether the task's sequences hold two sentences (``train.check_max_length`` needs room for both)."""
        return False

    def replace(self: SettingsT, **changes: Any) -> SettingsT:
        """A copy with ``changes`` (e.g. one fold's ``output_dir``)."""
        return dataclasses.replace(self, **changes)

    def record(self) -> dict[str, Any]:
        """Every field and the task name, as plain values (``run_settings.json``, ``training_args.json``; tuples
        as lists, as the command line gave them)."""
        values = dataclasses.asdict(self)
        return {"task": self.task, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA flags of ``train.py ade|ner`` (applied by :mod:`modeling_ade.lora`).

    Attributes:
        r: rank of the LoRA matrices (``--lora-r``), >= 1.
        alpha: scaling numerator (``--lora-alpha``): the update is ``(alpha / r) · B A x``; None means ``2 * r``.
        dropout: dropout on the LoRA branch's input (``--lora-dropout``), in [0, 1).
        target_modules: encoder linear layers to adapt (``--lora-target-modules``); None means the encoder
            family's default (``lora.default_target_modules``).
    """

    r: int
    alpha: float | None = None
    dropout: float = 0.1
    target_modules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"--lora-r must be an integer >= 1, got {self.r!r}")
        if self.alpha is not None and not self.alpha > 0:
            raise ValueError(f"--lora-alpha must be > 0, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--lora-dropout must be in [0, 1), got {self.dropout!r}")
        if self.target_modules is not None and (
            not self.target_modules
            or not all(isinstance(m, str) and m.strip(".") for m in self.target_modules)
        ):
            raise ValueError(f"--lora-target-modules needs module names, got {self.target_modules!r}")

    @property
    def lora_alpha(self) -> float:
        """``alpha``, or ``2 * r`` when not given."""
        return float(2 * self.r if self.alpha is None else self.alpha)


@dataclass(frozen=True, kw_only=True)
class FineTuneSettings(TrainSettings):
    """:class:`TrainSettings` plus the LoRA flags of the fine-tuning tasks (all None: full fine-tuning)."""

    lora_r: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float | None = None
    lora_target_modules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lora  # noqa: B018 (validates the LoRA flags)

    @property
    def lora(self) -> LoraSettings | None:
        """The LoRA settings; None without ``--lora-r``.

        Raises:
            ValueError: a LoRA flag without ``--lora-r``, or a bad value (named, with the value).
        """
        others = {
            "alpha": self.lora_alpha,
            "dropout": self.lora_dropout,
            "target_modules": self.lora_target_modules,
        }
        if self.lora_r is None:
            given = [flag(f"lora_{k}") for k, v in others.items() if v is not None]
            if given:
                raise ValueError(f"{', '.join(given)} applies only with --lora-r")
            return None
        return LoraSettings(r=self.lora_r, **{k: v for k, v in others.items() if v is not None})


def flag(name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------------------------------------------
# command line


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1 (the flag is named by argparse in the error)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def positive_float(value: str) -> float:
    """argparse type: a number > 0."""
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def defaults_of(settings_class: type[TrainSettings]) -> dict[str, Any]:
    """Field name -> default of a settings class (fields without a default are left out)."""
    return {f.name: f.default for f in fields(settings_class) if f.default is not dataclasses.MISSING}


def add_common_arguments(parser: argparse.ArgumentParser, settings_class: type[TrainSettings]) -> None:
    """Flags every training task shares (names fixed by the CLI contract in DESIGN.md), with the defaults of
    ``settings_class`` (and its ``long_sentences`` in ``--max-length``'s help)."""
    d = defaults_of(settings_class)
    long_sentences = settings_class.long_sentences
    g = parser.add_argument_group("model and output")
    g.add_argument(
        "--model", default=d["model"], help=f"encoder name, Hub id or folder (default: {d['model']})"
    )
    g.add_argument(
        "--output-dir", required=True, help="where the model, tokenizer, metrics.json and arguments go"
    )
    g.add_argument(
        "--overwrite-output-dir",
        action="store_true",
        help="replace a run already in --output-dir (by default a finished or started run there is kept and "
        "this run refuses to start)",
    )
    g.add_argument(
        "--num-hidden-layers",
        type=positive_int,
        default=None,
        help="keep only the first N encoder layers (a quick way to a smaller model); default: all",
    )
    g.add_argument(
        "--data-dir",
        default=None,
        help="raw corpus folder (default: the corpus environment variable, then ../shared/data/...)",
    )
    g = parser.add_argument_group("optimisation")
    g.add_argument(
        "--epochs", type=positive_int, default=d["epochs"], help=f"training epochs (default: {d['epochs']})"
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=d["batch_size"],
        help=f"training batch size per process (default: {d['batch_size']})",
    )
    g.add_argument(
        "--eval-batch-size",
        type=positive_int,
        default=d["eval_batch_size"],
        help=f"evaluation batch size per process (default: {d['eval_batch_size']})",
    )
    g.add_argument(
        "--learning-rate",
        type=positive_float,
        default=d["learning_rate"],
        help=f"peak learning rate of the top encoder layer and the heads (default: {d['learning_rate']})",
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        default=d["weight_decay"],
        help=f"AdamW weight decay; none on biases and norms (default: {d['weight_decay']}, the paper's L2)",
    )
    g.add_argument(
        "--layer-decay",
        type=float,
        default=d["layer_decay"],
        help="layer-wise lr decay: a layer's lr is the one above times this, so dividing by k is 1/k "
        f"(the BERT-CRF paper's k = 1.2 is 0.8333); 1.0 = off (default: {d['layer_decay']:.4g})",
    )
    g.add_argument(
        "--scheduler",
        choices=["linear", "cosine", "constant"],
        default=d["scheduler"],
        help=f"decay after warm-up (default: {d['scheduler']})",
    )
    warm = g.add_mutually_exclusive_group()
    warm.add_argument(
        "--warmup-ratio", type=float, default=None, help="warm-up as a fraction of all steps (default 0)"
    )
    warm.add_argument("--warmup-steps", type=int, default=None, help="warm-up in optimizer steps")
    g.add_argument(
        "--max-length",
        type=positive_int,
        default=d["max_length"],
        help=f"maximum tokens per sentence; longer ones are {long_sentences} (default: {d['max_length']})",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=d["seed"],
        help=f"random seed, set before the model is built (default: {d['seed']})",
    )
    g = parser.add_argument_group(
        "scale and resilience (README: Scaling up; the same flags under `accelerate launch`)"
    )
    g.add_argument(
        "--gradient-accumulation-steps",
        type=int,
        default=d["gradient_accumulation_steps"],
        metavar="N",
        help="sum gradients over N batches per optimizer step: the global batch is batch size x N x "
        "processes (default: 1)",
    )
    g.add_argument(
        "--mixed-precision",
        choices=["no", "fp16", "bf16"],
        default=None,
        help="autocast precision, passed to Accelerate (default: the `accelerate launch` config, else no)",
    )
    g.add_argument(
        "--torch-compile",
        action="store_true",
        help="compile the model with torch.compile (inductor); the first steps get slower, later ones faster",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=d["checkpoint_every"],
        metavar="STEPS",
        help="save the full training state (model, optimizer, scheduler, RNG, data position) to "
        "OUT/checkpoints/step_N every STEPS optimizer steps; 0 = never (default: 0)",
    )
    g.add_argument(
        "--resume-from",
        default=None,
        metavar="DIR|latest",
        help="go on from a checkpoint folder, or from the newest one in OUT/checkpoints with `latest` (which "
        "starts from scratch when there is none yet); the run then ends as an uninterrupted one would",
    )
    g.add_argument(
        "--keep-checkpoints",
        type=int,
        default=d["keep_checkpoints"],
        metavar="K",
        help=f"keep only the newest K checkpoints; 0 = keep all (default: {d['keep_checkpoints']})",
    )
    g = parser.add_argument_group("data size and logging")
    g.add_argument(
        "--max-train-samples", type=positive_int, default=None, help="use only the first N training sentences"
    )
    g.add_argument(
        "--max-eval-samples",
        type=positive_int,
        default=None,
        help="use only the first N evaluation sentences",
    )
    g.add_argument(
        "--logging-steps",
        type=positive_int,
        default=d["logging_steps"],
        help=f"log the loss every N steps (default: {d['logging_steps']})",
    )
    g.add_argument(
        "--report-to",
        choices=["tensorboard", "none"],
        default=d["report_to"],
        help="experiment tracker for accelerate's log (default: tensorboard, under OUT/logs)",
    )


def add_lora_arguments(parser: argparse.ArgumentParser) -> None:
    """LoRA flags of the fine-tuning tasks (:class:`FineTuneSettings`); see ``modeling_ade/lora.py`` for the rule."""
    g = parser.add_argument_group(
        "LoRA (with --lora-r: adapters on the encoder, heads trained fully; OUT holds the adapter)"
    )
    g.add_argument(
        "--lora-r",
        type=int,
        default=None,
        metavar="R",
        help="train LoRA adapters of rank R on the encoder instead of all its weights; the heads (and the "
        "CRF) are trained fully and saved with the adapter (default: full fine-tuning)",
    )
    g.add_argument(
        "--lora-alpha",
        type=float,
        default=None,
        help="LoRA scaling numerator: updates are scaled by alpha / R (default: 2 * R)",
    )
    g.add_argument(
        "--lora-dropout",
        type=float,
        default=None,
        help="dropout on the input of the LoRA matrices (default: 0.1)",
    )
    g.add_argument(
        "--lora-target-modules",
        nargs="+",
        default=None,
        metavar="NAME",
        help="encoder linear layers to adapt, by name or end of dotted path, e.g. query key value "
        "attention.output.dense; only modules inside the encoder match (default by encoder family, "
        "README: query value for BERT / RoBERTa / XLM-R / ELECTRA, query_proj value_proj for DeBERTa-v2/v3)",
    )
