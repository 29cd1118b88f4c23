"""What a trained model folder says about itself: its kind, encoder, licence, metrics and arguments (not Hub
code). :func:`read_model_run` reads a ``train.py`` output folder (full model or PEFT adapter) into a
:class:`ModelRun`, which ``model_card`` and ``push_to_hub.py`` use."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelKind:
    """What the card says about one ``config.model_type``."""

    title: str
    pipeline: str  # the pipeline task the model is used with
    corpus: str  # the default training corpus: "ade" or "chinese_healthner"
    tags: tuple[str, ...]
    widget: tuple[str, ...]
    summary: str
    # what differs for a model trained on a user's corpus (--dataset); empty: the same as above
    custom_title: str = ""
    custom_summary: str = ""
    custom_tags: tuple[str, ...] = ()


MODEL_KINDS: dict[str, ModelKind] = {
    "joint_ner_re": ModelKind(
        title="joint NER + relation extraction of adverse drug events",
        pipeline="ade-extraction",
        corpus="ade",
        tags=("relation-extraction", "ner", "adverse-drug-events", "biomedical", "joint-ner-re"),
        widget=(
            "Intravenous azithromycin-induced ototoxicity.",
            "A 54-year-old woman developed severe hepatotoxicity after two months of methotrexate.",
        ),
        summary=(
            "One pre-trained encoder shared by two heads trained jointly: a token-level NER head (softmax over "
            "BIO tags; a word's tag is the tag of its first sub-word) finds drugs and adverse effects, and an "
            "R-BERT relation head classifies every (adverse effect, drug) pair from the encoder states of "
            "`[CLS]` and of each entity's last sub-word. Loss: `λ·L_ner + (1 − λ)·L_rel`. All candidate pairs "
            "of a sentence are classified from one encoder pass."
        ),
        custom_title="joint entity and relation extraction",
        custom_tags=("relation-extraction", "ner", "joint-ner-re"),
        custom_summary=(
            "One pre-trained encoder shared by two heads trained jointly: a token-level NER head (softmax over "
            "BIO tags; a word's tag is the tag of its first sub-word) finds the entities, and an R-BERT relation "
            "head classifies every candidate (head, tail) entity pair from the encoder states of `[CLS]` and of "
            "each entity's last sub-word. Loss: `λ·L_ner + (1 − λ)·L_rel`. All candidate pairs of a sentence are "
            "classified from one encoder pass. The entity types, relation types and the type pairs relations "
            "join were read from the training corpus."
        ),
    ),
    "bert_crf": ModelKind(
        title="BERT-CRF named entity recognition",
        pipeline="token-classification",
        corpus="chinese_healthner",
        tags=("ner", "crf", "biomedical", "chinese", "healthcare", "bert-crf"),
        widget=("服用阿斯匹靈後出現胃痛和頭暈，醫師建議改用普拿疼。",),
        summary=(
            "An encoder, two linear layers and a linear-chain CRF (transition scores; forward algorithm for the "
            "loss, Viterbi decoding), trained with layer-wise learning-rate decay. Character-level BIO tags."
        ),
    ),
}

ADE_HUB_DATASET = "ade-benchmark-corpus/ade_corpus_v2"
"""The ADE corpus V2 on the Hub (the same corpus; this project's folds are SpERT's 10-fold split)."""

ENCODER_ALIASES = {
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "m3e-small": "moka-ai/m3e-small",
}


@dataclass(frozen=True)
class Licence:
    """A licence as the Hub's metadata spells it, and one sentence for the card's text."""

    hub_id: str
    text: str
    name: str | None = None  # Hub `license_name`, only with hub_id "other"
    link: str | None = None  # Hub `license_link`, only with hub_id "other"


ENCODER_LICENCES: dict[str, Licence] = {
    "sentence-transformers/all-MiniLM-L6-v2": Licence("apache-2.0", "Apache-2.0"),
    "moka-ai/m3e-small": Licence(
        "other",
        "research use only, no commercial use (its model card: trained on non-commercial datasets)",
        name="m3e-research-only",
        link="https://huggingface.co/moka-ai/m3e-small",
    ),
}
UNKNOWN_LICENCE = Licence("unknown", "not known to this tool: check the encoder's own model card")


@dataclass
class ModelRun:
    """The files of a trained model folder that the card is made from (read, never written)."""

    folder: Path
    config: dict[str, Any] = field(default_factory=dict)  # config.json ({} when absent)
    training_args: dict[str, Any] = field(default_factory=dict)  # training_args.json ({} when absent)
    metrics: dict[str, Any] | None = None  # metrics.json
    cv_metrics: dict[str, Any] | None = None  # the parent's metrics.json when this is fold K of a --cv run
    fold: int | None = None  # the fold evaluated on, when known
    adapter_config: dict[str, Any] | None = None  # adapter_config.json of a PEFT adapter

    @property
    def model_type(self) -> str | None:
        return self.config.get("model_type")

    @property
    def kind(self) -> ModelKind | None:
        return MODEL_KINDS.get(self.model_type or "")

    @property
    def corpus(self) -> str | None:
        """``"ade"``, ``"chinese_healthner"``, ``"custom"`` (``train.py ner --dataset``) or None (unknown kind)."""
        if self.kind is None:
            return None
        return "custom" if self.training_args.get("dataset") else self.kind.corpus

    @property
    def is_adapter(self) -> bool:
        return self.adapter_config is not None

    @property
    def pipeline_task(self) -> str:
        """The custom pipeline saved with the model (``ade-extraction``), else ``token-classification``."""
        return next(iter(self.config.get("custom_pipelines") or {}), "token-classification")

    @property
    def auto_class(self) -> str:
        """The ``AutoModel...`` class of ``auto_map`` that loads the model (``AutoModel`` if none is given)."""
        classes = [k for k in self.config.get("auto_map") or {} if k != "AutoConfig"]
        return classes[0] if classes else "AutoModel"


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def read_model_run(folder: str | Path) -> ModelRun:
    """Read ``config.json``, ``training_args.json``, ``metrics.json`` (and ``adapter_config.json``) of a
    model folder; for ``OUT/fold_K`` of a ``--cv`` run also ``OUT/metrics.json`` (the cross-validation)."""
    folder = Path(folder)
    run = ModelRun(
        folder=folder,
        config=_read_json(folder / "config.json") or {},
        training_args=_read_json(folder / "training_args.json") or {},
        metrics=_read_json(folder / "metrics.json"),
        adapter_config=_read_json(folder / "adapter_config.json"),
    )
    match = re.fullmatch(r"fold_(\d+)", folder.resolve().name)
    parent = _read_json(folder.resolve().parent / "metrics.json") if match else None
    if match and parent and "cross_validation" in parent:
        # train.py --cv writes each fold to OUT/fold_K; its training_args.json keeps the default --fold.
        run.fold, run.cv_metrics = int(match.group(1)), parent
    elif "fold" in run.training_args and not run.training_args.get("cv"):
        run.fold = int(run.training_args["fold"])
    return run


def hub_id_or_none(name: str | None) -> str | None:
    """``name`` if it looks like a Hub model id (``owner/name``, not a local folder); aliases resolved."""
    if not name:
        return None
    name = ENCODER_ALIASES.get(name, name)
    if Path(name).is_dir() or Path(name).is_absolute() or name.startswith("."):
        return None
    return name if re.fullmatch(r"[\w][\w.-]*/[\w.-]+", name) else None


def encoder_name(run: ModelRun) -> str | None:
    """The pre-trained encoder the model was fine-tuned from, as given to ``train.py --model`` (aliases
    resolved), else the encoder config's ``_name_or_path``; a local folder is returned as its name only."""
    given = run.training_args.get("model") or (run.config.get("encoder_config") or {}).get("_name_or_path")
    if not given:
        return None
    return hub_id_or_none(given) or Path(given).name
