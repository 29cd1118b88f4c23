"""The SpERT fold files (``spert_10fold/ade_split_K_{train,test}.json``) read record by record: each record is
matched back to its ``DRUG-AE.rel`` sentence (:class:`SentenceIndex`) and its tokens aligned to character
offsets, giving examples of the builder's schema; anything malformed raises :class:`AdeFormatError` naming the
file, the record and the field."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from datasets_scripts.ade_files import (
    ENTITY_TYPES,
    RELATION_TYPES,
    RELATIONS_FILE,
    SPERT_RELATION_TYPE,
    AdeFormatError,
    RawSentence,
    group_sentences,
    logger,
    read_relation_file,
)
from datasets_scripts.ade_text import align_tokens, whitespace_free


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
