"""``train.py ner``: BERT-CRF (or softmax) token classification and its strict evaluation (not Hub code).

Data: the Chinese HealthNER development protocol by default, or any dataset of words + BIO tags given by
``--dataset``; reading, tag repair and windowing live in :mod:`modeling_ade.ner_data`. Evaluation is strict
entity-level over the original words (characters): predicted tags are mapped back to the words and scored
with :func:`modeling_ade.metrics.ner_scores_from_tags` (conlleval decoding).

The task shape every ``*_task.py`` module follows: ``HELP``, ``DESCRIPTION``, a settings dataclass
(:class:`NerSettings`), :func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from accelerate.logging import get_logger
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .encoders import hub_name, resolve_model_name
from .hub.modeling_bert_crf import BertCrfForTokenClassification
from .lora import apply_lora_from_settings
from .metrics import format_per_type_table, ner_scores_from_tags
from .ner_data import (
    EncodedWindow,
    NerCollator,
    NerEncodingCounts,
    TaggedSentences,
    bio_label_list,
    encode_sentences,
    load_ner_data,
    load_tokenizer,
)
from .sampling import LengthGroupedBatchSampler
from .settings import FineTuneSettings, add_lora_arguments
from .training import fit, loggable, make_accelerator, save_run

logger = get_logger(__name__)

HELP = "BERT-CRF token classification (Chinese HealthNER by default, or any word + BIO-tag dataset)"
DESCRIPTION = (
    "Encoder + two linear layers + CRF (or softmax), trained with layer-wise lr decay. Defaults are the "
    "paper's: 3 epochs, batch 16, lr 4e-5, layer decay 1/1.2; max length 512 covers every HealthNER sentence. "
    "Data: the Chinese HealthNER train/dev protocol, or --dataset."
)


# train+dev: the final model, retrained on every labelled sentence
HEALTHNER_TRAIN_SPLITS = ("train", "train+dev")


@dataclass(frozen=True, kw_only=True)
class NerSettings(FineTuneSettings):
    """``train.py ner``: the shared settings with the paper's defaults, plus the fields below (the "NER model"
    and "data" groups of ``train.py ner --help``)."""

    task = "ner"
    long_sentences = "split at word boundaries into consecutive windows (nothing cut), counted in the log"
    model: str = "moka-ai/m3e-small"
    epochs: int = 3
    learning_rate: float = 4e-5
    layer_decay: float = 1 / 1.2
    max_length: int = 512
    head: str = "crf"
    no_bio_constraints: bool = False
    dataset: str | None = None
    dataset_config: str | None = None
    eval_dataset_config: str | None = None
    train_split: str | None = None
    eval_split: str | None = None
    tokens_column: str = "tokens"
    tags_column: str = "ner_tags"
    eval_every_epoch: bool = False

    @property
    def trains_on_eval(self) -> bool:
        """The evaluation sentences are among the training ones, so the score is not held out: ``--train-split
        train+dev`` (HealthNER), or a ``--dataset`` whose training splits include the evaluation split by name
        (``train+validation`` / ``validation``; slices are not compared)."""
        if self.dataset is None:
            return self.train_split == "train+dev"
        train, evaluation = self.train_split or "train", self.eval_split or "validation"
        if "[" in train or "[" in evaluation:
            return False
        same_config = (self.eval_dataset_config or self.dataset_config) == self.dataset_config
        return same_config and evaluation.strip() in {part.strip() for part in train.split("+")}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.head not in ("crf", "softmax"):
            raise ValueError(f"--head must be crf or softmax, got {self.head!r}")
        if self.dataset is None:
            if self.train_split not in (None, *HEALTHNER_TRAIN_SPLITS):
                raise ValueError(
                    f"--train-split without --dataset is one of {', '.join(HEALTHNER_TRAIN_SPLITS)}, "
                    f"got {self.train_split!r}"
                )
            for name in ("dataset_config", "eval_dataset_config", "eval_split"):
                if getattr(self, name) is not None:
                    raise ValueError(f"--{name.replace('_', '-')} applies to --dataset only")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``train.py ner`` beyond the shared ones."""
    g = parser.add_argument_group("NER model")
    g.add_argument(
        "--head",
        choices=["crf", "softmax"],
        default=NerSettings.head,
        help="crf: CRF loss and Viterbi decoding; softmax: per-token cross-entropy (default: crf)",
    )
    g.add_argument(
        "--no-bio-constraints",
        action="store_true",
        help="let the CRF learn every transition (by default O -> I-X, B-X -> I-Y, I-X -> I-Y and "
        "starting with I-X are forbidden)",
    )
    g.add_argument(
        "--head-learning-rate",
        type=float,
        default=None,
        help="learning rate of the two linear layers (default: --learning-rate)",
    )
    g.add_argument(
        "--crf-learning-rate",
        type=float,
        default=None,
        help="learning rate of the CRF transition scores (default: the head's)",
    )
    g.add_argument(
        "--eval-every-epoch",
        action="store_true",
        help="also score the evaluation split after every epoch (train_history in metrics.json), to see where "
        "it stops improving; the final scores are those of the last epoch either way",
    )
    add_lora_arguments(parser)
    g = parser.add_argument_group("data (default: Chinese HealthNER train / dev from --data-dir)")
    g.add_argument(
        "--dataset",
        default=None,
        help="another dataset of words + BIO tags: a folder (e.g. a Parquet export with a dataset card), "
        "a local .json / .jsonl / .parquet file, or a Hub dataset id",
    )
    g.add_argument("--dataset-config", default=None, help="configuration of --dataset (default: its default)")
    g.add_argument(
        "--eval-dataset-config",
        default=None,
        help="configuration of --dataset to evaluate on (default: --dataset-config)",
    )
    g.add_argument(
        "--train-split",
        default=None,
        help="split of --dataset to train on, slices allowed: train[:90%%] (default: train); without --dataset, "
        "train+dev retrains on all 9,155 labelled HealthNER sentences (the final model: its dev score is then "
        "not held out, and metrics.json and the log say so)",
    )
    g.add_argument(
        "--eval-split",
        default=None,
        help="split of --dataset to evaluate on, slices allowed: train[90%%:] (default: validation)",
    )
    g.add_argument(
        "--tokens-column",
        default=NerSettings.tokens_column,
        help="column of --dataset holding each sentence's words (characters for Chinese) (default: tokens)",
    )
    g.add_argument(
        "--tags-column",
        default=NerSettings.tags_column,
        help="column of --dataset holding the BIO tags: ClassLabel ids or strings (default: ner_tags)",
    )


# ----------------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def predict_word_tags(
    accelerator, model, loader, windows: Sequence[EncodedWindow], data: TaggedSentences, id2label
) -> list[list[str]]:
    """Predicted tag strings for every word of every sentence: the decoded tag of the word's first
    sub-word, ``O`` for a word without a token. ``loader`` is prepared; rows are gathered with
    ``gather_for_metrics`` so no window is duplicated or dropped."""
    model.eval()
    predicted = [["O"] * len(words) for words in data.words]
    for batch in tqdm(loader, desc="evaluate", disable=not accelerator.is_local_main_process):
        indices = batch.pop("index").tolist()
        tags = model(**batch).tags  # shape: (B, T)
        rows = [(index, tags[b][batch["decode_mask"][b]].tolist()) for b, index in enumerate(indices)]
        for index, window_tags in accelerator.gather_for_metrics(rows, use_gather_object=True):
            window = windows[index]
            for word, tag in zip(window.words, window_tags):
                predicted[window.sentence][word] = id2label[tag]
    return predicted


def format_ner_table(scores: dict, digits: int = 4) -> str:
    """Markdown table of per-type and micro / macro precision, recall, F1 and support."""
    return format_per_type_table(scores["per_type"], scores, "ner", scores["n_gold_entities"], digits)


# ----------------------------------------------------------------------------------------------------
# the run


def _log_counts(split: str, counts: NerEncodingCounts, max_length: int) -> None:
    logger.info(
        f"{split}: {counts.sentences} sentences, {counts.words} words; {counts.longer_than_max_length} "
        f"longer than --max-length {max_length} (split into windows, nothing cut; {counts.windows} "
        f"inputs in all); {counts.words_without_token} words without a token (dropped by the tokenizer: "
        f"predicted O, still scored), in {counts.gold_entities_with_dropped_words} of "
        f"{counts.gold_entities} gold entities; {counts.words_split_into_subwords} words of several "
        f"sub-words (tag on the first); {counts.labels_repaired} training labels I-X -> B-X",
        main_process_only=True,
    )


def run(settings: NerSettings) -> dict:
    """Train on the training split, evaluate on the evaluation split, save model + tokenizer +
    ``metrics.json`` + ``training_args.json`` to ``settings.output_dir``; returns the metrics.

    With ``--lora-r`` the encoder gets LoRA adapters, the two linear layers and the CRF are trained fully;
    evaluation runs the adapted model and OUT holds the adapter folder (:mod:`modeling_ade.lora`)."""
    from accelerate.utils import set_seed

    accelerator = make_accelerator(settings)
    if accelerator.is_main_process:
        accelerator.init_trackers("ner", config=loggable(settings.record()))
    train_data, eval_data, where = load_ner_data(settings)
    train_data = TaggedSentences(
        train_data.words[: settings.max_train_samples],
        train_data.tags[: settings.max_train_samples],
        train_data.label_names,
    )
    eval_data = TaggedSentences(
        eval_data.words[: settings.max_eval_samples],
        eval_data.tags[: settings.max_eval_samples],
        eval_data.label_names,
    )
    labels = bio_label_list([train_data, eval_data])
    logger.info(f"data: {where}; {len(labels)} labels: {labels}", main_process_only=True)

    set_seed(settings.seed)
    model_path = resolve_model_name(settings.model)
    tokenizer = load_tokenizer(settings.model, model_path)
    encoder_kwargs = {"num_hidden_layers": settings.num_hidden_layers} if settings.num_hidden_layers else {}
    model = BertCrfForTokenClassification.from_encoder(
        model_path,
        encoder_kwargs=encoder_kwargs,
        tokenizer=tokenizer,
        id2label=dict(enumerate(labels)),
        head=settings.head,
        use_bio_constraints=not settings.no_bio_constraints,
    )
    model.config.encoder_config._name_or_path = hub_name(
        settings.model
    )  # no local path travels with the model
    positions = model.config.max_position_embeddings
    if positions is not None and settings.max_length > positions:
        raise ValueError(f"--max-length {settings.max_length} exceeds the encoder's {positions} positions")
    label2id = model.config.label2id
    model, lora = apply_lora_from_settings(model, settings)  # unchanged without --lora-r
    with accelerator.main_process_first():
        train_windows, train_counts = encode_sentences(
            train_data, tokenizer, label2id, settings.max_length, with_labels=True
        )
        eval_windows, eval_counts = encode_sentences(
            eval_data, tokenizer, label2id, settings.max_length, with_labels=False
        )
    _log_counts("train", train_counts, settings.max_length)
    _log_counts("evaluation", eval_counts, settings.max_length)

    collator = NerCollator(tokenizer.pad_token_id)
    train_features = [{k: v for k, v in w.features.items() if k != "decode_mask"} for w in train_windows]
    train_loader = DataLoader(
        train_features,
        batch_sampler=LengthGroupedBatchSampler(
            [len(f["input_ids"]) for f in train_features], settings.batch_size, settings.seed
        ),
        collate_fn=collator,
    )
    order = sorted(range(len(eval_windows)), key=lambda i: len(eval_windows[i].features["input_ids"]))
    eval_loader = accelerator.prepare(
        DataLoader(
            [{**eval_windows[i].features, "index": i} for i in order],
            batch_size=settings.eval_batch_size,
            collate_fn=collator,
        )
    )

    def score_epoch(_epoch: int) -> dict:
        tags = predict_word_tags(
            accelerator, model, eval_loader, eval_windows, eval_data, model.config.id2label
        )
        scores = ner_scores_from_tags(eval_data.tags, tags)
        return {
            f"eval_{k}": scores[k]
            for k in ("ner_precision_micro", "ner_recall_micro", "ner_f1_micro", "ner_f1_macro")
        }

    history = fit(
        accelerator,
        model,
        train_loader,
        settings,
        description="ner",
        on_epoch_end=score_epoch if settings.eval_every_epoch else None,
    )
    unwrapped = accelerator.unwrap_model(model)
    start = time.perf_counter()
    predicted = predict_word_tags(
        accelerator, model, eval_loader, eval_windows, eval_data, unwrapped.config.id2label
    )
    eval_seconds = time.perf_counter() - start
    metrics = ner_scores_from_tags(eval_data.tags, predicted)
    metrics.update(
        num_train_sentences=len(train_data.words),
        num_eval_sentences=len(eval_data.words),
        train_history=history,
        train_seconds_per_epoch=sum(h["epoch_seconds"] for h in history) / max(len(history), 1),
        eval_seconds=eval_seconds,
        encoding={"train": asdict(train_counts), "evaluation": asdict(eval_counts)},
        data=where,
        eval_held_out=not settings.trains_on_eval,
        head=settings.head,
        layer_decay=settings.layer_decay,
    )
    if lora is not None:
        metrics["lora"] = lora
    save_run(accelerator, model, tokenizer, settings, metrics)
    if accelerator.is_main_process:
        print(
            f"\n{where}, evaluation split, strict entity-level scores "
            f"(head {settings.head}, layer decay {settings.layer_decay:g}):\n" + format_ner_table(metrics)
        )
    return metrics


__all__ = [
    "DESCRIPTION",
    "HELP",
    "NerSettings",
    "add_arguments",
    "format_ner_table",
    "predict_word_tags",
    "run",
]
