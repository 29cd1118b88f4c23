"""Pure text helpers of the ADE builder: locating mentions in a sentence, tokenizing, aligning tokens to
character offsets (no I/O; tested directly)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


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


def word_spans(text: str) -> list[tuple[int, int]]:
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
    for start, end in word_spans(text):
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
