"""ADE corpus V2 (Gurulingappa et al., 2012) as a ``datasets`` builder, with Parquet export and statistics.

Configs
-------
- ``relations``: one example per (PubMed id, sentence) of ``DRUG-AE.rel``, in order of first appearance
  (4,272 sentences, 6,821 relations); one split, ``train``.
- ``fold_0`` ... ``fold_9``: the SpERT 10-fold cross-validation split (``spert_10fold/ade_split_K_{train,test}
  .json``), used by nearly every joint entity/relation paper since 2018; splits ``train`` and ``test``.
- ``negatives``: ``ADE-NEG.txt``, sentences without a drug-related adverse effect; no entities; one split,
  ``train``.

Schema (the same :data:`FEATURES` for every config)
---------------------------------------------------
- ``id`` (string): ``"{pmid}-{n}"`` for a sentence of ``DRUG-AE.rel``, ``n`` = 0-based rank of the sentence
  among the distinct sentences of that PubMed id in file order; ``"{pmid}-neg-{n}"`` for ``ADE-NEG.txt``
  (``n`` = 0-based rank of the line among that PubMed id's lines). A fold example has the id of the
  ``DRUG-AE.rel`` sentence it was matched to, so ids join across configs.
- ``text`` (string): the sentence exactly as in the raw file.
- ``tokens`` (list of string): words. ``relations``/``negatives``: :func:`tokenize` (``\\w+`` runs and single
  punctuation characters; a token that an entity boundary falls inside is split at that boundary, so every
  entity is a whole number of tokens; on the real corpus no token needs splitting). Folds: SpERT's own (spaCy) tokens, unchanged.
- ``entities`` (list of ``{start, end, token_start, token_end, type, text}``): ``start``/``end`` are character
  offsets into ``text`` (end exclusive), ``token_start``/``token_end`` token indices (end exclusive), ``type``
  one of :data:`ENTITY_TYPES`, ``text == text[start:end]``. Sorted by ``(start, end, type)``; a mention that
  occurs in several relation lines is one entity.
- ``relations`` (list of ``{head, tail, type}``): indices into ``entities``, sorted by ``(head, tail)``.
  **Direction: head = the Adverse-Effect entity, tail = the Drug entity, type = "ADE"** (SpERT's
  direction; SpERT calls the relation type "Adverse-Effect", renamed here to ``"ADE"``).

Locating mentions (``relations`` config)
----------------------------------------
``DRUG-AE.rel`` gives *document* offsets. All mentions of one sentence share the sentence's start offset
``s`` in the document, so ``s`` is inferred as the one value consistent with every mention of the sentence:
the intersection over mentions of ``{begin - i : mention occurs at i in the sentence}``. A mention that
occurs once pins ``s = begin - i``; every mention is then taken at ``begin - s``. (On the real corpus the
intersection is a single value for all 4,272 sentences, including 11 sentences where every mention occurs
twice.) Only when no single ``s`` exists does a mention fall back to its first whole-word occurrence (else
its first occurrence); those sentences are counted and logged. Mentions are matched as plain strings, never
as regular expressions. Two mentions in the file carry a space at one end (``' minocycline'``,
``'anaphylaxis '``); the space is stripped from the entity span (counted and logged).

Fold files
----------
A SpERT record is matched to its ``DRUG-AE.rel`` sentence by comparing the whitespace-free concatenation of
its tokens with the whitespace-free sentence. One sentence string occurs under two PubMed ids; the tie is
broken by ``orig_id``, which in the published files is the index of the (PubMed id, sentence) pair in the
``relations`` config order (checked for all 4,272 records); failing that, the first candidate is taken and
the case is logged. Each token is then aligned in the sentence to get character offsets.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from tqdm.auto import tqdm

from datasets_scripts.common import (
    DataDirError,
    build_dataset_dict,
    export_parquet,
    read_utf8,
    resolve_data_dir,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CONFIG_NAMES",
    "ENTITY_TYPES",
    "FEATURES",
    "NUM_FOLDS",
    "RELATION_TYPES",
    "AdeCorpus",
    "AdeFormatError",
    "DataDirError",
    "SentenceIndex",
    "align_tokens",
    "char_span_to_token_span",
    "config_examples",
    "corpus_statistics",
    "count_overlapping_pairs",
    "export",
    "find_occurrences",
    "infer_sentence_offset",
    "is_whole_word",
    "load_ade",
    "locate_mention",
    "main",
    "parse_negative_line",
    "parse_relation_line",
    "relation_example",
    "required_files",
    "resolve_corpus_dir",
    "spert_record_to_example",
    "tokenize",
]

ENTITY_TYPES = ("Drug", "Adverse-Effect")
RELATION_TYPES = ("ADE",)
SPERT_RELATION_TYPE = "Adverse-Effect"
NUM_FOLDS = 10
RELATIONS_FILE = "DRUG-AE.rel"
NEGATIVES_FILE = "ADE-NEG.txt"
SPLIT_FOLDER = "spert_10fold"
FOLD_CONFIGS = tuple(f"fold_{k}" for k in range(NUM_FOLDS))
CONFIG_NAMES = ("relations", *FOLD_CONFIGS, "negatives")
ENV_VAR = "ADE_CORPUS_DIR"

# 1-based field numbers and names of a DRUG-AE.rel line, as used in error messages.
REL_FIELDS = (
    "PubMed id",
    "sentence",
    "adverse effect",
    "adverse effect begin",
    "adverse effect end",
    "drug",
    "drug begin",
    "drug end",
)

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "tokens": datasets.List(datasets.Value("string")),
        "entities": datasets.List(
            {
                "start": datasets.Value("int32"),
                "end": datasets.Value("int32"),
                "token_start": datasets.Value("int32"),
                "token_end": datasets.Value("int32"),
                "type": datasets.Value("string"),
                "text": datasets.Value("string"),
            }
        ),
        "relations": datasets.List(
            {
                "head": datasets.Value("int32"),
                "tail": datasets.Value("int32"),
                "type": datasets.Value("string"),
            }
        ),
    }
)

SOURCE_REPO_RAW = "trunghlt/AdverseDrugReaction"
SOURCE_COMMIT_RAW = "2851af96e26050cf551a2e1f716ff861f7b1059b"
SOURCE_REPO_SPLIT = "Coopercoppers/PFN"
SOURCE_COMMIT_SPLIT = "6173b3e6b048d1307766ee5d2f8178b30d6675b2"
HOMEPAGE = "https://doi.org/10.1016/j.jbi.2012.04.008"
LICENSE = "unknown — research use, cite Gurulingappa et al. 2012"

CITATION = """\
@article{gurulingappa2012development,
  title     = {Development of a benchmark corpus to support the automatic extraction of drug-related
               adverse effects from medical case reports},
  author    = {Gurulingappa, Harsha and Rajput, Abdul Mateen and Roberts, Angus and Fluck, Juliane and
               Hofmann-Apitius, Martin and Toldo, Luca},
  journal   = {Journal of Biomedical Informatics},
  volume    = {45},
  number    = {5},
  pages     = {885--892},
  year      = {2012},
  doi       = {10.1016/j.jbi.2012.04.008}
}"""

SPLIT_CITATION = """\
@inproceedings{eberts2020spert,
  title     = {Span-based Joint Entity and Relation Extraction with Transformer Pre-training},
  author    = {Eberts, Markus and Ulges, Adrian},
  booktitle = {Proceedings of the 24th European Conference on Artificial Intelligence (ECAI 2020)},
  series    = {Frontiers in Artificial Intelligence and Applications},
  volume    = {325},
  pages     = {2006--2013},
  year      = {2020},
  doi       = {10.3233/FAIA200321}
}"""


class AdeFormatError(ValueError):
    """A corpus file is malformed; the message names the file, the line (or record) and the field."""


# --------------------------------------------------------------------------------------------------------
# Locating the data
# --------------------------------------------------------------------------------------------------------


def split_file(fold: int, split: str) -> str:
    """Path, relative to the corpus folder, of SpERT's ``split`` (``train``/``test``) file of ``fold``."""
    return f"{SPLIT_FOLDER}/ade_split_{fold}_{split}.json"


def required_files(config_name: str | None = None) -> list[str]:
    """Files (relative to the corpus folder) that ``config_name`` reads; every config's when ``None``."""
    if config_name is None:
        files = [RELATIONS_FILE, NEGATIVES_FILE]
        files += [split_file(k, s) for k in range(NUM_FOLDS) for s in ("train", "test")]
        return files
    if config_name == "relations":
        return [RELATIONS_FILE]
    if config_name == "negatives":
        return [NEGATIVES_FILE]
    if config_name in FOLD_CONFIGS:
        fold = int(config_name.removeprefix("fold_"))
        return [RELATIONS_FILE, split_file(fold, "train"), split_file(fold, "test")]
    raise ValueError(f"unknown ADE corpus config {config_name!r}; expected one of {', '.join(CONFIG_NAMES)}")


def resolve_corpus_dir(data_dir: str | Path | None = None, *, config_name: str | None = None) -> Path:
    """The ADE corpus folder: ``data_dir``, else ``$ADE_CORPUS_DIR``, else ``../shared/data/ade_corpus_v2``.

    Checks the files that ``config_name`` reads (all configs' files when ``None``) and raises
    :class:`~datasets_scripts.common.DataDirError` listing them and the folder looked in.
    """
    return resolve_data_dir(
        data_dir,
        env_var=ENV_VAR,
        default_subdir="ade_corpus_v2",
        required_files=required_files(config_name),
        corpus_name="ADE corpus",
    )


# --------------------------------------------------------------------------------------------------------
# Pure helpers: mention location, tokenization, alignment
# --------------------------------------------------------------------------------------------------------


def find_occurrences(mention: str, text: str) -> list[int]:
    """Start offsets of every occurrence of ``mention`` in ``text`` (plain string match, overlaps included)."""
    if not mention:
        raise ValueError("empty mention")
    starts, i = [], text.find(mention)
    while i != -1:
        starts.append(i)
        i = text.find(mention, i + 1)
    return starts


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def is_whole_word(text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` does not cut a word: no word character on both sides of either edge."""
    left_ok = start == 0 or not (_is_word_char(text[start - 1]) and _is_word_char(text[start]))
    right_ok = end == len(text) or not (_is_word_char(text[end - 1]) and _is_word_char(text[end]))
    return left_ok and right_ok


def infer_sentence_offset(mentions: Iterable[tuple[str, int]], sentence: str) -> int | None:
    """Document offset ``s`` of ``sentence`` such that every ``(mention, doc_begin)`` occurs at ``doc_begin - s``.

    Returns ``None`` when no value, or more than one, is consistent with all mentions.
    """
    candidates: set[int] | None = None
    for mention, begin in mentions:
        offsets = {begin - i for i in find_occurrences(mention, sentence)}
        candidates = offsets if candidates is None else candidates & offsets
        if not candidates:
            return None
    if candidates is None or len(candidates) != 1:
        return None
    return next(iter(candidates))


def locate_mention(
    mention: str, sentence: str, *, doc_begin: int | None = None, sentence_offset: int | None = None
) -> int:
    """Start of ``mention`` in ``sentence``.

    With ``doc_begin`` and ``sentence_offset`` the occurrence at ``doc_begin - sentence_offset`` (checked);
    otherwise the first whole-word occurrence, else the first occurrence. Raises ``ValueError`` if absent.
    """
    if doc_begin is not None and sentence_offset is not None:
        start = doc_begin - sentence_offset
        if start >= 0 and sentence.startswith(mention, start):
            return start
        raise ValueError(f"{mention!r} is not at offset {start} of the sentence")
    starts = find_occurrences(mention, sentence)
    if not starts:
        raise ValueError(f"{mention!r} not in sentence")
    whole = [s for s in starts if is_whole_word(sentence, s, s + len(mention))]
    return (whole or starts)[0]


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` so that it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _word_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif _is_word_char(char):
            j = i + 1
            while j < n and _is_word_char(text[j]):
                j += 1
            spans.append((i, j))
            i = j
        else:
            spans.append((i, i + 1))
            i += 1
    return spans


def tokenize(text: str, boundaries: Iterable[int] = ()) -> tuple[list[str], list[tuple[int, int]]]:
    """Word tokens of ``text`` and their character spans.

    A token is a run of word characters (letters, digits, ``_``) or one other non-space character. A token
    that a position of ``boundaries`` falls strictly inside is split there, so entity edges are token edges.
    """
    cuts = sorted(set(boundaries))
    spans: list[tuple[int, int]] = []
    for start, end in _word_spans(text):
        inner = [c for c in cuts if start < c < end]
        edges = [start, *inner, end]
        spans.extend(zip(edges[:-1], edges[1:], strict=True))
    return [text[s:e] for s, e in spans], spans


def char_span_to_token_span(token_spans: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """Token indices ``[token_start, token_end)`` of the tokens that overlap characters ``[start, end)``."""
    inside = [i for i, (s, e) in enumerate(token_spans) if s < end and e > start]
    if not inside:
        raise ValueError(f"no token overlaps characters [{start}, {end})")
    return inside[0], inside[-1] + 1


def align_tokens(tokens: Sequence[str], text: str) -> list[tuple[int, int]]:
    """Character span of each token in ``text``; tokens must appear in order, separated only by whitespace.

    Raises ``ValueError`` naming the first token that cannot be aligned.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for i, token in enumerate(tokens):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if not token or not text.startswith(token, pos):
            raise ValueError(f"token {i} {token!r} does not match the sentence at character {pos}")
        spans.append((pos, pos + len(token)))
        pos += len(token)
    if text[pos:].strip():
        raise ValueError(f"sentence text {text[pos:]!r} after the last token is not covered by tokens")
    return spans


def whitespace_free(text: str) -> str:
    """``text`` with all whitespace removed (the key that matches SpERT tokens to raw sentences)."""
    return "".join(text.split())


def count_overlapping_pairs(entities: Sequence[dict[str, Any]]) -> int:
    """Number of entity pairs of one sentence whose character spans overlap (nested or crossing)."""
    spans = sorted((e["start"], e["end"]) for e in entities)
    pairs = 0
    for i, (_, end_i) in enumerate(spans):
        for start_j, _ in spans[i + 1 :]:
            if start_j >= end_i:
                break
            pairs += 1
    return pairs


# --------------------------------------------------------------------------------------------------------
# DRUG-AE.rel
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    """One mention field of a ``DRUG-AE.rel`` line: text, document offsets, entity type, where it came from."""

    text: str
    doc_begin: int
    doc_end: int
    type: str
    line: int
    field: int


@dataclass(frozen=True)
class RelationLine:
    """One line of ``DRUG-AE.rel`` (one drug / adverse-effect relation)."""

    pmid: str
    sentence: str
    adverse_effect: Mention
    drug: Mention
    line: int


@dataclass
class RawSentence:
    """The relation lines of one (PubMed id, sentence) pair; ``n`` is its rank within the PubMed id."""

    pmid: str
    n: int
    sentence: str
    lines: list[RelationLine] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.pmid}-{self.n}"


def _field_error(source: str, lineno: int, number: int, message: str) -> AdeFormatError:
    return AdeFormatError(f"{source}:{lineno}: field {number} ({REL_FIELDS[number - 1]}) {message}")


def _parse_offset(value: str, *, source: str, lineno: int, number: int) -> int:
    try:
        offset = int(value)
    except ValueError:
        raise _field_error(source, lineno, number, f"{value!r} is not an integer") from None
    if offset < 0:
        raise _field_error(source, lineno, number, f"{offset} is negative")
    return offset


def parse_relation_line(line: str, *, source: str = RELATIONS_FILE, lineno: int = 0) -> RelationLine:
    """Parse ``PMID|sentence|AE|AE begin|AE end|drug|drug begin|drug end``; errors name file, line and field."""
    fields = line.split("|")
    if len(fields) != len(REL_FIELDS):
        raise AdeFormatError(
            f"{source}:{lineno}: expected {len(REL_FIELDS)} '|'-separated fields, got {len(fields)}"
        )
    pmid, sentence = fields[0], fields[1]
    if not pmid.strip().isdigit():
        raise _field_error(source, lineno, 1, f"{pmid!r} is not a PubMed id (digits)")
    if not sentence.strip():
        raise _field_error(source, lineno, 2, "is empty")
    mentions = []
    for number, entity_type in ((3, "Adverse-Effect"), (6, "Drug")):
        text = fields[number - 1]
        begin = _parse_offset(fields[number], source=source, lineno=lineno, number=number + 1)
        end = _parse_offset(fields[number + 1], source=source, lineno=lineno, number=number + 2)
        if not text.strip():
            raise _field_error(source, lineno, number, "is empty")
        if end - begin != len(text):
            raise _field_error(
                source,
                lineno,
                number + 2,
                f"{end}: end - begin = {end - begin} but the mention {text!r} has {len(text)} characters",
            )
        if text not in sentence:
            raise _field_error(source, lineno, number, f"{text!r} not in sentence")
        mentions.append(Mention(text, begin, end, entity_type, lineno, number))
    return RelationLine(pmid.strip(), sentence, mentions[0], mentions[1], lineno)


def _read_lines(path: Path, expected: str) -> list[tuple[int, str]]:
    """Non-blank lines of ``path`` as ``(1-based line number, line)``; raises on an empty file."""
    try:
        text = read_utf8(path)
    except UnicodeError as err:
        raise AdeFormatError(str(err)) from None
    lines = [(i, raw.rstrip("\r")) for i, raw in enumerate(text.split("\n"), start=1)]
    lines = [(i, line) for i, line in lines if line.strip()]
    if not lines:
        raise AdeFormatError(f"{path.name}: empty file, expected lines {expected}")
    return lines


def read_relation_file(path: str | Path) -> list[RelationLine]:
    """All lines of a ``DRUG-AE.rel`` file (blank lines skipped)."""
    path = Path(path)
    lines = _read_lines(path, "'PMID|sentence|adverse effect|begin|end|drug|begin|end'")
    return [parse_relation_line(line, source=path.name, lineno=i) for i, line in lines]


def group_sentences(lines: Iterable[RelationLine]) -> list[RawSentence]:
    """Group relation lines by (PubMed id, sentence), in order of first appearance."""
    groups: dict[tuple[str, str], RawSentence] = {}
    per_pmid: Counter[str] = Counter()
    for rel in lines:
        key = (rel.pmid, rel.sentence)
        if key not in groups:
            groups[key] = RawSentence(rel.pmid, per_pmid[rel.pmid], rel.sentence)
            per_pmid[rel.pmid] += 1
        groups[key].lines.append(rel)
    return list(groups.values())


def _entity_dict(
    text: str, token_spans: Sequence[tuple[int, int]], start: int, end: int, entity_type: str
) -> dict[str, Any]:
    token_start, token_end = char_span_to_token_span(token_spans, start, end)
    return {
        "start": start,
        "end": end,
        "token_start": token_start,
        "token_end": token_end,
        "type": entity_type,
        "text": text[start:end],
    }


def relation_example(
    raw: RawSentence, counts: Counter[str] | None = None, *, source: str = ""
) -> dict[str, Any]:
    """The ``relations``-config example of one sentence (see the module docstring for the location rule).

    ``counts`` (optional) is incremented with ``fallback_sentences``, ``stripped_mentions``,
    ``duplicate_relations`` and ``split_tokens`` (tokens added by splitting at entity boundaries).
    """
    counts = counts if counts is not None else Counter()
    sentence = raw.sentence
    mentions = [m for rel in raw.lines for m in (rel.adverse_effect, rel.drug)]
    offset = infer_sentence_offset({(m.text, m.doc_begin) for m in mentions}, sentence)
    if offset is None:
        counts["fallback_sentences"] += 1
        logger.debug(
            "%s: no consistent sentence offset for %s; first whole-word occurrences used", source, raw.id
        )

    spans: dict[Mention, tuple[int, int, str]] = {}
    for m in mentions:
        try:
            start = locate_mention(m.text, sentence, doc_begin=m.doc_begin, sentence_offset=offset)
        except ValueError as err:  # unreachable when parse_relation_line checked the line
            raise _field_error(source, m.line, m.field, str(err)) from None
        stripped = strip_span(sentence, start, start + len(m.text))
        if stripped != (start, start + len(m.text)):
            counts["stripped_mentions"] += 1
        spans[m] = (*stripped, m.type)

    keys = sorted(set(spans.values()))
    index = {key: i for i, key in enumerate(keys)}
    pairs = [(index[spans[rel.adverse_effect]], index[spans[rel.drug]]) for rel in raw.lines]
    counts["duplicate_relations"] += len(pairs) - len(set(pairs))
    tokens, token_spans = tokenize(sentence, [b for s, e, _ in keys for b in (s, e)])
    counts["split_tokens"] += len(token_spans) - len(_word_spans(sentence))
    return {
        "id": raw.id,
        "text": sentence,
        "tokens": tokens,
        "entities": [_entity_dict(sentence, token_spans, s, e, t) for s, e, t in keys],
        "relations": [{"head": h, "tail": t, "type": RELATION_TYPES[0]} for h, t in sorted(set(pairs))],
    }


def _log_relation_counts(counts: Counter[str], source: str) -> None:
    if counts["fallback_sentences"]:
        logger.warning(
            "%s: %d sentence(s) had no consistent document offset; their mentions were placed at their "
            "first whole-word occurrence",
            source,
            counts["fallback_sentences"],
        )
    if counts["stripped_mentions"]:
        logger.info(
            "%s: %d mention(s) had surrounding whitespace stripped", source, counts["stripped_mentions"]
        )
    if counts["split_tokens"]:
        logger.info("%s: %d token(s) added by splitting at entity boundaries", source, counts["split_tokens"])
    if counts["duplicate_relations"]:
        logger.warning("%s: %d duplicate relation(s) merged", source, counts["duplicate_relations"])


def iter_relation_examples(path: str | Path, counts: Counter[str] | None = None) -> Iterator[dict[str, Any]]:
    """Examples of the ``relations`` config from a ``DRUG-AE.rel`` file."""
    path = Path(path)
    counts = counts if counts is not None else Counter()
    for raw in group_sentences(read_relation_file(path)):
        yield relation_example(raw, counts, source=path.name)
    _log_relation_counts(counts, path.name)


# --------------------------------------------------------------------------------------------------------
# SpERT fold files
# --------------------------------------------------------------------------------------------------------


class SentenceIndex:
    """The ``DRUG-AE.rel`` sentences, indexed by whitespace-free text, to match SpERT records to them."""

    def __init__(self, sentences: Sequence[RawSentence]):
        self.sentences = list(sentences)
        self.by_key: dict[str, list[int]] = {}
        for i, raw in enumerate(self.sentences):
            self.by_key.setdefault(whitespace_free(raw.sentence), []).append(i)

    @classmethod
    def from_file(cls, path: str | Path) -> SentenceIndex:
        return cls(group_sentences(read_relation_file(path)))

    def match(self, tokens: Sequence[str], orig_id: int | None) -> RawSentence | None:
        """The sentence whose whitespace-free text equals the tokens'; ties broken by ``orig_id``."""
        candidates = self.by_key.get(whitespace_free("".join(tokens)), [])
        if not candidates:
            return None
        if len(candidates) > 1:
            if orig_id in candidates:
                return self.sentences[orig_id]
            logger.warning(
                "orig_id %s: %d raw sentences match; taking the first, %s",
                orig_id,
                len(candidates),
                self.sentences[candidates[0]].id,
            )
        return self.sentences[candidates[0]]


def _record_error(source: str, index: int, orig_id: Any, message: str) -> AdeFormatError:
    return AdeFormatError(f"{source}: record {index} (orig_id {orig_id}): {message}")


def _check_int(value: Any, *, source: str, index: int, orig_id: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _record_error(source, index, orig_id, f"{name} = {value!r} is not an integer")
    return value


def spert_record_to_example(
    record: Any, index: SentenceIndex, *, source: str = "", record_index: int = 0
) -> dict[str, Any]:
    """Convert one SpERT record (token offsets) to this module's schema; errors name file, record and field."""
    if not isinstance(record, dict):
        raise _record_error(
            source, record_index, None, f"expected a JSON object, got {type(record).__name__}"
        )
    orig_id = record.get("orig_id")
    for key in ("tokens", "entities", "relations"):
        if not isinstance(record.get(key), list):
            raise _record_error(source, record_index, orig_id, f"field {key!r} is missing or not a list")
    tokens = record["tokens"]
    if not tokens or not all(isinstance(t, str) for t in tokens):
        raise _record_error(
            source, record_index, orig_id, "field 'tokens' must be a non-empty list of strings"
        )

    raw = index.match(tokens, orig_id)
    if raw is None:
        raise _record_error(
            source, record_index, orig_id, f"tokens do not match any sentence of {RELATIONS_FILE}"
        )
    text = raw.sentence
    try:
        token_spans = align_tokens(tokens, text)
    except ValueError as err:
        raise _record_error(source, record_index, orig_id, f"field 'tokens': {err}") from None

    def check(value: Any, name: str, low: int, high: int, what: str) -> int:
        value = _check_int(value, source=source, index=record_index, orig_id=orig_id, name=name)
        if not low <= value <= high:
            raise _record_error(source, record_index, orig_id, f"{name} = {value} out of range ({what})")
        return value

    n_tokens = len(tokens)
    keys = []
    for j, ent in enumerate(record["entities"]):
        if not isinstance(ent, dict):
            raise _record_error(source, record_index, orig_id, f"entities[{j}] is not an object")
        start = check(ent.get("start"), f"entities[{j}].start", 0, n_tokens - 1, f"{n_tokens} tokens")
        end = check(
            ent.get("end"), f"entities[{j}].end", start + 1, n_tokens, f"{n_tokens} tokens, start {start}"
        )
        if ent.get("type") not in ENTITY_TYPES:
            raise _record_error(
                source,
                record_index,
                orig_id,
                f"entities[{j}].type = {ent.get('type')!r}, expected {ENTITY_TYPES}",
            )
        keys.append((token_spans[start][0], token_spans[end - 1][1], ent["type"], start, end))

    n_entities = len(keys)
    pairs = []
    for j, rel in enumerate(record["relations"]):
        if not isinstance(rel, dict):
            raise _record_error(source, record_index, orig_id, f"relations[{j}] is not an object")
        head = check(rel.get("head"), f"relations[{j}].head", 0, n_entities - 1, f"{n_entities} entities")
        tail = check(rel.get("tail"), f"relations[{j}].tail", 0, n_entities - 1, f"{n_entities} entities")
        if rel.get("type") not in (SPERT_RELATION_TYPE, *RELATION_TYPES):
            raise _record_error(
                source,
                record_index,
                orig_id,
                f"relations[{j}].type = {rel.get('type')!r}, expected 'Adverse-Effect'",
            )
        if (keys[head][2], keys[tail][2]) != ("Adverse-Effect", "Drug"):
            raise _record_error(
                source,
                record_index,
                orig_id,
                f"relations[{j}]: head must be an Adverse-Effect entity and tail a Drug entity, "
                f"got {keys[head][2]} -> {keys[tail][2]}",
            )
        pairs.append((keys[head], keys[tail]))

    unique = sorted(set(keys))
    position = {key: i for i, key in enumerate(unique)}
    relations = sorted({(position[h], position[t]) for h, t in pairs})
    return {
        "id": raw.id,
        "text": text,
        "tokens": list(tokens),
        "entities": [
            {"start": s, "end": e, "token_start": ts, "token_end": te, "type": t, "text": text[s:e]}
            for s, e, t, ts, te in unique
        ],
        "relations": [{"head": h, "tail": t, "type": RELATION_TYPES[0]} for h, t in relations],
    }


def read_json_records(path: str | Path, source: str | None = None) -> list[Any]:
    """The JSON array of a SpERT file; errors name the file (and line/column of a syntax error)."""
    path = Path(path)
    source = source or path.name
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise AdeFormatError(f"{source}: empty file, expected a JSON array of SpERT records")
    try:
        records = json.loads(text)
    except json.JSONDecodeError as err:
        raise AdeFormatError(f"{source}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    if not isinstance(records, list):
        raise AdeFormatError(f"{source}: expected a JSON array of records, got {type(records).__name__}")
    return records


def iter_fold_examples(path: str | Path, index: SentenceIndex) -> Iterator[dict[str, Any]]:
    """Examples of one SpERT split file (``ade_split_K_{train,test}.json``)."""
    path = Path(path)
    source = f"{path.parent.name}/{path.name}"
    for i, record in enumerate(read_json_records(path, source)):
        yield spert_record_to_example(record, index, source=source, record_index=i)


# --------------------------------------------------------------------------------------------------------
# ADE-NEG.txt
# --------------------------------------------------------------------------------------------------------


def parse_negative_line(line: str, *, source: str = NEGATIVES_FILE, lineno: int = 0) -> tuple[str, str]:
    """Parse ``PMID NEG sentence`` into ``(pmid, sentence)``; errors name file, line and field."""
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise AdeFormatError(f"{source}:{lineno}: expected 'PMID NEG sentence', got {line[:80]!r}")
    pmid, marker, sentence = parts
    if not pmid.isdigit():
        raise AdeFormatError(f"{source}:{lineno}: field 1 (PubMed id) {pmid!r} is not a PubMed id (digits)")
    if marker != "NEG":
        raise AdeFormatError(f"{source}:{lineno}: field 2 (marker) {marker!r} should be 'NEG'")
    if not sentence.strip():
        raise AdeFormatError(f"{source}:{lineno}: field 3 (sentence) is empty")
    return pmid, sentence


def iter_negative_examples(path: str | Path) -> Iterator[dict[str, Any]]:
    """Examples of the ``negatives`` config (no entities, no relations)."""
    path = Path(path)
    per_pmid: Counter[str] = Counter()
    for lineno, line in _read_lines(path, "'PMID NEG sentence'"):
        pmid, sentence = parse_negative_line(line, source=path.name, lineno=lineno)
        tokens, _ = tokenize(sentence)
        yield {
            "id": f"{pmid}-neg-{per_pmid[pmid]}",
            "text": sentence,
            "tokens": tokens,
            "entities": [],
            "relations": [],
        }
        per_pmid[pmid] += 1


# --------------------------------------------------------------------------------------------------------
# Config-level access
# --------------------------------------------------------------------------------------------------------


def config_examples(
    config_name: str, data_dir: str | Path | None = None, *, index: SentenceIndex | None = None
) -> dict[str, list[dict[str, Any]]]:
    """All examples of ``config_name`` as plain Python ``{split: [example, ...]}`` (no Arrow, no cache).

    ``index`` (fold configs only) reuses an already built :class:`SentenceIndex` of ``DRUG-AE.rel``.
    """
    folder = resolve_corpus_dir(data_dir, config_name=config_name)
    if config_name == "relations":
        return {"train": list(iter_relation_examples(folder / RELATIONS_FILE))}
    if config_name == "negatives":
        return {"train": list(iter_negative_examples(folder / NEGATIVES_FILE))}
    fold = int(config_name.removeprefix("fold_"))
    index = index if index is not None else SentenceIndex.from_file(folder / RELATIONS_FILE)
    return {s: list(iter_fold_examples(folder / split_file(fold, s), index)) for s in ("train", "test")}


class AdeCorpusConfig(datasets.BuilderConfig):
    """A config of :class:`AdeCorpus`; ``data_dir`` points at the raw corpus folder."""


_CONFIG_DESCRIPTIONS = {
    "relations": "One example per (PubMed id, sentence) of DRUG-AE.rel, with all its drug/adverse-effect relations.",
    "negatives": "ADE-NEG.txt: sentences without a drug-related adverse effect; no entities, no relations.",
    **{
        f"fold_{k}": f"SpERT 10-fold cross-validation split, fold {k}: ade_split_{k}_train/test.json."
        for k in range(NUM_FOLDS)
    },
}


class AdeCorpus(datasets.GeneratorBasedBuilder):
    """ADE corpus V2: drug / adverse-effect entities and ADE relations (see the module docstring)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = AdeCorpusConfig
    BUILDER_CONFIGS = [
        AdeCorpusConfig(name=name, version=datasets.Version("1.0.0"), description=_CONFIG_DESCRIPTIONS[name])
        for name in CONFIG_NAMES
    ]
    DEFAULT_CONFIG_NAME = "relations"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=(__doc__ or "").split("\n\n")[0],
            features=FEATURES,
            homepage=HOMEPAGE,
            license=LICENSE,
            citation=CITATION + "\n\n" + SPLIT_CITATION,
        )

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        folder = resolve_corpus_dir(self.config.data_dir, config_name=self.config.name)
        name = self.config.name
        if name in ("relations", "negatives"):
            path = folder / (RELATIONS_FILE if name == "relations" else NEGATIVES_FILE)
            return [
                datasets.SplitGenerator(datasets.Split.TRAIN, gen_kwargs={"kind": name, "path": str(path)})
            ]
        fold = int(name.removeprefix("fold_"))
        self._relations_path = folder / RELATIONS_FILE
        self._index: SentenceIndex | None = None
        return [
            datasets.SplitGenerator(
                split, gen_kwargs={"kind": "fold", "path": str(folder / split_file(fold, str(split)))}
            )
            for split in (datasets.Split.TRAIN, datasets.Split.TEST)
        ]

    def _sentence_index(self) -> SentenceIndex:
        """Built once per builder from DRUG-AE.rel and shared by the train and test splits."""
        if getattr(self, "_index", None) is None:
            self._index = SentenceIndex.from_file(self._relations_path)
        return self._index

    def _generate_examples(
        self, kind: str, path: str
    ) -> Iterator[tuple[datasets.builder.Key, dict[str, Any]]]:
        if kind == "relations":
            examples = iter_relation_examples(path)
        elif kind == "negatives":
            examples = iter_negative_examples(path)
        else:
            examples = iter_fold_examples(path, self._sentence_index())
        for i, example in enumerate(examples):
            yield datasets.builder.Key(0, i), example


def load_ade(
    config_name: str, data_dir: str | Path | None = None, *, cache_dir: str | Path | None = None
) -> datasets.DatasetDict:
    """Build one config of the ADE corpus (``relations``, ``fold_0`` ... ``fold_9``, ``negatives``).

    ``cache_dir`` holds the Arrow files; by default a fresh temporary folder (see ``build_dataset_dict``).
    """
    if config_name not in CONFIG_NAMES:
        raise ValueError(
            f"unknown ADE corpus config {config_name!r}; expected one of {', '.join(CONFIG_NAMES)}"
        )
    kwargs: dict[str, Any] = {"data_dir": str(data_dir) if data_dir is not None else None}
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    try:
        return build_dataset_dict(AdeCorpus, config_name, **kwargs)
    except datasets.exceptions.DatasetGenerationError as err:
        if isinstance(err.__cause__, AdeFormatError):  # surface the file:line message, not the wrapper
            raise err.__cause__ from None
        raise


# --------------------------------------------------------------------------------------------------------
# Statistics, dataset card, CLI
# --------------------------------------------------------------------------------------------------------

STATS_COLUMNS = ("config", "split", "sentences", "Drug", "Adverse-Effect", "relations", "overlapping pairs")


def split_statistics(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Counts of one split: sentences, entities by type, relations, overlapping entity pairs."""
    stats = {"sentences": 0, "relations": 0, "overlapping pairs": 0, **{t: 0 for t in ENTITY_TYPES}}
    for row in rows:
        stats["sentences"] += 1
        stats["relations"] += len(row["relations"])
        stats["overlapping pairs"] += count_overlapping_pairs(row["entities"])
        for entity in row["entities"]:
            stats[entity["type"]] += 1
    return stats


def statistics_table(splits: Iterable[tuple[str, str, Iterable[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One statistics row per ``(config, split, rows)``."""
    return [{"config": c, "split": s, **split_statistics(rows)} for c, s, rows in splits]


def format_table(table: Sequence[dict[str, Any]], *, markdown: bool = False) -> str:
    """Render statistics rows as aligned plain text, or as a Markdown table."""
    cells = [
        [str(row[c]) if not isinstance(row[c], int) else f"{row[c]:,}" for c in STATS_COLUMNS]
        for row in table
    ]
    if markdown:
        lines = ["| " + " | ".join(STATS_COLUMNS) + " |", "|" + "---|" * len(STATS_COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(STATS_COLUMNS)]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([fmt(STATS_COLUMNS), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)])


def dataset_card(table: Sequence[dict[str, Any]]) -> str:
    """Markdown body of the exported dataset's README (below the YAML header)."""
    configs = "\n".join(
        f"- `{name}`: {_CONFIG_DESCRIPTIONS[name]}" for name in dict.fromkeys(row["config"] for row in table)
    )
    return f"""\
# ADE corpus V2 (drug / adverse-effect relations)

Sentences from PubMed case reports annotated with drugs, adverse effects and the relation between them
(Gurulingappa et al., 2012), with the standard SpERT 10-fold cross-validation split.

## Configs

{configs}

Load one with `datasets.load_dataset(PATH_OR_REPO, "fold_0")`.

## Schema

Every config has the same columns:

- `id`: `"{{pmid}}-{{n}}"` for a sentence of DRUG-AE.rel (`n` = rank of the sentence within its PubMed id);
  fold examples carry the id of the same sentence, so ids join across configs. `"{{pmid}}-neg-{{n}}"` for
  ADE-NEG.txt.
- `text`: the sentence; `tokens`: words (SpERT's tokens in the folds; a regex word tokenizer split at
  entity boundaries elsewhere).
- `entities`: `start`/`end` character offsets into `text` (end exclusive), `token_start`/`token_end` token
  indices (end exclusive), `type` (`Drug` or `Adverse-Effect`), `text` (the mention). Nested and
  crossing entities are kept ("overlapping pairs" below).
- `relations`: `head`, `tail` (indices into `entities`), `type`.

**Relation direction: head = the Adverse-Effect entity, tail = the Drug entity, type = `ADE`** (SpERT's
direction; SpERT names the type `Adverse-Effect`).

## Statistics

{format_table(table, markdown=True)}

## Source

- Raw corpus (DRUG-AE.rel, ADE-NEG.txt): GitHub `{SOURCE_REPO_RAW}`, folder `ADE-Corpus-V2/`,
  commit `{SOURCE_COMMIT_RAW}`. Document-level offsets are converted to sentence offsets by inferring
  each sentence's document offset from its mentions.
- 10-fold split: SpERT's published `ade_split_K_{{train,test}}.json`, taken from GitHub `{SOURCE_REPO_SPLIT}`
  (`data/ADE/raw/`), commit `{SOURCE_COMMIT_SPLIT}`. Records are matched back to the raw sentences and
  their tokens aligned to character offsets.

## Licence

{LICENSE}. The source repository states no licence for the data; the corpus README asks users to cite
the article below.

## Citation

```bibtex
{CITATION}
```

The 10-fold split:

```bibtex
{SPLIT_CITATION}
```
"""


def export(
    out_dir: str | Path, configs: Sequence[str] = CONFIG_NAMES, data_dir: str | Path | None = None
) -> Path:
    """Build ``configs`` and write them as Parquet + a README dataset card to ``out_dir``."""
    unknown = [c for c in configs if c not in CONFIG_NAMES]
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}; expected some of {', '.join(CONFIG_NAMES)}")
    with tempfile.TemporaryDirectory(prefix="ade_corpus_build_") as cache:
        built = [
            (name, load_ade(name, data_dir, cache_dir=cache))
            for name in tqdm(configs, desc="building ADE configs", unit="config")
        ]
        table = statistics_table((name, split, ds) for name, dsd in built for split, ds in dsd.items())
        return export_parquet(
            out_dir,
            built,
            dataset_card(table),
            pretty_name="ADE corpus V2",
            license="unknown",
            language=("en",),
            default_config="relations" if "relations" in configs else None,
        )


def corpus_statistics(
    data_dir: str | Path | None = None, configs: Sequence[str] = CONFIG_NAMES
) -> list[dict[str, Any]]:
    """Statistics rows for ``configs``, computed from the raw files without building Arrow datasets."""
    splits = []
    index = None
    for name in tqdm(configs, desc="reading ADE configs", unit="config"):
        if name in FOLD_CONFIGS and index is None:
            index = SentenceIndex.from_file(resolve_corpus_dir(data_dir, config_name=name) / RELATIONS_FILE)
        for split, rows in config_examples(name, data_dir, index=index).items():
            splits.append((name, split, rows))
    return statistics_table(splits)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m datasets_scripts.ade_corpus",
        description="ADE corpus V2: export to Parquet for the Hub, or print statistics.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = (
        "folder with DRUG-AE.rel, ADE-NEG.txt and spert_10fold/ "
        f"(default: ${ENV_VAR}, else ../shared/data/ade_corpus_v2)"
    )
    p_export = sub.add_parser("export", help="write every config as Parquet + README.md dataset card")
    p_export.add_argument("out", metavar="OUT", help="output folder (created if missing)")
    p_export.add_argument("--data-dir", metavar="DIR", help=data_help)
    p_export.add_argument(
        "--configs",
        nargs="+",
        choices=CONFIG_NAMES,
        default=list(CONFIG_NAMES),
        metavar="CONFIG",
        help=f"configs to export (default: all): {', '.join(CONFIG_NAMES)}",
    )
    p_stats = sub.add_parser(
        "stats", help="print sentences, entities by type, relations and overlaps per split"
    )
    p_stats.add_argument("--data-dir", metavar="DIR", help=data_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "export":
            out = export(args.out, args.configs, args.data_dir)
            print(f"wrote {len(args.configs)} config(s) to {out}")
        else:
            print(format_table(corpus_statistics(args.data_dir)))
    except (DataDirError, AdeFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
