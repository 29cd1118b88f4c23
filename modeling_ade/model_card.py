"""Model cards for trained model folders: YAML metadata and the Markdown body (not Hub code).

``push_to_hub.py model`` calls :func:`read_model_run` on a ``train.py`` output folder and
:func:`build_model_card` to write the repository's ``README.md``:

- metadata: ``license`` (from the encoder's licence when known), ``language``, ``tags`` (with
  ``custom_code``), ``pipeline_tag``, ``datasets``, ``base_model`` (the encoder's Hub id), ``widget``
  examples and a ``model-index`` whose values are those of ``metrics.json``: every convention of the
  evaluation contract (NER micro / macro, RE strict / boundaries / gold entities), with overlapping
  entities kept and removed; for a fold of a ``--cv`` run also the cross-validation means;
- sections: what the model does, how to use it (pinned ``revision``, ``trust_remote_code=True``),
  Inference Endpoints, training data and protocol, evaluation, limitations, licence, citations.

Two model kinds are known (``config.model_type``): ``joint_ner_re`` (ADE corpus, ``ade-extraction``
pipeline) and ``bert_crf`` (Chinese HealthNER, ``token-classification`` pipeline). A PEFT adapter folder
(``adapter_config.json``) gets a card that names its base model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# --------------------------------------------------------------------------------------------------------
# What a model folder says about itself
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelKind:
    """What the card says about one ``config.model_type``."""

    title: str
    pipeline: str  # the pipeline task the model is used with
    corpus: str  # the default training corpus: "ade" or "chinese_healthner"
    tags: tuple[str, ...]
    widget: tuple[str, ...]
    summary: str


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


# --------------------------------------------------------------------------------------------------------
# Metrics -> evaluation table and model-index
# --------------------------------------------------------------------------------------------------------

# (metrics.json key, model-index metric type, task, human name)
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("ner_f1_micro", "f1", "ner", "NER F1, micro (strict spans + types)"),
    ("ner_precision_micro", "precision", "ner", "NER precision, micro (strict)"),
    ("ner_recall_micro", "recall", "ner", "NER recall, micro (strict)"),
    ("ner_f1_macro", "f1", "ner", "NER F1, macro over entity types (strict)"),
    ("ner_precision_macro", "precision", "ner", "NER precision, macro (strict)"),
    ("ner_recall_macro", "recall", "ner", "NER recall, macro (strict)"),
    ("re_f1_strict", "f1", "re", "RE F1, end-to-end strict (spans + entity types + relation type)"),
    ("re_precision_strict", "precision", "re", "RE precision, end-to-end strict"),
    ("re_recall_strict", "recall", "re", "RE recall, end-to-end strict"),
    ("re_f1_boundaries", "f1", "re", "RE F1, end-to-end boundaries (spans + relation type)"),
    ("re_precision_boundaries", "precision", "re", "RE precision, end-to-end boundaries"),
    ("re_recall_boundaries", "recall", "re", "RE recall, end-to-end boundaries"),
    ("re_f1_gold_entities", "f1", "re", "RE F1, gold entities given"),
    ("re_precision_gold_entities", "precision", "re", "RE precision, gold entities given"),
    ("re_recall_gold_entities", "recall", "re", "RE recall, gold entities given"),
    (
        "neg_false_positive_rate",
        "false_positive_rate",
        "sentence",
        "Held-out negative sentences with at least one relation (lower is better)",
    ),
    ("sentence_f1", "f1", "sentence", "Sentence states an ADE: F1"),
    ("sentence_precision", "precision", "sentence", "Sentence states an ADE: precision"),
    ("sentence_recall", "recall", "sentence", "Sentence states an ADE: recall"),
)
TASKS = {
    "ner": ("token-classification", "Named entity recognition"),
    "re": ("relation-extraction", "Relation extraction (adverse effect → drug)"),
    "sentence": ("text-classification", "Sentence-level ADE detection on real text"),
}
OVERLAP_VARIANTS = {  # the metric blocks of an ADE metrics.json (the real-text block is not an overlap variant)
    "overlap_kept": "overlapping entities kept",
    "overlap_removed": "overlapping entities removed",
    "real_text": "real text: test part + held-out negative sentences",
}


@dataclass
class EvalBlock:
    """One column group of the evaluation: a scope (a test split or a CV mean) and an overlap variant."""

    scope: str  # "fold 3 test part" / "10-fold cross-validation, mean over folds"
    variant: str  # "overlapping entities kept" / "" when the metrics have no overlap variants
    values: dict[str, float]  # metrics.json key -> value (the mean for CV)
    stds: dict[str, float | None] = field(default_factory=dict)  # CV only
    dataset_config: str | None = None
    dataset_split: str | None = None


def _variants(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``[(variant name, block)]``: the two overlap blocks (ADE), else the top level as one block."""
    if any(k in metrics for k in OVERLAP_VARIANTS):
        return [
            (OVERLAP_VARIANTS[k], metrics[k]) for k in OVERLAP_VARIANTS if isinstance(metrics.get(k), dict)
        ]
    return [("", metrics)]


def evaluation_blocks(run: ModelRun) -> list[EvalBlock]:
    """The model's own test results (``metrics.json``), then the cross-validation means (``--cv``)."""
    blocks: list[EvalBlock] = []
    args = run.training_args
    if run.metrics and "cross_validation" not in run.metrics:
        if run.corpus == "ade" and run.fold is not None:
            scope, config, split = f"fold {run.fold} test part", f"fold_{run.fold}", "test"
        elif run.corpus == "chinese_healthner":
            scope, config, split = "dev split (project protocol)", "dev", "validation"
        else:
            split = args.get("eval_split") or "validation"
            scope, config = f"{split} split", args.get("eval_dataset_config") or args.get("dataset_config")
        n = run.metrics.get("num_test_sentences", run.metrics.get("num_eval_sentences"))
        scope += f", {n:,} sentences" if isinstance(n, int) else ""
        for variant, block in _variants(run.metrics):
            values = {k: float(block[k]) for k, *_ in METRICS if _is_number(block.get(k))}
            if values:
                blocks.append(EvalBlock(scope, variant, values, dataset_config=config, dataset_split=split))
    cv = (run.cv_metrics or run.metrics or {}).get("cross_validation")
    if cv:
        folds = (run.cv_metrics or run.metrics or {}).get("folds") or []
        scope = f"{len(folds)}-fold cross-validation, mean over folds" if folds else "cross-validation mean"
        for variant, block in _variants(cv):
            stats = {
                k: block[k] for k, *_ in METRICS if isinstance(block.get(k), dict) and "mean" in block[k]
            }
            if stats:
                blocks.append(
                    EvalBlock(
                        scope,
                        variant,
                        {k: float(s["mean"]) for k, s in stats.items()},
                        {k: s.get("std") for k, s in stats.items()},
                        dataset_split="test",
                    )
                )
    return blocks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_name(key: str, variant: str) -> str:
    """The model-index ``name`` of a metric: its human name + the overlap variant."""
    name = next(n for k, _, _, n in METRICS if k == key)
    return f"{name}; {variant}" if variant else name


def eval_results(blocks: list[EvalBlock], dataset_id: str, dataset_name: str) -> list[EvalResult]:
    """One ``EvalResult`` per (block, metric); ``ModelCardData`` groups them into ``model-index``."""
    results = []
    for block in blocks:
        for key, value in block.values.items():
            _, metric_type, task, _ = next(m for m in METRICS if m[0] == key)
            task_type, task_name = TASKS[task]
            results.append(
                EvalResult(
                    task_type=task_type,
                    task_name=task_name,
                    dataset_type=dataset_id,
                    dataset_name=f"{dataset_name}, {block.scope}",
                    dataset_config=block.dataset_config,
                    dataset_split=block.dataset_split,
                    metric_type=metric_type,
                    metric_value=value,
                    metric_name=metric_name(key, block.variant),
                )
            )
    return results


def evaluation_table(blocks: list[EvalBlock]) -> str:
    """Markdown: one row per metric, one column per block (CV columns show mean ± std)."""
    if not blocks:
        return "_No `metrics.json` with metrics of the evaluation contract was found next to the model._\n"
    keys = [k for k, *_ in METRICS if any(k in b.values for b in blocks)]
    header = ["metric"] + [f"{b.scope}" + (f", {b.variant}" if b.variant else "") for b in blocks]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        cells = [next(n for k, _, _, n in METRICS if k == key)]
        for block in blocks:
            if key not in block.values:
                cells.append("–")
                continue
            cell = f"{block.values[key]:.4f}"
            if block.stds.get(key) is not None:
                cell += f" ± {block.stds[key]:.4f}"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _evaluation_text(blocks: list[EvalBlock]) -> str:
    """What the evaluation columns mean: only the conventions present."""
    keys = {k for b in blocks for k in b.values}
    parts = [
        "Strict scores from the run's `metrics.json` (also in this repository). NER: exact entity spans and "
        "types (conlleval chunking), micro and macro over entity types."
    ]
    if any(k.startswith("re_") for k in keys):
        parts.append(
            "RE end-to-end *strict*: both entity spans, both entity types and the relation type must match "
            '("RE+"); *boundaries*: spans and relation type, entity types ignored; *gold entities*: relation '
            "classification when the gold entities are given."
        )
    if any(b.variant == OVERLAP_VARIANTS["overlap_removed"] for b in blocks):
        parts.append(
            '"Overlapping entities removed" drops gold entities that overlap another gold entity, their '
            "relations, and predictions over them, as much of the literature does."
        )
    if any(b.variant == OVERLAP_VARIANTS["real_text"] for b in blocks):
        parts.append(
            "Real text: the literature's test sentences all state an adverse event, real text mostly does not. "
            "The fold's held-out part of the negative sentences (`ADE-NEG.txt`, PubMed-disjoint from those "
            "trained on) is scored with the test part: a sentence is flagged when the model extracts at least "
            "one relation from it."
        )
    if any(b.stds for b in blocks):
        parts.append("Cross-validation columns: mean ± sample standard deviation over folds.")
    return " ".join(parts)


def _limitations_text(run: ModelRun, encoder: str | None, licence: Licence) -> str:
    what = "entities and relations" if run.model_type == "joint_ner_re" else "entities"
    corpus = (
        "see the training dataset's own card"
        if run.corpus == "custom"
        else "**unknown — research use**; the corpus authors ask to be cited (below)"
    )
    return f"""\
- **Research use only. Not a medical device: do not use it for clinical or pharmacovigilance decisions
  without qualified human review.** It was trained on a small corpus of one domain and will miss or invent
  {what} in other text.
- Training corpus licence: {corpus}.
- Encoder licence ({encoder or "unknown encoder"}): {licence.text}. The `license` field of this card follows
  the encoder where its licence is known (`unknown` otherwise); this project's code is Apache-2.0.
- `trust_remote_code=True` executes this repository's Python files: pin a reviewed revision.
"""


# --------------------------------------------------------------------------------------------------------
# The card
# --------------------------------------------------------------------------------------------------------

METHOD_CITATIONS = {
    "joint_ner_re": [
        "Shanchan Wu and Yifan He. 2019. Enriching Pre-trained Language Model with Entity Information for "
        "Relation Classification. CIKM 2019. arXiv:1905.08284 (the R-BERT relation head).",
        "Jacob Devlin, Ming-Wei Chang, Kenton Lee and Kristina Toutanova. 2019. BERT: Pre-training of Deep "
        "Bidirectional Transformers for Language Understanding. NAACL 2019.",
    ],
    "bert_crf": [
        "John Lafferty, Andrew McCallum and Fernando Pereira. 2001. Conditional Random Fields: Probabilistic "
        "Models for Segmenting and Labeling Sequence Data. ICML 2001.",
        "Chi Sun, Xipeng Qiu, Yige Xu and Xuanjing Huang. 2019. How to Fine-Tune BERT for Text "
        "Classification? CCL 2019 (layer-wise decreasing learning rate).",
        "Jacob Devlin, Ming-Wei Chang, Kenton Lee and Kristina Toutanova. 2019. BERT: Pre-training of Deep "
        "Bidirectional Transformers for Language Understanding. NAACL 2019.",
    ],
}


LANGUAGES = {"ade": "en", "chinese_healthner": "zh"}


def _corpus_info(run: ModelRun) -> tuple[str, str, list[str]]:
    """``(pretty name, dataset id for model-index, citation texts)`` of the training corpus."""
    corpus = run.corpus
    if corpus == "custom":
        given = str(run.training_args["dataset"])
        hub = hub_id_or_none(given)
        return (f"`{hub}`" if hub else f"local dataset `{Path(given).name}`"), hub or "custom", []
    if corpus == "ade":
        from datasets_scripts.ade_corpus import CITATION, SPLIT_CITATION

        return "ADE corpus V2 (SpERT 10-fold split)", ADE_HUB_DATASET, [CITATION, SPLIT_CITATION]
    if corpus == "chinese_healthner":
        from datasets_scripts.chinese_healthner import CITATION

        return "Chinese HealthNER family (project train/dev split)", "chinese_healthner", [CITATION.strip()]
    return "the evaluation data", "unknown", []


def _training_table(args: dict[str, Any]) -> str:
    hidden = {"output_dir", "data_dir", "report_to", "logging_steps"}  # local paths and logging only
    rows = []
    for key, value in args.items():
        if key in hidden:
            continue
        if key == "model":
            value = hub_id_or_none(str(value)) or f"local folder `{Path(str(value)).name}`"
        rows.append(f"| `{key}` | {value} |")
    return "| argument | value |\n|---|---|\n" + "\n".join(rows) + "\n" if rows else ""


def _protocol_text(run: ModelRun) -> str:
    args, metrics = run.training_args, run.metrics or {}
    corpus = run.corpus
    lines = []
    if corpus == "ade":
        lines.append(
            "Trained on the ADE corpus V2 (Gurulingappa et al., 2012; 4,272 PubMed case-report sentences with "
            "drug, adverse-effect and drug → adverse-effect relation annotations) with the standard 10-fold "
            "split of Eberts & Ulges (SpERT), used by nearly every joint extraction paper since 2018."
        )
        if args.get("no_negatives") in (True, "True"):
            lines.append(
                "It was trained on the sentences with relations only (the literature's setting, "
                "`--no-negatives`): on real text, where most sentences state no adverse event, it flags many of "
                "them (see `neg_false_positive_rate` below)."
            )
        elif "real_text" in metrics or "negatives_per_positive" in args:
            ner_on_negatives = args.get("negatives_ner_loss") in (True, "True")
            gate = (run.config or {}).get("sentence_gate")
            lines.append(
                "Besides the sentences with relations it was trained on the corpus's negative sentences "
                "(`ADE-NEG.txt`, no adverse event; the nine of ten PubMed-disjoint parts not held out for this "
                f"fold, {args.get('negatives_per_positive', 1.0)} negative per positive sentence in each epoch): "
                + ("as all-`O` sentences for the NER head, " if ner_on_negatives else "")
                + (
                    "to train a sentence gate that rejects sentences stating no adverse event, "
                    if gate
                    else ""
                )
                + "and as sentences without relations for the relation head, which also learned to say no to "
                "pairs with its own non-gold entity predictions "
                f"(`--relation-negatives {args.get('relation_negatives', 'predicted-entities')}`)."
            )
        if run.fold is not None:
            lines.append(
                f"This model was trained on the train part of fold {run.fold} and evaluated on its test part "
                "(the literature's, unchanged); `neg_false_positive_rate` and the sentence-level scores add the "
                "fold's held-out part of the negative sentences."
            )
        config = run.config or {}
        if config.get("train_max_length"):
            lines.append(
                f"Window: the pipeline splits documents into sentences (`sentencex`, language "
                f"`{config.get('language', 'en')}`) and reads at most {config['train_max_length']} tokens at a "
                f"time, the training length; relation threshold {config.get('relation_threshold', 0.5)}."
            )
        if run.cv_metrics:
            folds = run.cv_metrics.get("folds") or []
            lines.append(
                f"It is one fold of a {len(folds)}-fold cross-validation run (folds {folds}); the evaluation "
                "below also gives the mean over all folds, which is the number to compare with papers."
            )
    elif corpus == "chinese_healthner":
        lines.append(
            "Trained on the Chinese HealthNER family (HealthNER official test split + ROCLING 2023 "
            "MultiNER-Health FT/SM/WA test sets; Traditional Chinese, 10 healthcare entity types, "
            "character-level BIO)."
        )
        lines.append(
            "**The `train` / `dev` split is this project's development protocol, not the official "
            "HealthNER/ROCLING protocol**: the official HealthNER training split was not available, so all "
            "9,155 labelled sentences were split 90/10 (seeded, stratified by source). Numbers on `dev` are "
            "not comparable with published results, and the model has seen parts of the upstream test sets: "
            "do not evaluate it on them."
        )
    elif corpus == "custom":
        lines.append(
            f"Trained on {_corpus_info(run)[0]} (`train.py ner --dataset`); evaluated on its "
            f"`{args.get('eval_split') or 'validation'}` split. See that dataset's card for its licence."
        )
    if metrics.get("data"):
        lines.append(f"Data as logged by the run: {metrics['data']}.")
    if run.model_type == "bert_crf":
        head = metrics.get("head", args.get("head"))
        decay = metrics.get("layer_decay", args.get("layer_decay"))
        lines.append(
            f"Head: `{head}`; layer-wise learning-rate decay factor {decay} (a layer's rate is the rate of the "
            "layer above times this factor; 1 = off)."
        )
    n_train = metrics.get("num_train_sentences")
    if isinstance(n_train, int):
        lines.append(f"Training sentences: {n_train:,}.")
    if args.get("max_train_samples"):
        lines.append(
            f"**Only the first {args['max_train_samples']} training sentences were used** "
            "(`--max-train-samples`): a quick run, not the full protocol."
        )
    if args.get("max_eval_samples"):
        lines.append(f"**Only the first {args['max_eval_samples']} evaluation sentences were scored.**")
    text = "\n\n".join(lines)
    table = _training_table(args)
    if table:
        text += "\n\nThe run's arguments (`training_args.json`, also in this repository):\n\n" + table
    return text


def _usage_text(run: ModelRun, repo_id: str, base_model: str | None) -> str:
    if run.is_adapter:
        base = base_model or "BASE_MODEL_ID_OR_FOLDER"
        return f"""\
This repository holds a PEFT (LoRA) adapter, not a full model: the LoRA weights of the encoder and the
fully trained heads. Rebuild the task model from this repository's configuration, give it the pre-trained
encoder's weights (cut to the saved configuration), then load the adapter:

```python
from peft import PeftModel
from transformers import AutoConfig, {run.auto_class}

REVISION = "main"  # pin the commit hash you reviewed: trust_remote_code runs the repository's Python files
config = AutoConfig.from_pretrained("{repo_id}", revision=REVISION, trust_remote_code=True)
base = {run.auto_class}.from_config(config, trust_remote_code=True)  # heads come from the adapter
base.load_pretrained_encoder("{base}")  # the pre-trained encoder, cut to the saved configuration
model = PeftModel.from_pretrained(base, "{repo_id}", revision=REVISION).eval()
model = model.merge_and_unload()  # optional: a plain model, as fast as the original
```

`python push_to_hub.py model ADAPTER_DIR --merge` (modeling-ade) uploads the merged, self-contained model
instead, which also works with `pipeline(...)` and Inference Endpoints.
"""
    task = run.pipeline_task
    custom = task != "token-classification"
    pipe_note = (
        f"`{task}` is a **custom pipeline** shipped in this repository (`config.json` → `custom_pipelines`); "
        "the `pipeline_tag` of the metadata says `token-classification` because the Hub has no tag for joint "
        "entity + relation extraction."
        if custom
        else "The model's code (configuration and model classes) is shipped in this repository (`auto_map`)."
    )
    example = MODEL_KINDS[run.model_type].widget[0] if run.kind else "..."
    output_note = (
        "# {'entities': [{'type': 'Drug', 'text': ..., 'start': ..., 'end': ..., 'score': ...}, ...],\n"
        "#  'relations': [{'type': 'ADE', 'adverse_effect': {...}, 'drug': {...}, 'score': ...}]}"
        if run.model_type == "joint_ner_re"
        else "# [{'entity_group': ..., 'word': ..., 'start': ..., 'end': ..., 'score': ...}, ...]"
    )
    extra = ', aggregation_strategy="simple"' if not custom else ""
    return f"""\
The model runs its own code, so loading needs `trust_remote_code=True`. Review the Python files of this
repository and **pin the revision** you reviewed (a commit hash from *Files and versions → History*): a later
commit could change the code that runs on your machine.

```python
from transformers import {run.auto_class}, AutoTokenizer, pipeline

REVISION = "main"  # replace with the commit hash you reviewed

extract = pipeline("{task}", model="{repo_id}", revision=REVISION, trust_remote_code=True{extra})
extract({example!r})
{output_note}

model = {run.auto_class}.from_pretrained("{repo_id}", revision=REVISION, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{repo_id}", revision=REVISION)
```

{pipe_note} Needs `transformers` ≥ 5 and `torch`; the package `modeling-ade` is not needed.
"""


ENDPOINT_TEXT = """\
The Hub's hosted inference widget does not run custom code, so the widget examples above are not served
there. Deploy the repository as an **Inference Endpoint** instead: `handler.py` (a custom handler) and
`requirements.txt` are included. The endpoint takes

```json
{"inputs": "a text" , "parameters": {}}
```

or a list of texts as `inputs`, and returns the pipeline's output (a dict per text for `ade-extraction`,
a list of entities per text for `token-classification`). Locally:

```python
from handler import EndpointHandler  # run in a clone of this repository
handler = EndpointHandler(".")
handler({"inputs": ["first text", "second text"]})
```
"""


def build_model_card(
    run: ModelRun,
    repo_id: str,
    *,
    datasets: list[str] | None = None,
    base_model: str | None = None,
    merged_adapter: str | None = None,
) -> ModelCard:
    """The ``README.md`` of the repository for ``run``.

    Args:
        run: the model folder (see :func:`read_model_run`).
        repo_id: ``owner/name`` the card is written for (usage snippets).
        datasets: Hub dataset ids for the ``datasets`` metadata (default: the ADE corpus on the Hub for ADE
            models, none otherwise).
        base_model: for an adapter, its base model (default: ``adapter_config.json``'s
            ``base_model_name_or_path``).
        merged_adapter: set when the folder is the merge of an adapter into its base (the adapter's name).
    """
    kind = run.kind
    corpus_name, dataset_id, corpus_citations = _corpus_info(run)
    if datasets is None:
        datasets = (
            [ADE_HUB_DATASET]
            if run.corpus == "ade"
            else [dataset_id]
            if run.corpus == "custom" and "/" in dataset_id
            else []
        )
    if datasets:
        dataset_id = datasets[0]
    encoder = encoder_name(run)
    encoder_hub = hub_id_or_none(encoder)
    licence = ENCODER_LICENCES.get(encoder_hub or "", UNKNOWN_LICENCE)

    adapter_base = None
    if run.is_adapter:
        adapter_base = base_model or run.adapter_config.get("base_model_name_or_path")
    base_hub = hub_id_or_none(adapter_base) if run.is_adapter else encoder_hub

    blocks = evaluation_blocks(run)
    tags = ["custom_code", *(kind.tags if kind else ()), "modeling-ade"]
    if run.is_adapter:
        tags += ["peft", "lora", "adapter"]
    if merged_adapter:
        tags += ["lora", "merged"]
    card_data = ModelCardData(
        license=licence.hub_id,
        license_name=licence.name,
        license_link=licence.link,
        language=[LANGUAGES[run.corpus]] if run.corpus in LANGUAGES else None,
        library_name="peft" if run.is_adapter else "transformers",
        tags=tags,
        pipeline_tag="token-classification",
        datasets=datasets or None,
        base_model=base_hub,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(blocks, dataset_id, corpus_name) or None,
        widget=[{"text": t} for t in kind.widget] if kind and run.corpus != "custom" else None,
    )

    title = kind.title if kind else "token classification"
    encoder_text = (
        f"[`{encoder_hub}`](https://huggingface.co/{encoder_hub})"
        if encoder_hub
        else f"`{encoder or 'unknown'}`"
    )
    what = [f"# {repo_id.split('/')[-1]}", ""]
    what.append(
        f"A model for {title}, fine-tuned from the encoder {encoder_text} with modeling-ade's `train.py`."
    )
    if run.is_adapter:
        base_text = f"[`{base_hub}`](https://huggingface.co/{base_hub})" if base_hub else f"`{adapter_base}`"
        if adapter_base and not base_hub:
            base_text = f"`{Path(adapter_base).name}` (a local model folder when the adapter was trained)"
        what.append(f"\n**This is a PEFT adapter. Base model: {base_text}.**")
    if merged_adapter:
        what.append(f"\nThe weights are a LoRA adapter (`{merged_adapter}`) merged into its base model.")
    if kind:
        what += ["", "## What it does", "", kind.summary]
    labels = run.config.get("entity_types") or sorted(
        {lab.split("-", 1)[1] for lab in (run.config.get("id2label") or {}).values() if "-" in lab}
    )
    if labels:
        what.append(f"\nEntity types: {', '.join(f'`{t}`' for t in labels)}.")
    if run.config.get("relation_labels"):
        rels = [r for r in run.config["relation_labels"][1:]]
        what.append(f"Relation types: {', '.join(f'`{r}`' for r in rels)} (plus the no-relation class).")

    citations = "\n\n".join(
        [
            *METHOD_CITATIONS.get(run.model_type or "", []),
            *[f"```bibtex\n{c}\n```" if c.startswith("@") else c for c in corpus_citations],
        ]
    )
    body = (
        "\n".join(what)
        + f"""

## How to use

{_usage_text(run, repo_id, adapter_base)}
## Inference Endpoints

{ENDPOINT_TEXT if not run.is_adapter else "Inference Endpoints need the full model: push the merged model (`--merge`)."}
## Training data and protocol

{_protocol_text(run)}
## Evaluation

{_evaluation_text(blocks)}

{evaluation_table(blocks)}
## Limitations

{_limitations_text(run, encoder, licence)}
## Citation

{citations}
"""
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")
