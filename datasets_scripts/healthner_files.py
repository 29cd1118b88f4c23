"""The Chinese HealthNER files read into sentences: ``char tag`` lines and JSON lines, with tag repair.

Readers raise :class:`HealthNerFormatError` naming the file, the line and what is wrong; tags are repaired with
``datasets_scripts.common.repair_bio`` (one logged warning per file, counting each kind, naming the lines).
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from datasets_scripts.common import NotUtf8Error, describe_repairs, read_utf8, repair_bio

logger = logging.getLogger("datasets_scripts.chinese_healthner")  # one logger for the builder and its readers
REPAIRS_REPORTED: set[str] = set()  # the tag-repair warnings this process has printed

JSON_SUFFIXES = (".json", ".jsonl")

ENTITY_TYPES: tuple[str, ...] = (
    "BODY",
    "SYMP",
    "INST",
    "EXAM",
    "CHEM",
    "DISE",
    "DRUG",
    "SUPP",
    "TREAT",
    "TIME",
)
"""The 10 entity types, in the order of the corpus documentation; fixes the label ids."""

BIO_LABELS: tuple[str, ...] = ("O", *[f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")])
"""``ner_tags`` class names: ``O``, ``B-BODY``, ``I-BODY``, ``B-SYMP``, ... (21 labels)."""

_BIO_SET = frozenset(BIO_LABELS)
_TYPE_SET = frozenset(ENTITY_TYPES)


def _read_text(path: Path) -> str:
    try:
        return read_utf8(path)
    except NotUtf8Error as err:
        raise HealthNerFormatError(path, err.line, err.detail) from None


class HealthNerFormatError(ValueError):
    """A line of a corpus file cannot be read; the message starts with ``file:line:``."""

    def __init__(self, path: str | os.PathLike, line_no: int, message: str):
        self.path = str(path)
        self.line_no = line_no
        super().__init__(f"{self.path}:{line_no}: {message}")


class RawSentence(NamedTuple):
    """One sentence as read from a file, before tag repair."""

    line_no: int  # 1-based line where the sentence starts
    chars: list[str]
    tags: list[str]
    id: str | None = None  # JSON ``id`` if present
    genre: str | None = None  # JSON ``genre`` if present


# ----------------------------------------------------------------------------------------------
# Pure parts: tag repair and file readers


def _parse_char_tag_line(path: Path, line_no: int, line: str) -> tuple[str, str]:
    if line.startswith("  "):  # the character is a space
        char, sep, tag = " ", " ", line[2:]
    else:
        char, sep, tag = line.partition(" ")
    if not sep:
        raise HealthNerFormatError(path, line_no, f"expected 'char tag' separated by a space, got {line!r}")
    if " " in tag:
        raise HealthNerFormatError(path, line_no, f"expected 2 fields 'char tag', got more: {line!r}")
    if len(char) != 1:
        raise HealthNerFormatError(path, line_no, f"expected one character, got {char!r} in {line!r}")
    if not tag:
        raise HealthNerFormatError(path, line_no, f"empty tag in {line!r}")
    return char, tag


def read_char_tag_file(path: str | os.PathLike) -> Iterator[RawSentence]:
    """Read ``char tag`` lines (BOM and CRLF allowed; blank lines separate sentences), tags unrepaired."""
    path = Path(path)
    chars: list[str] = []
    tags: list[str] = []
    start = 0
    with io.StringIO(_read_text(path), newline=None) as f:
        for line_no, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n").rstrip(" \t")
            if not line:
                if chars:
                    yield RawSentence(start, chars, tags)
                    chars, tags = [], []
                continue
            char, tag = _parse_char_tag_line(path, line_no, line)
            if not chars:
                start = line_no
            chars.append(char)
            tags.append(tag)
    if chars:
        yield RawSentence(start, chars, tags)


def _string_list(path: Path, line_no: int, record: Mapping, key: str) -> list[str]:
    value = record[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HealthNerFormatError(path, line_no, f"field {key!r} must be a list of strings")
    return value


def _tag_list(path: Path, line_no: int, record: Mapping, key: str) -> list[str]:
    value = record[key]
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        bad = [v for v in value if not 0 <= v < len(BIO_LABELS)]
        if bad:
            raise HealthNerFormatError(
                path, line_no, f"field {key!r}: label id {bad[0]} not in 0..{len(BIO_LABELS) - 1}"
            )
        return [BIO_LABELS[v] for v in value]
    return _string_list(path, line_no, record, key)


def read_healthner_jsonl(path: str | os.PathLike) -> Iterator[RawSentence]:
    """Read JSON lines with ``character``/``character_label`` or ``tokens``/``ner_tags``; tags unrepaired.

    ``ner_tags`` may hold tag strings or ids into :data:`BIO_LABELS`. Blank lines are skipped.
    """
    path = Path(path)
    with io.StringIO(_read_text(path), newline=None) as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as err:
                raise HealthNerFormatError(
                    path, line_no, f"invalid JSON ({err.msg}); expected one object per line"
                ) from None
            if not isinstance(record, dict):
                raise HealthNerFormatError(
                    path, line_no, f"expected a JSON object, got {type(record).__name__}"
                )
            if "character" in record or "character_label" in record:
                char_key, tag_key = "character", "character_label"
            else:
                char_key, tag_key = "tokens", "ner_tags"
            missing = [k for k in (char_key, tag_key) if k not in record]
            if missing:
                raise HealthNerFormatError(
                    path,
                    line_no,
                    f"missing key {missing[0]!r} (expected 'character'+'character_label' or 'tokens'+'ner_tags')",
                )
            chars = _string_list(path, line_no, record, char_key)
            tags = _tag_list(path, line_no, record, tag_key)
            if len(chars) != len(tags):
                raise HealthNerFormatError(
                    path, line_no, f"{len(chars)} {char_key} but {len(tags)} {tag_key}"
                )
            if not chars:
                raise HealthNerFormatError(path, line_no, "empty sentence")
            multi = [c for c in chars if len(c) != 1]
            if multi:
                raise HealthNerFormatError(
                    path, line_no, f"{char_key} must be single characters, got {multi[0]!r}"
                )
            for text_key in ("sentence", "text"):
                if text_key in record and record[text_key] != "".join(chars):
                    raise HealthNerFormatError(
                        path, line_no, f"{text_key!r} differs from the joined {char_key}"
                    )
            rid = record.get("id")
            genre = record.get("genre")
            yield RawSentence(
                line_no, chars, tags, None if rid is None else str(rid), None if genre is None else str(genre)
            )


def is_json_lines(name: str | os.PathLike) -> bool:
    """The format rule: a name ending in ``.json`` or ``.jsonl`` is JSON lines, anything else ``char tag``."""
    return Path(name).suffix.lower() in JSON_SUFFIXES


def read_sentences(path: str | os.PathLike, json_lines: bool | None = None) -> Iterator[RawSentence]:
    """Read any supported file; ``json_lines=None`` picks the format from the name (:func:`is_json_lines`)."""
    if is_json_lines(path) if json_lines is None else json_lines:
        return read_healthner_jsonl(path)
    return read_char_tag_file(path)


def read_examples(
    path: str | os.PathLike, source: str, default_genre: str = "", json_lines: bool | None = None
) -> list[dict[str, Any]]:
    """Read a file into schema examples (tags repaired), logging one warning if any tag was repaired.

    ``source`` fills the ``source`` column and prefixes the ids; ``json_lines`` as in :func:`read_sentences`.
    """
    path = Path(path)
    if json_lines is None:
        json_lines = is_json_lines(path)
    one_tag_per_line = not json_lines
    examples = []
    totals: Counter[str] = Counter()
    repaired_lines: list[int] = []
    repaired_sentences = 0
    for index, sent in enumerate(read_sentences(path, json_lines)):
        tags, counts = repair_bio(sent.tags, _TYPE_SET)
        if counts:
            totals.update(counts)
            repaired_sentences += 1
            changed = [i for i, (old, new) in enumerate(zip(sent.tags, tags, strict=True)) if old != new]
            repaired_lines.extend(sent.line_no + i if one_tag_per_line else sent.line_no for i in changed)
        local_id = sent.id if sent.id is not None else f"{index:05d}"
        examples.append(
            {
                "id": f"{source}-{local_id}",
                "source": source,
                "genre": sent.genre if sent.genre is not None else default_genre,
                "text": "".join(sent.chars),
                "tokens": sent.chars,
                "ner_tags": tags,
            }
        )
    if totals:
        message = describe_repairs(
            totals, str(path), repaired_sentences, len(examples), repaired_lines, "line"
        )
        if (
            message not in REPAIRS_REPORTED
        ):  # a file read for several configs (stats, train + dev) says it once
            REPAIRS_REPORTED.add(message)
            logger.warning(message)
    return examples
