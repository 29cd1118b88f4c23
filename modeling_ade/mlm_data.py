"""Data for continual pre-training (``train.py mlm``): cleaning, documents, NSP pairs, packing, masking.

Not Hub code. Everything here is a small function that tests call directly; the only stateful object,
:class:`MlmCollator`, owns a seeded ``torch.Generator`` so a run's masks are reproducible.

Text units
----------
Every source becomes a list of :class:`TextUnit` (a line of a text file, a JSONL row, a corpus sentence),
each tagged with its **document**. Documents matter only for next-sentence prediction:

- plain text: blocks of lines separated by blank lines are documents (the format of BERT's
  ``create_pretraining_data.py``); a file without any blank line has one document per line;
- JSONL: every row is a document;
- ADE corpus: the sentences of one PubMed id in one file (``DRUG-AE.rel``, ``ADE-NEG.txt`` or
  ``DRUG-DOSE.rel``), in file order; Chinese HealthNER: every sentence is a document.

For NSP a unit is further cut into sentences by :func:`split_sentences`.

Cleaning (:func:`clean_text`, as light as ClinicalBERT's)
--------------------------------------------------------
In this order: Unicode NFKC; HTML/XML comments and tags removed (``<b>``, ``</p>``, ``<br/>``,
``<span class="x">``: a ``<`` directly followed by a letter, ``/`` or ``!--``, so ``p < 0.05`` stays);
HTML entities decoded (``&amp;`` -> ``&``, ``&lt;`` -> ``<``); control and format characters removed
(Unicode categories Cc and Cf: zero-width spaces, soft hyphens, BOMs) except whitespace; every run of
whitespace (tabs, newlines, no-break spaces) -> one space; ends stripped. Case, punctuation and digits are
kept (the tokenizer decides about case). A unit that is empty afterwards is dropped and counted.

Masking (:func:`mask_tokens`, BERT's recipe)
--------------------------------------------
In each sequence ``max(1, round(p * n))`` of its ``n`` maskable tokens are selected (``p`` =
``mlm_probability``, 0.15), as in BERT's ``create_pretraining_data.py``; a selected token becomes
``[MASK]`` with probability 0.8, a random token with 0.1, stays unchanged with 0.1; the loss is computed
on the selected tokens only. Never selected: special tokens (every id of ``tokenizer.all_special_ids``:
``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``, ``[UNK]``) and padding. Random tokens are drawn uniformly from
the vocabulary without the special tokens. With whole-word masking, words are taken in random order and
kept while they fit the token budget (BERT's greedy fill; at least one word per sequence), and all
sub-words of a word share one 80/10/10 decision; words are the tokenizer's pre-tokenizer words
(``word_ids()``), so a Chinese character, which BERT's tokenizer splits off on its own, is a word.
"""

from __future__ import annotations

import html
import json
import random
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "IGNORE_INDEX",
    "MlmCollator",
    "NspPair",
    "PackedBlocks",
    "TextUnit",
    "build_documents",
    "chunk_sequence",
    "clean_text",
    "clean_units",
    "dedupe_units",
    "encode_pairs",
    "encode_texts",
    "exclude_sentences",
    "make_nsp_pairs",
    "mask_tokens",
    "matching_key",
    "pack_sequences",
    "pad_features",
    "premask_features",
    "read_drug_dose",
    "read_jsonl_file",
    "read_text_file",
    "renumber_words",
    "special_template",
    "split_held_out",
    "split_sentences",
]

IGNORE_INDEX = -100
"""Label of a position that is not predicted (``torch.nn.CrossEntropyLoss``'s ``ignore_index``)."""

# ----------------------------------------------------------------------------------------------------
# text units, reading, cleaning


@dataclass(frozen=True)
class TextUnit:
    """One piece of text: ``document`` groups units for NSP, ``source`` names where it came from."""

    document: str
    text: str
    source: str


_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][A-Za-z0-9:_-]*(?:\s[^<>]*)?/?>", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Light cleaning (see the module docstring): NFKC, markup and entities, control characters, whitespace."""
    text = unicodedata.normalize("NFKC", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    return _WHITESPACE.sub(" ", text).strip()


def clean_units(units: Iterable[TextUnit]) -> tuple[list[TextUnit], int]:
    """:func:`clean_text` on every unit; returns the non-empty ones and how many became empty."""
    kept, emptied = [], 0
    for unit in units:
        text = clean_text(unit.text)
        if text:
            kept.append(TextUnit(unit.document, text, unit.source))
        else:
            emptied += 1
    return kept, emptied


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def matching_key(text: str) -> str:
    """Cleaned text with ASCII letters lower-cased (same length as ``clean_text(text)``): the key by which
    duplicates and held-out ADE sentences are recognised."""
    return clean_text(text).translate(_ASCII_LOWER)


def dedupe_units(units: Iterable[TextUnit]) -> tuple[list[TextUnit], int]:
    """Keep the first unit of each :func:`matching_key`; returns the kept units and how many were dropped.

    Duplicates would otherwise land on both sides of the held-out split and flatter the perplexity.
    """
    seen: set[str] = set()
    kept, dropped = [], 0
    for unit in units:
        key = matching_key(unit.text)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(unit)
    return kept, dropped


def read_text_file(path: str | Path) -> list[TextUnit]:
    """One unit per non-blank line (UTF-8, BOM allowed); blank lines separate documents, and a file with no
    blank line has one document per line."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    filled = [i for i, line in enumerate(lines) if line.strip()]
    has_blank = bool(filled) and any(not line.strip() for line in lines[filled[0] : filled[-1]])
    units, block = [], 0
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            block += 1
            continue
        document = f"{path.name}:{block}" if has_blank else f"{path.name}:{lineno}"
        units.append(TextUnit(document, line, path.name))
    return units


def read_jsonl_file(path: str | Path, text_column: str) -> list[TextUnit]:
    """One unit (and document) per JSON line, the text in ``text_column``; errors name file and line."""
    path = Path(path)
    units = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path.name}:{lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or text_column not in row:
            keys = ", ".join(row) if isinstance(row, dict) else type(row).__name__
            raise ValueError(f"{path.name}:{lineno}: no field {text_column!r} (--text-column); has: {keys}")
        if not isinstance(row[text_column], str):
            raise ValueError(f"{path.name}:{lineno}: field {text_column!r} is not a string")
        units.append(TextUnit(f"{path.name}:{lineno}", row[text_column], path.name))
    return units


def read_drug_dose(path: str | Path) -> list[TextUnit]:
    """The distinct (PubMed id, sentence) pairs of ``DRUG-DOSE.rel`` (``PMID|sentence|dose|...``), in order;
    the document is the PubMed id."""
    path = Path(path)
    units, seen = [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 8:
            raise ValueError(f"{path.name}:{lineno}: expected 8 '|'-separated fields, got {len(fields)}")
        pmid, sentence = fields[0].strip(), fields[1]
        if not pmid.isdigit():
            raise ValueError(
                f"{path.name}:{lineno}: field 1 (PubMed id) {pmid!r} is not a PubMed id (digits)"
            )
        if (pmid, sentence) not in seen:
            seen.add((pmid, sentence))
            units.append(TextUnit(f"{path.name}:{pmid}", sentence, path.name))
    return units


# ----------------------------------------------------------------------------------------------------
# leakage guard, held-out split, documents


_SENTENCE_FINAL = ".!?。！？"


def _starts_sentence(text: str, index: int) -> bool:
    """``index`` is the text's start, or follows sentence-final punctuation (and optional whitespace)."""
    before = text[:index].rstrip()
    return not before or (
        before[-1] in _SENTENCE_FINAL and (index == len(before) or text[index - 1].isspace())
    )


def _ends_text_or_word(text: str, index: int) -> bool:
    return index >= len(text) or text[index].isspace()


def exclude_sentences(units: Sequence[TextUnit], sentences: Iterable[str]) -> tuple[list[TextUnit], int, int]:
    """Remove ``sentences`` (e.g. an ADE test fold) from ``units``, matching on :func:`matching_key`.

    A unit equal to one of the sentences is dropped; a sentence found inside a longer unit as a sentence of
    its own (at the unit's start or after ``.``/``!``/``?``/``。``/``！``/``？``, and followed by whitespace or
    the unit's end) is cut out of it; a mere phrase inside another sentence ("we diagnosed this case as
    <sentence>") is not. Returns ``(kept units, units dropped,
    sentences cut out of longer units)``; a unit left empty by cutting counts as dropped.
    """
    targets = {key for key in (matching_key(s) for s in sentences) if key}
    kept, dropped, cut = [], 0, 0
    for unit in units:
        key = matching_key(unit.text)  # same length as the cleaned text
        if key in targets:
            dropped += 1
            continue
        text = clean_text(unit.text)
        spans = []
        for target in targets:
            if len(target) >= len(key):
                continue
            start = key.find(target)
            while start != -1:
                end = start + len(target)
                if _starts_sentence(key, start) and _ends_text_or_word(key, end):
                    spans.append((start, end))
                start = key.find(target, start + 1)
        if not spans:
            kept.append(unit)
            continue
        cut += len(spans)
        pieces, position = [], 0
        for start, end in sorted(spans):
            pieces.append(text[position : max(start, position)])
            position = max(position, end)
        pieces.append(text[position:])
        remainder = clean_text(" ".join(pieces))
        if remainder:
            kept.append(TextUnit(unit.document, remainder, unit.source))
        else:
            dropped += 1
    return kept, dropped, cut


def split_held_out(items: Sequence, fraction: float, seed: int, minimum: int = 1) -> tuple[list, list]:
    """Hold out ``round(fraction * len(items))`` items (at least ``minimum`` when ``fraction > 0``), chosen
    by a ``random.Random(seed)`` sample; both parts keep the input order."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction!r}")
    count = 0 if fraction == 0 else max(minimum, int(fraction * len(items) + 0.5))
    if count >= len(items) and count > 0:
        raise ValueError(
            f"cannot hold out {count} of {len(items)} items for validation and still train: "
            "give more text or a smaller --validation-split"
        )
    held = set(random.Random(seed).sample(range(len(items)), count))
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？])(?=\S)")


def split_sentences(text: str) -> list[str]:
    """Cut at ``.``/``!``/``?`` followed by whitespace and after ``。``/``！``/``？`` (no splitter model:
    abbreviations such as "e.g. x" are cut too)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def build_documents(units: Iterable[TextUnit]) -> list[list[str]]:
    """Group units by document (first-appearance order) and cut each unit into sentences."""
    documents: dict[str, list[str]] = {}
    for unit in units:
        documents.setdefault(unit.document, []).extend(split_sentences(unit.text))
    return [sentences for sentences in documents.values() if sentences]


# ----------------------------------------------------------------------------------------------------
# next-sentence prediction


@dataclass(frozen=True)
class NspPair:
    """Sentence ``a`` then ``b``; ``is_next`` when ``b`` follows ``a`` in the same document.

    ``label`` is the ``next_sentence_label`` of ``BertForPreTraining``: 0 = is next, 1 = random.
    """

    a: str
    b: str
    is_next: bool

    @property
    def label(self) -> int:
        return 0 if self.is_next else 1


def make_nsp_pairs(documents: Sequence[Sequence[str]], seed: int) -> list[NspPair]:
    """One pair per sentence that has a successor in its document; exactly half (rounded up) keep the
    successor (``is_next``), the others get a random sentence of another document.

    Which pairs are "next" is a seeded shuffle, so the classes are balanced exactly. Raises when no
    document has two sentences or there is only one document (no random partner possible).
    """
    positions = [(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - 1)]
    if not positions:
        raise ValueError(
            "next-sentence prediction needs documents of at least two sentences; none has (documents: "
            "blank-line-separated blocks of a text file, ADE PubMed ids; see README)"
        )
    if len(documents) < 2:
        raise ValueError("next-sentence prediction needs at least two documents for its random pairs")
    rng = random.Random(seed)
    labels = [True] * ((len(positions) + 1) // 2) + [False] * (len(positions) // 2)
    rng.shuffle(labels)
    pairs = []
    for (d, i), is_next in zip(positions, labels):
        if is_next:
            b = documents[d][i + 1]
        else:
            other = rng.randrange(len(documents) - 1)
            other += other >= d  # any document but d
            b = rng.choice(documents[other])
        pairs.append(NspPair(documents[d][i], b, is_next))
    return pairs


# ----------------------------------------------------------------------------------------------------
# tokenisation, chunking, packing


def special_template(tokenizer) -> tuple[list[int], list[int]]:
    """Special tokens a single sequence gets before and after its text (BERT: ``[CLS]`` / ``[SEP]``)."""
    encoded = tokenizer("a", return_special_tokens_mask=True)
    ids, special = encoded["input_ids"], encoded["special_tokens_mask"]
    content = [i for i, s in enumerate(special) if not s]
    if not content:
        raise ValueError(f"{type(tokenizer).__name__} encodes 'a' to special tokens only")
    return ids[: content[0]], ids[content[-1] + 1 :]


def _word_ids(encoding_word_ids: Sequence[int | None]) -> list[int]:
    return [-1 if w is None else w for w in encoding_word_ids]


def encode_texts(
    tokenizer, texts: Sequence[str], batch_size: int = 1000
) -> list[tuple[list[int], list[int]]]:
    """Token ids and word ids (``-1`` never occurs: no special tokens added) of each text.

    Needs a fast tokenizer (``word_ids``).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer; word ids need one")
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), add_special_tokens=False, verbose=False)
        for b, ids in enumerate(batch["input_ids"]):
            out.append((ids, _word_ids(batch.word_ids(b))))
    return out


def renumber_words(word_ids: Sequence[int]) -> list[int]:
    """Word ids ``0, 1, ...`` in order of appearance; ``-1`` (no word) stays ``-1``."""
    mapping: dict[int, int] = {}
    return [-1 if w < 0 else mapping.setdefault(w, len(mapping)) for w in word_ids]


def chunk_sequence(
    ids: Sequence[int], word_ids: Sequence[int], size: int
) -> list[tuple[list[int], list[int]]]:
    """Cut one over-long sequence into consecutive pieces of at most ``size`` tokens (nothing dropped)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [
        (list(ids[i : i + size]), renumber_words(word_ids[i : i + size]))
        for i in range(0, max(len(ids), 1), size)
    ]


@dataclass
class PackedBlocks:
    """Output of :func:`pack_sequences`.

    Attributes:
        blocks: token ids of each block, ``block_size`` each except possibly the last.
        word_ids: word ids per block, renumbered from 0 within the block; ``-1`` for separators.
        num_tokens: text tokens packed (separators not counted).
        remainder: tokens in the last block when it is not full (0 when every block is full); the last
            block is kept, shorter, never dropped.
    """

    blocks: list[list[int]]
    word_ids: list[list[int]]
    num_tokens: int
    remainder: int


def pack_sequences(
    sequences: Sequence[tuple[Sequence[int], Sequence[int]]], block_size: int, separator_id: int | None
) -> PackedBlocks:
    """Concatenate ``(ids, word_ids)`` sequences, ``separator_id`` between two of them (when not None), and
    cut the stream into blocks of ``block_size`` tokens. Every token is in exactly one block; words of
    different sequences never share an id."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    stream: list[int] = []
    words: list[int] = []
    offset, num_tokens = 0, 0
    for index, (ids, word_ids) in enumerate(sequences):
        if not ids:
            continue
        if index and stream and separator_id is not None:
            stream.append(separator_id)
            words.append(-1)
        stream.extend(ids)
        words.extend(offset + w if w >= 0 else -1 for w in word_ids)
        offset += max(word_ids, default=-1) + 1
        num_tokens += len(ids)
    blocks = [stream[i : i + block_size] for i in range(0, len(stream), block_size)]
    block_words = [renumber_words(words[i : i + block_size]) for i in range(0, len(stream), block_size)]
    remainder = len(stream) % block_size
    return PackedBlocks(blocks, block_words, num_tokens, remainder)


def encode_pairs(tokenizer, pairs: Sequence[NspPair], max_length: int) -> tuple[list[dict], int]:
    """Features of NSP pairs (``input_ids``, ``token_type_ids``, ``word_ids``, ``next_sentence_label``);
    pairs longer than ``max_length`` are cut, longest sentence first, and counted (second return value)."""
    features, truncated = [], 0
    for start in range(0, len(pairs), 1000):
        chunk = pairs[start : start + 1000]
        a, b = [p.a for p in chunk], [p.b for p in chunk]
        full = tokenizer(a, b, verbose=False)["input_ids"]
        batch = tokenizer(a, b, truncation="longest_first", max_length=max_length, verbose=False)
        for i, pair in enumerate(chunk):
            truncated += len(full[i]) > max_length
            words, sequence_ids = batch.word_ids(i), batch.sequence_ids(i)
            first_words = 1 + max(
                (w for w, s in zip(words, sequence_ids) if s == 0 and w is not None), default=-1
            )
            word_ids = [
                -1 if w is None else w + (first_words if s == 1 else 0) for w, s in zip(words, sequence_ids)
            ]
            features.append(
                {
                    "input_ids": batch["input_ids"][i],
                    "token_type_ids": batch["token_type_ids"][i],
                    "word_ids": word_ids,
                    "next_sentence_label": pair.label,
                }
            )
    return features, truncated


# ----------------------------------------------------------------------------------------------------
# masking


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    *,
    mask_token_id: int,
    random_token_ids: torch.Tensor,
    mlm_probability: float = 0.15,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    word_ids: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of a padded batch (see the module docstring for the recipe).

    Args:
        input_ids: ``(batch, seq_len)`` token ids.
        special_tokens_mask: ``(batch, seq_len)`` bool, True where a token may never be selected
            (special tokens and padding).
        mask_token_id: id of ``[MASK]``.
        random_token_ids: ``(V,)`` ids a "random token" is drawn from.
        mlm_probability: share of the maskable tokens of each sequence that is selected.
        mask_replace_prob, random_replace_prob: of the selected tokens (words), the share replaced by
            ``[MASK]`` and by a random token; the rest stay unchanged.
        word_ids: ``(batch, seq_len)`` long, the word of each token (``-1`` for none); whole words are then
            selected and decided together. Ids need not be contiguous, but the work is ``(batch, max id)``,
            so keep them small (:func:`renumber_words`).
            ``None``: every token is its own word.
        generator: the source of randomness (a seeded ``torch.Generator`` for reproducible masks).

    Returns:
        ``(masked_input_ids, labels)``, both ``(batch, seq_len)``: the input with selected tokens replaced,
        and the original ids at selected positions, :data:`IGNORE_INDEX` elsewhere.
    """
    if input_ids.shape != special_tokens_mask.shape:
        raise ValueError(
            f"special_tokens_mask shape {tuple(special_tokens_mask.shape)} != input_ids shape "
            f"{tuple(input_ids.shape)}"
        )
    if not 0.0 < mlm_probability <= 1.0:
        raise ValueError(f"mlm_probability must be in (0, 1], got {mlm_probability!r}")
    if mask_replace_prob < 0 or random_replace_prob < 0 or mask_replace_prob + random_replace_prob > 1:
        raise ValueError(
            f"mask_replace_prob ({mask_replace_prob}) and random_replace_prob ({random_replace_prob}) must be "
            ">= 0 with a sum <= 1"
        )
    batch, seq_len = input_ids.shape
    device = input_ids.device
    maskable = ~special_tokens_mask.bool()  # shape: (B, T)
    if word_ids is None:
        words = torch.arange(seq_len, device=device).expand(batch, seq_len)
    else:
        if word_ids.shape != input_ids.shape:
            raise ValueError(
                f"word_ids shape {tuple(word_ids.shape)} != input_ids shape {tuple(input_ids.shape)}"
            )
        words = word_ids.long()
    maskable = maskable & (words >= 0)
    words = torch.where(maskable, words, torch.zeros_like(words))  # shape: (B, T), valid index everywhere
    num_words = int(words.max().item()) + 1 if words.numel() else 1
    word_length = torch.zeros(batch, num_words, dtype=torch.long, device=device)
    word_length.scatter_add_(1, words, maskable.long())  # shape: (B, W) maskable tokens per word

    num_maskable = maskable.sum(1)  # shape: (B,)
    budget = torch.floor(num_maskable.double() * mlm_probability + 0.5).long().clamp(min=1)
    budget = torch.where(num_maskable > 0, budget, torch.zeros_like(budget))  # shape: (B,)

    scores = torch.rand(batch, num_words, generator=generator).to(device)
    scores = scores.masked_fill(word_length == 0, 2.0)  # absent words sort last
    order = scores.argsort(dim=1)  # shape: (B, W)
    sorted_length = word_length.gather(1, order)  # shape: (B, W)
    if bool((word_length > 1).any()):
        # BERT's greedy fill: walk the words in random order, skip one that would exceed the budget.
        take = torch.zeros_like(sorted_length, dtype=torch.bool)
        total = torch.zeros_like(budget)
        for k in range(num_words):
            fits = (sorted_length[:, k] > 0) & (total + sorted_length[:, k] <= budget)
            take[:, k] = fits
            total = total + torch.where(fits, sorted_length[:, k], torch.zeros_like(total))
    else:  # single-token words: the first `budget` of the random order
        take = (sorted_length.cumsum(1) <= budget[:, None]) & (sorted_length > 0)
    take[:, 0] |= budget > 0  # at least one word, even one longer than the budget
    selected_word = torch.zeros_like(take).scatter(1, order, take)  # shape: (B, W)

    decision = torch.rand(batch, num_words, generator=generator).to(device)  # one draw per word
    selected = maskable & selected_word.gather(1, words)  # shape: (B, T)
    token_decision = decision.gather(1, words)
    to_mask = selected & (token_decision < mask_replace_prob)
    to_random = (
        selected
        & (token_decision >= mask_replace_prob)
        & (token_decision < mask_replace_prob + random_replace_prob)
    )
    random_tokens = random_token_ids.to(device)[
        torch.randint(len(random_token_ids), (batch, seq_len), generator=generator).to(device)
    ]
    masked = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    masked = torch.where(to_random, random_tokens, masked)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked, labels


def pad_features(features: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of features into tensors: ``input_ids`` (``pad_token_id``), ``attention_mask``,
    ``word_ids`` (-1), ``labels`` (:data:`IGNORE_INDEX`), ``token_type_ids`` (0); ``next_sentence_label``
    stacked. Only keys present in the features are produced (``attention_mask`` always)."""
    seq_len = max(len(f["input_ids"]) for f in features)
    fill = {"input_ids": pad_token_id, "word_ids": -1, "labels": IGNORE_INDEX, "token_type_ids": 0}
    batch: dict[str, torch.Tensor] = {}
    for key, value in fill.items():
        if key in features[0]:
            batch[key] = torch.tensor([list(f[key]) + [value] * (seq_len - len(f[key])) for f in features])
    batch["attention_mask"] = torch.tensor(
        [[1] * len(f["input_ids"]) + [0] * (seq_len - len(f["input_ids"])) for f in features]
    )
    if "next_sentence_label" in features[0]:
        batch["next_sentence_label"] = torch.tensor([f["next_sentence_label"] for f in features])
    return batch


class MlmCollator:
    """Pads a list of features and masks them (dynamic masking: new masks every time a batch is drawn).

    Returns ``input_ids``, ``attention_mask``, ``labels`` and, when the features have them,
    ``token_type_ids`` and ``next_sentence_label`` — the keyword arguments of ``*ForMaskedLM`` /
    ``BertForPreTraining``.
    """

    def __init__(
        self,
        *,
        pad_token_id: int,
        mask_token_id: int,
        special_ids: Iterable[int],
        vocab_size: int,
        mlm_probability: float = 0.15,
        whole_word_masking: bool = False,
        seed: int = 0,
    ):
        self.pad_token_id, self.mask_token_id = pad_token_id, mask_token_id
        special = set(special_ids)
        self.special_ids = torch.tensor(sorted(special), dtype=torch.long)
        self.random_token_ids = torch.tensor(
            [i for i in range(vocab_size) if i not in special], dtype=torch.long
        )
        self.mlm_probability, self.whole_word_masking = mlm_probability, whole_word_masking
        self.generator = torch.Generator().manual_seed(seed)

    def special_mask(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, T)`` bool: special tokens and padding."""
        return torch.isin(batch["input_ids"], self.special_ids) | (batch["attention_mask"] == 0)

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        batch = pad_features(features, self.pad_token_id)
        word_ids = batch.pop("word_ids", None)
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"],
            self.special_mask(batch),
            mask_token_id=self.mask_token_id,
            random_token_ids=self.random_token_ids,
            mlm_probability=self.mlm_probability,
            word_ids=word_ids if self.whole_word_masking else None,
            generator=self.generator,
        )
        return batch


def premask_features(features: Sequence[dict], collator: MlmCollator, seed: int) -> list[dict]:
    """Fixed masks for evaluation: feature ``i`` is masked with a generator seeded by ``(seed, i)``, so the
    held-out loss before and after training (and with any batch size or process count) uses the same
    masked inputs. Returns features with masked ``input_ids`` and ``labels``."""
    out = []
    for index, feature in enumerate(features):
        batch = pad_features([feature], collator.pad_token_id)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        masked, labels = mask_tokens(
            batch["input_ids"],
            collator.special_mask(batch),
            mask_token_id=collator.mask_token_id,
            random_token_ids=collator.random_token_ids,
            mlm_probability=collator.mlm_probability,
            word_ids=batch["word_ids"] if collator.whole_word_masking else None,
            generator=generator,
        )
        kept = {k: v for k, v in feature.items() if k != "word_ids"}
        out.append({**kept, "input_ids": masked[0].tolist(), "labels": labels[0].tolist()})
    return out
