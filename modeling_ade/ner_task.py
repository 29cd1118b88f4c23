"""``train.py ner``: BERT-CRF (or softmax) token classification and its strict evaluation (not Hub code).

Data: the Chinese HealthNER development protocol by default (``load_healthner("train")["train"]`` to
train, ``load_healthner("dev")["validation"]`` to evaluate), or any dataset of words + BIO tags given by
``--dataset`` (an exported Parquet folder, a local JSON / JSON-lines / Parquet file, or a Hub id).

Words -> model inputs (:func:`encode_sentences`). Each sentence is tokenised as pre-split words
(``is_split_into_words=True``: for Chinese, one character per word, so characters are never merged into
one token). A word's tag goes on its first sub-word; every other token gets -100. What cannot be
represented one to one is counted and logged, never silent:

- a word that yields no token (whitespace characters such as U+3000 or U+FEFF, control characters)
  is *dropped*: it gets no label, is predicted ``O``, and still counts in the evaluation; gold entities
  containing a dropped word are counted (they cannot be predicted exactly);
- a sentence longer than ``--max-length`` tokens is split at word boundaries into consecutive windows
  of at most ``--max-length`` tokens (nothing is cut); each window is its own sequence in training and
  evaluation, and the predictions of the windows are joined back;
- tags as loaded are repaired by :func:`datasets_scripts.common.repair_bio`, the one repair path the
  HealthNER files use too (``O-SYMP`` -> ``O``, an orphan ``I-X`` -> ``B-X``, ...), with one warning
  per split that counts each kind and names the first rows;
- in the *training labels* only, an ``I-X`` that does not continue an ``X`` entity over the labelled
  positions (after a dropped word or at a window start) becomes ``B-X``, so that the CRF's BIO
  constraints accept the gold path; counted as ``labels_repaired``.

Evaluation is strict entity-level over the original words (characters): predicted tags are mapped back
to the words and scored with :func:`modeling_ade.metrics.ner_scores_from_tags` (conlleval decoding).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate.logging import get_logger
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from datasets_scripts.common import describe_repairs, repair_bio

from .ade_data import LengthGroupedBatchSampler
from .configuration_bert_crf import check_bio_labels
from .encoders import hub_name, resolve_model_name, tokenizer_kwargs
from .lora import apply_lora_from_args, save_adapter
from .metrics import bio_to_spans, ner_scores_from_tags
from .modeling_bert_crf import IGNORE, BertCrfForTokenClassification
from .training import fit, loggable, make_accelerator, run_record, write_json

logger = get_logger(__name__)
plain_logger = logging.getLogger(__name__)  # for helpers that also run outside an Accelerate run


# ----------------------------------------------------------------------------------------------------
# data


@dataclass
class TaggedSentences:
    """Sentences as words and BIO tag strings; ``words[i]`` and ``tags[i]`` have the same length."""

    words: list[list[str]]
    tags: list[list[str]]
    label_names: list[str] | None = None  # the ClassLabel names when the tags came as ids


def _column(dataset, name: str, flag: str, where: str):
    if name not in dataset.column_names:
        raise ValueError(
            f"{flag} {name!r}: no such column in {where}; its columns are {dataset.column_names}"
        )
    return dataset.features[name]


def tagged_sentences_from_dataset(
    dataset, tokens_column: str, tags_column: str, where: str
) -> TaggedSentences:
    """Words and tag strings from a ``datasets.Dataset`` with a list-of-strings column and a tag column
    (a sequence of ``ClassLabel`` ids or of strings).

    Tags are repaired with :func:`~datasets_scripts.common.repair_bio` (one logged warning per split).

    Raises:
        ValueError: a missing column (named, with the columns there are), integer tags without
            ``ClassLabel`` names, or a sentence whose words and tags differ in number.
    """

    _column(dataset, tokens_column, "--tokens-column", where)
    tag_feature = _column(dataset, tags_column, "--tags-column", where)
    inner = getattr(tag_feature, "feature", None)
    names = list(inner.names) if hasattr(inner, "names") else None
    words, tags, totals, repaired_rows = [], [], Counter(), []
    for index, (row_words, row_tags) in enumerate(zip(dataset[tokens_column], dataset[tags_column])):
        if not isinstance(row_words, list) or not all(isinstance(w, str) for w in row_words):
            raise ValueError(f"{where}: row {index}: column {tokens_column!r} must be a list of strings")
        if names is not None:
            row_tags = [names[i] for i in row_tags]
        elif not all(isinstance(t, str) for t in row_tags):
            raise ValueError(
                f"{where}: row {index}: column {tags_column!r} holds {type(row_tags[0]).__name__} tags "
                "without ClassLabel names; give tag strings or a Sequence(ClassLabel) feature"
            )
        if len(row_words) != len(row_tags):
            raise ValueError(
                f"{where}: row {index}: {len(row_words)} words in {tokens_column!r} but "
                f"{len(row_tags)} tags in {tags_column!r}"
            )
        row_tags, counts = repair_bio(row_tags)
        if counts:
            totals.update(counts)
            repaired_rows.append(index)
        words.append(list(row_words))
        tags.append(row_tags)
    if totals:
        # plain logging: this runs before (and without) an Accelerator
        logging.getLogger(__name__).warning(
            describe_repairs(totals, where, len(repaired_rows), len(tags), repaired_rows, "row")
        )
    return TaggedSentences(words, tags, names)


def load_split(dataset: str, config: str | None, split: str):
    """``datasets.Dataset`` of one split (slices such as ``train[:100]`` allowed) of a local file, a
    folder (e.g. a Parquet export with a dataset card) or a Hub id."""
    import datasets

    path = Path(dataset)
    if path.is_file():
        builders = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
        if path.suffix not in builders:
            raise ValueError(
                f"--dataset {dataset!r}: a file must end in {', '.join(builders)}, got {path.suffix!r}"
            )
        return datasets.load_dataset(builders[path.suffix], data_files=str(path), split=split)
    return datasets.load_dataset(dataset, config, split=split)


def load_ner_data(args) -> tuple[TaggedSentences, TaggedSentences, str]:
    """Training and evaluation sentences of a ``train.py ner`` run, and a description for the log."""
    if args.dataset is None:
        from datasets_scripts.chinese_healthner import load_healthner

        for flag in ("dataset_config", "eval_dataset_config", "train_split", "eval_split"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} applies to --dataset only")
        train = load_healthner("train", data_dir=args.data_dir)["train"]
        evaluation = load_healthner("dev", data_dir=args.data_dir)["validation"]
        where = "Chinese HealthNER train (train) / dev (validation)"
    else:
        train_split, eval_split = args.train_split or "train", args.eval_split or "validation"
        eval_config = args.eval_dataset_config or args.dataset_config
        train = load_split(args.dataset, args.dataset_config, train_split)
        evaluation = load_split(args.dataset, eval_config, eval_split)
        where = f"{args.dataset} ({args.dataset_config or 'default'}: {train_split} / {eval_config or 'default'}: {eval_split})"
    train_data = tagged_sentences_from_dataset(
        train, args.tokens_column, args.tags_column, f"{where}, training split"
    )
    eval_data = tagged_sentences_from_dataset(
        evaluation, args.tokens_column, args.tags_column, f"{where}, evaluation split"
    )
    return train_data, eval_data, where


def bio_label_list(data: Sequence[TaggedSentences]) -> list[str]:
    """The label list (index = tag id) for sentences of BIO tags.

    ``ClassLabel`` names keep their order (``B-X`` / ``I-X`` missing from it are appended); otherwise
    ``O`` then ``B-X``, ``I-X`` for every type in sorted order.

    Raises:
        ValueError: a tag that is not ``O``, ``B-<type>`` or ``I-<type>`` (with sentence and position).
    """
    names = next((d.label_names for d in data if d.label_names is not None), None)
    types: dict[str, None] = {}
    for part in data:
        for index, tags in enumerate(part.tags):
            for position, tag in enumerate(tags):
                if tag == "O":
                    continue
                if len(tag) > 2 and tag[:2] in ("B-", "I-"):
                    types.setdefault(tag[2:], None)
                    continue
                raise ValueError(
                    f"sentence {index}, word {position}: tag {tag!r} is not 'O', 'B-<type>' or 'I-<type>' "
                    "(only BIO tags are supported)"
                )
    if names is None:
        labels = ["O"] + [f"{p}-{t}" for t in sorted(types) for p in ("B", "I")]
    else:
        labels = list(names)
        if "O" not in labels:
            labels.insert(0, "O")
        for t in [*[n[2:] for n in names if n != "O" and n[:2] in ("B-", "I-")], *types]:
            for p in ("B", "I"):
                if f"{p}-{t}" not in labels:
                    labels.append(f"{p}-{t}")
    check_bio_labels(labels)
    return labels


# ----------------------------------------------------------------------------------------------------
# tokenizer


def load_tokenizer(model_name: str, model_path: str):
    """The encoder's fast tokenizer, lower-casing when its vocabulary is uncased.

    m3e-small ships ``do_lower_case=false`` with an uncased (bert-base-chinese) vocabulary, so Latin
    capitals would all become ``[UNK]``; ``do_lower_case=True`` (from :func:`encoders.tokenizer_kwargs`,
    or detected: ``"A"`` is unknown while ``"a"`` is known) sets the backend normaliser's ``lowercase``.
    """
    kwargs = tokenizer_kwargs(model_name)
    tokenizer = AutoTokenizer.from_pretrained(model_path, **kwargs)
    if not tokenizer.is_fast:
        raise ValueError(
            f"--model {model_name!r}: a fast tokenizer is needed (word ids), got {type(tokenizer)}"
        )
    unk = tokenizer.unk_token_id
    if (
        "do_lower_case" not in kwargs
        and unk is not None
        and tokenizer.convert_tokens_to_ids(tokenizer.tokenize("A")) == [unk]
        and tokenizer.convert_tokens_to_ids("a") != unk
    ):
        plain_logger.info(f"{model_name}: uncased vocabulary, loading its tokenizer with do_lower_case=True")
        tokenizer = AutoTokenizer.from_pretrained(model_path, **kwargs, do_lower_case=True)
    return tokenizer


# ----------------------------------------------------------------------------------------------------
# encoding


@dataclass
class NerEncodingCounts:
    """What encoding had to bend; logged so nothing is lost silently."""

    sentences: int = 0
    words: int = 0
    longer_than_max_length: int = 0  # split into windows (nothing cut)
    windows: int = 0
    words_without_token: int = 0  # dropped by the tokenizer: no label, predicted O
    words_split_into_subwords: int = 0  # label on the first sub-word, -100 on the others
    gold_entities: int = 0
    gold_entities_with_dropped_words: int = 0  # cannot be predicted exactly
    labels_repaired: int = 0  # training labels: I-X not continuing X -> B-X


@dataclass
class EncodedWindow:
    """One model input: ``features`` (lists, unpadded) and, per decoded position in order, the index of
    its word in the sentence (``words``)."""

    sentence: int
    features: dict[str, list[int]]
    words: list[int]


def window_bounds(token_counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive word ranges ``[start, end)`` whose token counts sum to at most ``budget`` each.

    Greedy, at word boundaries; words with no token join the current window. Raises ``ValueError``
    when one word alone needs more than ``budget`` tokens.
    """
    bounds, start, used = [], 0, 0
    for index, count in enumerate(token_counts):
        if count > budget:
            raise ValueError(f"word {index} needs {count} tokens, more than the {budget} a window holds")
        if used + count > budget:
            bounds.append((start, index))
            start, used = index, 0
        used += count
    bounds.append((start, len(token_counts)))
    return bounds


def encode_sentences(
    data: TaggedSentences,
    tokenizer,
    label2id: dict[str, int],
    max_length: int,
    *,
    with_labels: bool,
) -> tuple[list[EncodedWindow], NerEncodingCounts]:
    """Tokenise pre-split sentences into model inputs of at most ``max_length`` tokens (module docstring).

    Features: ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer makes them),
    ``decode_mask`` (1 at the first sub-word of each word), and with ``with_labels`` ``labels`` (tag ids
    at first sub-words, repaired as described in the module docstring, -100 elsewhere).
    """
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ValueError(f"--max-length {max_length} leaves no room next to the special tokens")
    counts = NerEncodingCounts(sentences=len(data.words))
    plain = tokenizer(data.words, is_split_into_words=True, add_special_tokens=False) if data.words else None
    windows: list[EncodedWindow] = []
    for index, (words, tags) in enumerate(zip(data.words, data.tags)):
        token_counts = [0] * len(words)
        for word in plain.word_ids(index):
            token_counts[word] += 1
        dropped = {w for w, c in enumerate(token_counts) if c == 0}
        counts.words += len(words)
        counts.words_without_token += len(dropped)
        counts.words_split_into_subwords += sum(c > 1 for c in token_counts)
        gold = bio_to_spans(tags)
        counts.gold_entities += len(gold)
        counts.gold_entities_with_dropped_words += sum(
            any(w in dropped for w in range(start, end)) for _, start, end in gold
        )
        bounds = window_bounds(token_counts, budget)
        counts.longer_than_max_length += len(bounds) > 1
        for start, end in bounds:
            encoding = tokenizer(words[start:end], is_split_into_words=True)
            word_ids = encoding.word_ids()
            if len(word_ids) > max_length:  # the words tokenise differently on their own
                raise ValueError(
                    f"sentence {index}: window of words {start}..{end} gives {len(word_ids)} tokens "
                    f"> --max-length {max_length}"
                )
            first = [t for t, w in enumerate(word_ids) if w is not None and (t == 0 or word_ids[t - 1] != w)]
            features = {k: list(v) for k, v in encoding.items()}
            features["decode_mask"] = [0] * len(word_ids)
            for t in first:
                features["decode_mask"][t] = 1
            window_words = [start + word_ids[t] for t in first]
            if with_labels:
                window_tags, changed = repair_bio([tags[w] for w in window_words])
                counts.labels_repaired += sum(changed.values())
                features["labels"] = [IGNORE] * len(word_ids)
                for t, tag in zip(first, window_tags):
                    features["labels"][t] = label2id[tag]
            windows.append(EncodedWindow(index, features, window_words))
    counts.windows = len(windows)
    return windows, counts


class NerCollator:
    """Pads feature dicts to the batch's longest input; ``decode_mask`` becomes bool, ``index`` (when
    present) a long tensor."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        pad_values = {"input_ids": self.pad_token_id, "labels": IGNORE}
        batch = {}
        for key in features[0]:
            if key == "index":
                batch[key] = torch.tensor([f[key] for f in features])
                continue
            value = pad_values.get(key, 0)
            batch[key] = torch.tensor(
                [f[key] + [value] * (length - len(f[key])) for f in features], dtype=torch.long
            )
        if "decode_mask" in batch:
            batch["decode_mask"] = batch["decode_mask"].bool()
        return batch


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
    lines = ["| type | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for entity_type, s in scores["per_type"].items():
        lines.append(
            f"| {entity_type} | {s['precision']:.{digits}f} | {s['recall']:.{digits}f} | "
            f"{s['f1']:.{digits}f} | {s['support']} |"
        )
    for average in ("micro", "macro"):
        lines.append(
            f"| **{average}** | {scores[f'ner_precision_{average}']:.{digits}f} | "
            f"{scores[f'ner_recall_{average}']:.{digits}f} | {scores[f'ner_f1_{average}']:.{digits}f} | "
            f"{scores['n_gold_entities']} |"
        )
    return "\n".join(lines)


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


def run_ner(args: argparse.Namespace) -> dict:
    """Train on the training split, evaluate on the evaluation split, save model + tokenizer +
    ``metrics.json`` + ``training_args.json`` to ``args.output_dir``; returns the metrics.

    With ``--lora-r`` the encoder gets LoRA adapters, the two linear layers and the CRF are trained fully;
    evaluation runs the adapted model and OUT holds the adapter folder (:mod:`modeling_ade.lora`)."""
    from accelerate.utils import set_seed

    output_dir = Path(args.output_dir)
    accelerator = make_accelerator(args)
    if accelerator.is_main_process:
        accelerator.init_trackers("ner", config=loggable(vars(args)))
    train_data, eval_data, where = load_ner_data(args)
    train_data = TaggedSentences(
        train_data.words[: args.max_train_samples],
        train_data.tags[: args.max_train_samples],
        train_data.label_names,
    )
    eval_data = TaggedSentences(
        eval_data.words[: args.max_eval_samples],
        eval_data.tags[: args.max_eval_samples],
        eval_data.label_names,
    )
    labels = bio_label_list([train_data, eval_data])
    logger.info(f"data: {where}; {len(labels)} labels: {labels}", main_process_only=True)

    set_seed(args.seed)
    model_path = resolve_model_name(args.model)
    tokenizer = load_tokenizer(args.model, model_path)
    encoder_kwargs = {"num_hidden_layers": args.num_hidden_layers} if args.num_hidden_layers else {}
    model = BertCrfForTokenClassification.from_encoder(
        model_path,
        encoder_kwargs=encoder_kwargs,
        tokenizer=tokenizer,
        id2label=dict(enumerate(labels)),
        head=args.head,
        use_bio_constraints=not args.no_bio_constraints,
    )
    model.config.encoder_config._name_or_path = hub_name(args.model)  # no local path travels with the model
    positions = model.config.max_position_embeddings
    if positions is not None and args.max_length > positions:
        raise ValueError(f"--max-length {args.max_length} exceeds the encoder's {positions} positions")
    label2id = model.config.label2id
    model, lora = apply_lora_from_args(model, args)  # unchanged without --lora-r
    with accelerator.main_process_first():
        train_windows, train_counts = encode_sentences(
            train_data, tokenizer, label2id, args.max_length, with_labels=True
        )
        eval_windows, eval_counts = encode_sentences(
            eval_data, tokenizer, label2id, args.max_length, with_labels=False
        )
    _log_counts("train", train_counts, args.max_length)
    _log_counts("evaluation", eval_counts, args.max_length)

    collator = NerCollator(tokenizer.pad_token_id)
    train_features = [{k: v for k, v in w.features.items() if k != "decode_mask"} for w in train_windows]
    train_loader = DataLoader(
        train_features,
        batch_sampler=LengthGroupedBatchSampler(
            [len(f["input_ids"]) for f in train_features], args.batch_size, args.seed
        ),
        collate_fn=collator,
    )
    history = fit(accelerator, model, train_loader, args, description="ner")

    order = sorted(range(len(eval_windows)), key=lambda i: len(eval_windows[i].features["input_ids"]))
    eval_loader = accelerator.prepare(
        DataLoader(
            [{**eval_windows[i].features, "index": i} for i in order],
            batch_size=args.eval_batch_size,
            collate_fn=collator,
        )
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
        head=args.head,
        layer_decay=args.layer_decay,
    )
    if lora is not None:
        metrics["lora"] = lora
    if accelerator.is_main_process:
        if lora is not None:  # the adapter + what rebuilds its base (modeling_ade/lora.py)
            save_adapter(unwrapped, output_dir, tokenizer)
        else:
            unwrapped.save_pretrained(output_dir)
            tokenizer.save_pretrained(output_dir)
        write_json(output_dir / "metrics.json", metrics)
        write_json(output_dir / "training_args.json", run_record(args))
        print(
            f"\n{where}, evaluation split, strict entity-level scores "
            f"(head {args.head}, layer decay {args.layer_decay:g}):\n" + format_ner_table(metrics)
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


__all__ = [
    "EncodedWindow",
    "NerCollator",
    "NerEncodingCounts",
    "TaggedSentences",
    "bio_label_list",
    "encode_sentences",
    "format_ner_table",
    "load_ner_data",
    "load_tokenizer",
    "run_ner",
    "tagged_sentences_from_dataset",
    "window_bounds",
]
