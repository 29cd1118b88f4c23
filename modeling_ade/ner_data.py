"""Data of ``train.py ner``: words + BIO tags in, model windows out (not Hub code).

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
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer

from datasets_scripts.common import describe_repairs, repair_bio

from .encoders import tokenizer_kwargs
from .hub.bio import bio_to_spans, check_bio_labels, parse_bio_label
from .hub.modeling_bert_crf import IGNORE

logger = logging.getLogger(__name__)


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
        logger.warning(describe_repairs(totals, where, len(repaired_rows), len(tags), repaired_rows, "row"))
    return TaggedSentences(words, tags, names)


def load_split(dataset: str, config: str | None, split: str | None):
    """``datasets.Dataset`` of one split (slices such as ``train[:100]`` allowed), or with ``split=None`` the
    ``DatasetDict`` of every split, of a local ``.json`` / ``.jsonl`` / ``.parquet`` file, a folder (e.g. a
    Parquet export with a dataset card) or a Hub id."""
    import datasets

    from datasets_scripts.relation_formats import CorpusFormatError

    path = Path(dataset)
    if path.is_file():
        builders = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
        if path.suffix not in builders:
            raise CorpusFormatError(
                f"--dataset {dataset!r}: a file must end in {', '.join(builders)}, got {path.suffix!r}"
            )
        return datasets.load_dataset(builders[path.suffix], data_files=str(path), split=split)
    return datasets.load_dataset(dataset, config, split=split)


def load_ner_data(settings) -> tuple[TaggedSentences, TaggedSentences, str]:
    """Training and evaluation sentences of a ``train.py ner`` run (``ner_task.NerSettings``), and a
    description for the log."""
    if settings.dataset is None:
        from datasets_scripts.chinese_healthner import load_healthner

        train = load_healthner("train", data_dir=settings.data_dir)["train"]
        evaluation = load_healthner("dev", data_dir=settings.data_dir)["validation"]
        where = "Chinese HealthNER train (train) / dev (validation)"
        if settings.train_split == "train+dev":  # the final model: every labelled sentence
            import datasets

            train = datasets.concatenate_datasets([train, evaluation])
            where = "Chinese HealthNER train + dev (training; dev is NOT held out) / dev (validation)"
    else:
        train_split, eval_split = settings.train_split or "train", settings.eval_split or "validation"
        eval_config = settings.eval_dataset_config or settings.dataset_config
        train = load_split(settings.dataset, settings.dataset_config, train_split)
        evaluation = load_split(settings.dataset, eval_config, eval_split)
        where = f"{settings.dataset} ({settings.dataset_config or 'default'}: {train_split} / {eval_config or 'default'}: {eval_split})"
        if settings.trains_on_eval:
            where += "; the evaluation split is part of the training data: NOT held out"
    train_data = tagged_sentences_from_dataset(
        train, settings.tokens_column, settings.tags_column, f"{where}, training split"
    )
    eval_data = tagged_sentences_from_dataset(
        evaluation, settings.tokens_column, settings.tags_column, f"{where}, evaluation split"
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
                try:
                    prefix, entity_type = parse_bio_label(tag)
                except ValueError:
                    raise ValueError(
                        f"sentence {index}, word {position}: tag {tag!r} is not 'O', 'B-<type>' or 'I-<type>' "
                        "(only BIO tags are supported)"
                    ) from None
                if prefix != "O":
                    types.setdefault(entity_type, None)
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
        logger.info(f"{model_name}: uncased vocabulary, loading its tokenizer with do_lower_case=True")
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


__all__ = [
    "EncodedWindow",
    "NerCollator",
    "NerEncodingCounts",
    "TaggedSentences",
    "bio_label_list",
    "encode_sentences",
    "load_ner_data",
    "load_split",
    "load_tokenizer",
    "tagged_sentences_from_dataset",
    "window_bounds",
]
