"""``train.py mlm``: domain-adaptive continual pre-training (masked LM, optional NSP) of any encoder (not Hub code).

ClinicalBERT-style: continue BERT's own objectives on domain text, then fine-tune the result with
``train.py ade`` / ``train.py ner``. The run:

1. gathers text (``--train-file``, ``--dataset``), cleans it (:func:`~modeling_ade.mlm_data.clean_text`),
   drops duplicates and, with ``--exclude-fold K``, the sentences of ADE fold K's test part;
2. holds out ``--validation-split`` of it (seeded; whole documents with ``--nsp``);
3. builds examples: one per line (over-long lines cut into pieces, nothing dropped), ``--packing`` into
   full ``--max-length`` blocks, or ``--nsp`` sentence pairs;
4. loads ``AutoModelForMaskedLM`` (``AutoModelForPreTraining`` with ``--nsp``), creating the heads the
   checkpoint lacks (logged), measures the held-out MLM loss with fixed masks, trains with the shared
   Accelerate loop and dynamic masking, measures again after each epoch;
5. saves the model and tokenizer (``save_pretrained``: an ordinary checkpoint whose encoder loads with
   ``AutoModel.from_pretrained(OUT)``), ``metrics.json`` and ``training_args.json``.
"""

from __future__ import annotations

import argparse
import inspect
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from accelerate.logging import get_logger
from torch.utils.data import DataLoader
from transformers import AutoConfig, AutoTokenizer

from .encoders import MINILM, resolve_model_name, tokenizer_kwargs
from .mlm_data import (
    IGNORE_INDEX,
    MlmCollator,
    TextUnit,
    build_documents,
    chunk_sequence,
    clean_units,
    dedupe_units,
    encode_pairs,
    encode_texts,
    exclude_sentences,
    make_nsp_pairs,
    pack_sequences,
    pad_features,
    premask_features,
    read_drug_dose,
    read_jsonl_file,
    read_text_file,
    special_template,
    split_held_out,
)
from .sampling import LengthGroupedBatchSampler
from .settings import TrainSettings
from .training import fit, loggable, make_accelerator, save_run

logger = get_logger(__name__)

__all__ = [
    "DESCRIPTION",
    "HELP",
    "MlmSettings",
    "add_arguments",
    "build_features",
    "collect_units",
    "evaluate_mlm",
    "load_dataset_units",
    "masked_lm_class",
    "parse_dataset_spec",
    "run",
]

DRUG_DOSE_CONFIG = "drug_dose"
"""MLM-only pseudo-config of ``ade_corpus``: the sentences of ``DRUG-DOSE.rel`` (not a builder config,
since the file has no adverse-effect annotation to fit the corpus schema)."""


def _dataset_configs() -> dict[str, tuple[str, ...]]:
    from datasets_scripts import ade_corpus, chinese_healthner

    return {
        "ade_corpus": (*ade_corpus.CONFIG_NAMES, DRUG_DOSE_CONFIG),
        "chinese_healthner": chinese_healthner.DEFAULT_EXPORT_CONFIGS,
    }


# ----------------------------------------------------------------------------------------------------
# settings and arguments

HELP = "continual pre-training of an encoder: masked LM (+ optional NSP) on domain text"
DESCRIPTION = (
    "Continue masked-language-model training (15 % masking, optional next-sentence prediction) of an encoder "
    "on domain text, ClinicalBERT-style. OUT is an ordinary encoder checkpoint for `train.py ade --model OUT` "
    "or `train.py ner --model OUT`."
)


@dataclass(frozen=True, kw_only=True)
class MlmSettings(TrainSettings):
    """``train.py mlm``: the shared settings plus the fields below (the "text" and "objectives" groups of
    ``train.py mlm --help``)."""

    task = "mlm"
    model: str = MINILM
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 128
    train_file: tuple[str, ...] = ()
    text_column: str = "text"
    dataset: tuple[str, ...] = ()
    exclude_fold: int | None = None
    packing: bool = False
    validation_split: float = 0.05
    mlm_probability: float = 0.15
    whole_word_masking: bool = False
    nsp: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "train_file", tuple(self.train_file))
        object.__setattr__(self, "dataset", tuple(self.dataset))
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"--mlm-probability must be in (0, 1), got {self.mlm_probability}")
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"--validation-split must be in [0, 1), got {self.validation_split}")
        if self.nsp and self.packing:
            raise ValueError(
                "--packing and --nsp cannot be combined: NSP examples are sentence pairs (one sentence each side)"
            )
        if self.exclude_fold is not None and not 0 <= self.exclude_fold <= 9:
            raise ValueError(f"--exclude-fold must be between 0 and 9, got {self.exclude_fold}")

    @property
    def sentence_pairs(self) -> bool:
        return self.nsp


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``train.py mlm`` beyond the shared ones."""
    g = parser.add_argument_group("text")
    g.add_argument(
        "--train-file",
        nargs="+",
        default=[],
        metavar="FILE",
        help="plain text files (one document or sentence per line; blank lines separate documents for "
        "--nsp) or JSON lines (.jsonl/.json, text in --text-column)",
    )
    g.add_argument("--text-column", default="text", help="JSON-lines field holding the text (default: text)")
    g.add_argument(
        "--dataset",
        nargs="+",
        default=[],
        metavar="NAME:CONFIG[:SPLIT]",
        help="text column of a corpus of this project: ade_corpus:negatives, ade_corpus:drug_dose "
        "(DRUG-DOSE.rel sentences), ade_corpus:fold_0:train, chinese_healthner:train ...; without SPLIT "
        "every split of the config",
    )
    g.add_argument(
        "--exclude-fold",
        type=int,
        default=None,
        choices=range(10),
        metavar="K",
        help="leakage guard: remove every sentence of ADE fold K's test part from the text (matched on "
        "cleaned, ASCII-lower-cased text); the log counts what was removed",
    )
    g.add_argument(
        "--packing",
        action="store_true",
        help="concatenate texts ([SEP] between them) into full --max-length blocks instead of one "
        "example per line; the last, shorter block is kept",
    )
    g.add_argument(
        "--validation-split",
        type=float,
        default=0.05,
        help="fraction of the texts (of the documents with --nsp) held out, seeded by --seed, for the "
        "MLM loss and perplexity before and after training; 0 = none (default: 0.05)",
    )
    g = parser.add_argument_group("objectives")
    g.add_argument(
        "--mlm-probability",
        type=float,
        default=0.15,
        help="share of the tokens of each sequence selected for prediction; of those 80%% -> [MASK], "
        "10%% -> random token, 10%% unchanged (default: 0.15)",
    )
    g.add_argument(
        "--whole-word-masking",
        action="store_true",
        help="select whole words (all word pieces together); a Chinese character is a word",
    )
    g.add_argument(
        "--nsp",
        action="store_true",
        help="add next-sentence prediction (50%% next sentence of the document, 50%% a sentence of "
        "another document); only for encoders with an NSP head (BERT), an error otherwise",
    )


def parse_dataset_spec(spec: str) -> tuple[str, str, str | None]:
    """``NAME:CONFIG[:SPLIT]`` -> ``(name, config, split or None)``; raises on an unknown corpus or config."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"--dataset {spec!r}: expected NAME:CONFIG or NAME:CONFIG:SPLIT")
    configs = _dataset_configs()
    name, config = parts[0], parts[1]
    if name not in configs:
        raise ValueError(f"--dataset {spec!r}: unknown corpus {name!r}; expected one of {', '.join(configs)}")
    if config not in configs[name]:
        raise ValueError(
            f"--dataset {spec!r}: unknown {name} config {config!r}; expected one of {', '.join(configs[name])}"
        )
    return name, config, parts[2] if len(parts) == 3 else None


def _pick_splits(spec: str, splits: dict, split: str | None) -> list[str]:
    if split is None:
        return list(splits)
    if split not in splits:
        raise ValueError(f"--dataset {spec!r}: no split {split!r}; the config has {', '.join(splits)}")
    return [split]


def load_dataset_units(spec: str, data_dir: str | None = None) -> list[TextUnit]:
    """The text of one ``--dataset`` spec as units, with their documents (see ``mlm_data``)."""
    from datasets_scripts import ade_corpus
    from datasets_scripts.common import resolve_data_dir

    name, config, split = parse_dataset_spec(spec)
    if name == "ade_corpus" and config == DRUG_DOSE_CONFIG:
        if split not in (None, "train"):
            raise ValueError(f"--dataset {spec!r}: drug_dose has one split, train")
        folder = resolve_data_dir(
            data_dir,
            env_var=ade_corpus.ENV_VAR,
            default_subdir="ade_corpus_v2",
            required_files=["DRUG-DOSE.rel"],
            corpus_name="ADE corpus",
        )
        return [TextUnit(u.document, u.text, spec) for u in read_drug_dose(folder / "DRUG-DOSE.rel")]
    if name == "ade_corpus":
        splits = ade_corpus.config_examples(config, data_dir)
        file = ade_corpus.NEGATIVES_FILE if config == "negatives" else ade_corpus.RELATIONS_FILE
        units = []
        for part in _pick_splits(spec, splits, split):
            examples = splits[part]
            if config.startswith("fold_"):  # SpERT order -> document order (PubMed id, rank in it)
                examples = sorted(
                    examples, key=lambda e: (int(e["id"].split("-")[0]), int(e["id"].split("-")[-1]))
                )
            units += [TextUnit(f"{file}:{e['id'].split('-')[0]}", e["text"], spec) for e in examples]
        return units
    from datasets_scripts.chinese_healthner import load_healthner

    splits = load_healthner(config, data_dir)
    return [
        TextUnit(row["id"], row["text"], spec)
        for part in _pick_splits(spec, dict(splits), split)
        for row in splits[part]
    ]


def collect_units(settings) -> tuple[list[TextUnit], dict]:
    """All text of the run, cleaned, deduplicated and leakage-guarded; returns the units and a report of
    every count (also logged)."""
    if not settings.train_file and not settings.dataset:
        raise ValueError("give some text: --train-file FILE... and/or --dataset NAME:CONFIG[:SPLIT]...")
    specs = [parse_dataset_spec(spec) for spec in settings.dataset]  # fail fast on a typo
    units: list[TextUnit] = []
    for path in settings.train_file:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--train-file {path}: no such file")
        if Path(path).suffix.lower() in (".jsonl", ".json"):
            units += read_jsonl_file(path, settings.text_column)
        else:
            units += read_text_file(path)
    for spec in settings.dataset:
        units += load_dataset_units(spec, settings.data_dir)
    report: dict = {"texts_read": dict(Counter(u.source for u in units))}
    units, report["emptied_by_cleaning"] = clean_units(units)
    units, report["duplicates_dropped"] = dedupe_units(units)
    uses_ade = any(name == "ade_corpus" for name, _, _ in specs)
    if settings.exclude_fold is not None:
        from datasets_scripts.ade_corpus import config_examples

        only_chinese = specs and all(name == "chinese_healthner" for name, _, _ in specs)
        test = config_examples(f"fold_{settings.exclude_fold}", None if only_chinese else settings.data_dir)[
            "test"
        ]
        units, dropped, cut = exclude_sentences(units, [e["text"] for e in test])
        report["exclude_fold"] = {
            "fold": settings.exclude_fold,
            "test_sentences": len(test),
            "texts_dropped": dropped,
            "sentences_cut_from_longer_texts": cut,
        }
        logger.info(
            f"--exclude-fold {settings.exclude_fold}: dropped {dropped} texts equal to one of the fold's "
            f"{len(test)} test sentences and cut {cut} test sentences out of longer texts",
            main_process_only=True,
        )
    elif uses_ade:
        logger.warning(
            "ADE corpus text without --exclude-fold: if you fine-tune on an ADE fold afterwards, its test "
            "sentences may be in this text (pass --exclude-fold K)",
            main_process_only=True,
        )
    report["texts_kept"] = len(units)
    logger.info(
        f"text: read {report['texts_read']}; {report['emptied_by_cleaning']} empty after cleaning, "
        f"{report['duplicates_dropped']} duplicates dropped; {len(units)} texts kept",
        main_process_only=True,
    )
    if not units:
        raise ValueError("no text left after cleaning, deduplication and --exclude-fold")
    return units, report


def split_units(units: list[TextUnit], fraction: float, seed: int, by_document: bool):
    """Held-out split of texts, or of whole documents (``by_document``, for NSP: at least two, so that
    held-out pairs can have a random partner from another document)."""
    if not by_document:
        return split_held_out(units, fraction, seed)
    documents = list(dict.fromkeys(u.document for u in units))
    _, held = split_held_out(documents, fraction, seed, minimum=2)
    held = set(held)
    return [u for u in units if u.document not in held], [u for u in units if u.document in held]


# ----------------------------------------------------------------------------------------------------
# examples


def build_features(
    units: list[TextUnit], tokenizer, settings, split: str, seed: int
) -> tuple[list[dict], dict]:
    """Examples of one split (line by line, packed, or NSP pairs) and their counts (also logged)."""
    if settings.nsp:
        documents = build_documents(units)
        pairs = make_nsp_pairs(documents, seed)
        features, truncated = encode_pairs(tokenizer, pairs, settings.max_length)
        report = {
            "documents": len(documents),
            "sentences": sum(map(len, documents)),
            "pairs": len(pairs),
            "is_next": sum(p.is_next for p in pairs),
            "pairs_cut_to_max_length": truncated,
        }
        logger.info(
            f"{split}: {report['documents']} documents, {report['sentences']} sentences -> {len(pairs)} NSP "
            f"pairs ({report['is_next']} next, {len(pairs) - report['is_next']} random); {truncated} longer "
            f"than --max-length {settings.max_length}, cut (longest sentence first)",
            main_process_only=True,
        )
        return features, report
    prefix, suffix = special_template(tokenizer)
    size = settings.max_length - len(prefix) - len(suffix)
    if size < 1:
        raise ValueError(
            f"--max-length {settings.max_length} leaves no room for text after the special tokens"
        )
    encoded = encode_texts(tokenizer, [u.text for u in units])
    if settings.packing:
        separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        packed = pack_sequences(encoded, size, separator)
        pieces = list(zip(packed.blocks, packed.word_ids))
        report = {
            "texts": len(units),
            "tokens": packed.num_tokens,
            "blocks": len(pieces),
            "last_block_tokens": packed.remainder,
        }
        logger.info(
            f"{split}: {len(units)} texts, {packed.num_tokens} tokens packed into {len(pieces)} blocks of "
            f"{settings.max_length} tokens"
            + (
                f"; the last block holds {packed.remainder} text tokens (kept, shorter)"
                if packed.remainder
                else ""
            ),
            main_process_only=True,
        )
    else:
        pieces, split_texts = [], 0
        for ids, word_ids in encoded:
            chunks = chunk_sequence(ids, word_ids, size)
            split_texts += len(chunks) > 1
            pieces += chunks
        report = {
            "texts": len(units),
            "tokens": sum(len(ids) for ids, _ in encoded),
            "examples": len(pieces),
            "texts_split": split_texts,
        }
        logger.info(
            f"{split}: {len(units)} texts, {report['tokens']} tokens -> {len(pieces)} examples; {split_texts} "
            f"texts longer than --max-length {settings.max_length} were cut into several examples (nothing dropped)",
            main_process_only=True,
        )
    features = [
        {"input_ids": prefix + ids + suffix, "word_ids": [-1] * len(prefix) + word_ids + [-1] * len(suffix)}
        for ids, word_ids in pieces
    ]
    return features, report


# ----------------------------------------------------------------------------------------------------
# model


def masked_lm_class(config, *, nsp: bool, model_name: str):
    """The ``transformers`` class to continue pre-training with: ``AutoModelForMaskedLM``'s, or with ``nsp``
    ``AutoModelForPreTraining``'s, which must take ``labels`` and ``next_sentence_label`` (BERT does;
    RoBERTa, XLM-R, DeBERTa, ELECTRA, ALBERT have no NSP head)."""
    from transformers.models.auto import modeling_auto

    mapping = (
        modeling_auto.MODEL_FOR_PRETRAINING_MAPPING_NAMES
        if nsp
        else modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )
    class_name = mapping.get(config.model_type)
    cls = getattr(transformers, class_name, None) if class_name else None
    if nsp:
        accepted = set(inspect.signature(cls.forward).parameters) if cls is not None else set()
        if not {"labels", "next_sentence_label"} <= accepted:
            raise ValueError(
                f"--nsp needs an encoder with a next-sentence-prediction head (BERT-style "
                f"*ForPreTraining taking next_sentence_label); {model_name!r} is model_type "
                f"{config.model_type!r}, whose pre-training class is {class_name or 'missing'}, without one. "
                "Drop --nsp to continue masked-LM training only."
            )
    elif cls is None:
        raise ValueError(
            f"{model_name!r} (model_type {config.model_type!r}) has no masked-language-model class in "
            "transformers (AutoModelForMaskedLM)"
        )
    return cls


def load_model(model_path: str, settings):
    """The MLM (or MLM + NSP) model on the checkpoint's weights; logs the newly initialised heads.

    Returns ``(model, newly_initialised_parameter_names)``.
    """
    kwargs = {"num_hidden_layers": settings.num_hidden_layers} if settings.num_hidden_layers else {}
    config = AutoConfig.from_pretrained(model_path, **kwargs)
    cls = masked_lm_class(config, nsp=settings.nsp, model_name=settings.model)
    model, info = cls.from_pretrained(model_path, output_loading_info=True, **kwargs)
    missing = sorted(info["missing_keys"])
    unexpected = sorted(info["unexpected_keys"])
    if missing:
        logger.info(
            f"{cls.__name__}: {len(missing)} weights are not in {settings.model} and were newly initialised "
            f"(the checkpoint has no such head): {', '.join(missing)}",
            main_process_only=True,
        )
    else:
        logger.info(f"{cls.__name__}: every weight loaded from {settings.model}", main_process_only=True)
    if unexpected:
        shown = sorted({".".join(k.split(".")[:3]) for k in unexpected})
        logger.info(
            f"{len(unexpected)} weights of {settings.model} are not used by {cls.__name__} (dropped layers, "
            f"pooler ...): {', '.join(shown)}",
            main_process_only=True,
        )
    return model, missing


@torch.no_grad()
def evaluate_mlm(accelerator, model, loader) -> dict:
    """Held-out MLM loss (mean cross-entropy over the masked tokens), perplexity ``exp(loss)`` and, for
    NSP batches, NSP loss and accuracy. ``loader`` is prepared and yields pre-masked batches."""
    model.eval()
    totals, with_nsp = Counter(), False
    for batch in loader:
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label")}
        with accelerator.autocast():
            outputs = model(**inputs)
        logits = outputs.logits if getattr(outputs, "logits", None) is not None else outputs.prediction_logits
        labels = batch["labels"]
        selected = labels != IGNORE_INDEX  # shape: (B, T)
        token_loss = torch.nn.functional.cross_entropy(
            logits[selected].float(), labels[selected], reduction="none"
        )  # shape: (N,)
        per_sample = torch.zeros(labels.shape[0], device=labels.device).index_add_(
            0, selected.nonzero()[:, 0], token_loss
        )  # shape: (B,)
        values = [per_sample, selected.sum(1).float()]
        if "next_sentence_label" in batch:
            nsp_logits = outputs.seq_relationship_logits.float()  # shape: (B, 2)
            target = batch["next_sentence_label"]
            values += [
                torch.nn.functional.cross_entropy(nsp_logits, target, reduction="none"),
                (nsp_logits.argmax(-1) == target).float(),
            ]
        gathered = accelerator.gather_for_metrics(tuple(values))
        totals["mlm_loss_sum"] += gathered[0].sum().item()
        totals["masked_tokens"] += gathered[1].sum().item()
        totals["examples"] += gathered[1].numel()
        if len(gathered) > 2:
            with_nsp = True
            totals["nsp_loss_sum"] += gathered[2].sum().item()
            totals["nsp_correct"] += gathered[3].sum().item()
    loss = totals["mlm_loss_sum"] / max(totals["masked_tokens"], 1)
    result = {
        "mlm_loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "masked_tokens": int(totals["masked_tokens"]),
        "examples": int(totals["examples"]),
    }
    if with_nsp:
        result["nsp_loss"] = totals["nsp_loss_sum"] / max(totals["examples"], 1)
        result["nsp_accuracy"] = totals["nsp_correct"] / max(totals["examples"], 1)
    return result


# ----------------------------------------------------------------------------------------------------
# the run


def run(settings: MlmSettings) -> dict:
    """``train.py mlm``: continue pre-training ``settings.model``; save model, tokenizer and ``metrics.json`` to
    ``settings.output_dir``. Returns the metrics (``before`` / ``after`` held-out MLM loss and perplexity)."""
    from accelerate.utils import set_seed

    model_path = resolve_model_name(settings.model)
    config = AutoConfig.from_pretrained(model_path)
    masked_lm_class(
        config, nsp=settings.nsp, model_name=settings.model
    )  # an unsupported --nsp fails before any work
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and settings.max_length > positions:
        raise ValueError(f"--max-length {settings.max_length} exceeds the encoder's {positions} positions")
    accelerator = make_accelerator(settings)
    if accelerator.is_main_process:
        accelerator.init_trackers("mlm", config=loggable(settings.record()))
    set_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path, **tokenizer_kwargs(settings.model))
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(
            f"the tokenizer of {settings.model} has no mask or pad token; it cannot do masked LM"
        )

    with accelerator.main_process_first():
        units, data_report = collect_units(settings)
        train_units, eval_units = split_units(
            units, settings.validation_split, settings.seed, by_document=settings.nsp
        )
        train_units = train_units[: settings.max_train_samples]
        eval_units = eval_units[: settings.max_eval_samples]
        train_features, data_report["train"] = build_features(
            train_units, tokenizer, settings, "train", settings.seed
        )
        eval_features, data_report["held_out"] = (
            build_features(eval_units, tokenizer, settings, "held-out", settings.seed + 1)
            if eval_units
            else ([], {})
        )
    if not eval_features:
        logger.warning(
            "no held-out text (--validation-split 0): no MLM loss or perplexity", main_process_only=True
        )

    model, newly_initialised = load_model(model_path, settings)
    vocab_size = len(tokenizer)
    if vocab_size > model.get_input_embeddings().num_embeddings:
        raise ValueError(
            f"the tokenizer has {vocab_size} tokens but the model's embedding only "
            f"{model.get_input_embeddings().num_embeddings}"
        )
    collator = MlmCollator(
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        special_ids=tokenizer.all_special_ids,
        vocab_size=vocab_size,
        mlm_probability=settings.mlm_probability,
        whole_word_masking=settings.whole_word_masking,
        seed=settings.seed + accelerator.process_index,
    )
    train_loader = DataLoader(
        train_features,
        batch_sampler=LengthGroupedBatchSampler(
            [len(f["input_ids"]) for f in train_features], settings.batch_size, settings.seed
        ),
        collate_fn=collator,
    )
    metrics: dict = {"data": data_report, "newly_initialised_weights": newly_initialised}
    evaluate = None
    if eval_features:
        # Fixed masks (seed = --seed) so "before" and "after" score the very same masked inputs.
        masked_eval = premask_features(eval_features, collator, seed=settings.seed)
        order = sorted(range(len(masked_eval)), key=lambda i: len(masked_eval[i]["input_ids"]))
        eval_loader = accelerator.prepare(
            DataLoader(
                [masked_eval[i] for i in order],
                batch_size=settings.eval_batch_size,
                collate_fn=lambda f: {
                    k: v for k, v in pad_features(f, tokenizer.pad_token_id).items() if k != "word_ids"
                },
            )
        )

        def evaluate() -> dict:
            return evaluate_mlm(accelerator, model, eval_loader)

        model.to(accelerator.device)
        metrics["before"] = evaluate()
        metrics["eval_masking_seed"] = settings.seed
        logger.info(f"held-out before training: {metrics['before']}", main_process_only=True)

    history = fit(
        accelerator,
        model,
        train_loader,
        settings,
        description="mlm",
        on_epoch_end=(lambda epoch: {f"eval_{k}": v for k, v in evaluate().items()}) if evaluate else None,
        encoder_attr=model.base_model_prefix,
    )
    if evaluate is not None:
        metrics["after"] = {
            k.removeprefix("eval_"): v for k, v in history[-1].items() if k.startswith("eval_")
        }
        logger.info(
            f"held-out MLM loss {metrics['before']['mlm_loss']:.4f} -> {metrics['after']['mlm_loss']:.4f}, "
            f"perplexity {metrics['before']['perplexity']:.2f} -> {metrics['after']['perplexity']:.2f}",
            main_process_only=True,
        )
    metrics["train_history"] = history
    save_run(accelerator, model, tokenizer, settings, metrics)
    return metrics
