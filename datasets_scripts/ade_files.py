"""The ADE corpus files read line by line: ``DRUG-AE.rel`` and ``ADE-NEG.txt`` (the SpERT fold files: ``ade_folds``).

Each reader turns a file into examples of the builder's schema (``ade_corpus.FEATURES``) and raises
:class:`AdeFormatError` naming the file, the line (or record) and the field of anything malformed; what is
repaired (a stripped space, a split token, a merged duplicate) is counted and logged. The module docstring of
``ade_corpus`` says how mentions are located and fold records matched.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets_scripts.ade_text import (
    char_span_to_token_span,
    infer_sentence_offset,
    locate_mention,
    strip_span,
    tokenize,
    word_spans,
)
from datasets_scripts.common import read_utf8

logger = logging.getLogger("datasets_scripts.ade_corpus")  # one logger for the builder and its readers

ENTITY_TYPES = ("Drug", "Adverse-Effect")
RELATION_TYPES = ("ADE",)
SPERT_RELATION_TYPE = "Adverse-Effect"
RELATIONS_FILE = "DRUG-AE.rel"
NUM_FOLDS = 10
SPLIT_FOLDER = "spert_10fold"
NEGATIVES_FILE = "ADE-NEG.txt"

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


class AdeFormatError(ValueError):
    """A corpus file is malformed; the message names the file, the line (or record) and the field."""


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
    counts["split_tokens"] += len(token_spans) - len(word_spans(sentence))
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
