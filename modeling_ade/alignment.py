"""Character-offset entities -> sub-word labels and token spans (training side; not Hub code).

A *word* is what the tokenizer's pre-tokenizer makes of the text (``encoding.word_ids()``); the pipeline
decodes over the same words, so training and inference agree. A word's NER label sits on its **first**
sub-word; later sub-words get -100. An entity's relation representation is its **last** sub-word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

IGNORE = -100


@dataclass
class AlignmentCounts:
    """What alignment had to give up or bend; logged by the trainer so nothing is lost silently."""

    entities: int = 0
    cut_by_truncation: int = 0  # entity (partly) beyond max_length: no token span, not in NER labels
    overlapping_skipped_in_ner: int = 0  # shares a word with an earlier entity: kept for relations only
    not_on_word_boundary: int = 0  # entity starts/ends inside a word: widened to whole words
    not_found: int = 0  # no word overlaps the entity (e.g. only whitespace)

    def add(self, other: AlignmentCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class AlignedEntities:
    """labels ``(T,)``: tag id at first sub-words, -100 elsewhere; token_spans: per input entity
    ``(first_token, last_token)`` or None when the entity could not be placed (see ``counts``)."""

    labels: list[int]
    token_spans: list[tuple[int, int] | None]
    counts: AlignmentCounts = field(default_factory=AlignmentCounts)


def word_spans(
    offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]
) -> list[tuple[int, int, int, int]]:
    """Per word (in order of word id): ``(char_start, char_end, first_token, last_token)``."""
    words: dict[int, list[int]] = {}
    for token, word in enumerate(word_ids):
        if word is None:
            continue
        start, end = offsets[token]
        if word not in words:
            words[word] = [start, end, token, token]
        else:
            entry = words[word]
            entry[0], entry[1], entry[3] = min(entry[0], start), max(entry[1], end), token
    return [tuple(words[w]) for w in sorted(words)]


def align_entities_to_subwords(
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    entities: Sequence[tuple[int, int, str]],
    label2id: dict[str, int],
    text_length: int | None = None,
) -> AlignedEntities:
    """Place character-offset entities ``(start, end_exclusive, type)`` on the sub-words of one encoding.

    ``offsets`` and ``word_ids`` come from a fast tokenizer (special tokens: word id None). ``text_length``
    (the untruncated text's length) tells a truncated entity from a misplaced one. Overlapping entities:
    the first in (start, longest-first) order gets the NER labels, later ones that share a word keep their
    token span (for relations) but are counted in ``overlapping_skipped_in_ner``.
    """
    counts = AlignmentCounts(entities=len(entities))
    labels = [IGNORE] * len(word_ids)
    words = word_spans(offsets, word_ids)
    covered_end = words[-1][1] if words else 0
    word_tags: list[str | None] = [None] * len(words)
    spans: list[tuple[int, int] | None] = [None] * len(entities)
    order = sorted(range(len(entities)), key=lambda i: (entities[i][0], -(entities[i][1] - entities[i][0])))
    for i in order:
        start, end, etype = entities[i]
        hit = [w for w, (ws, we, _, _) in enumerate(words) if ws < end and we > start]
        if end > covered_end and text_length is not None and covered_end < text_length:
            counts.cut_by_truncation += 1
            continue
        if not hit:
            counts.not_found += 1
            continue
        first, last = hit[0], hit[-1]
        if words[first][0] != start or words[last][1] != end:
            counts.not_on_word_boundary += 1
        spans[i] = (words[first][2], words[last][3])
        if any(word_tags[w] is not None for w in hit):
            counts.overlapping_skipped_in_ner += 1
            continue
        for k, w in enumerate(hit):
            word_tags[w] = f"{'B' if k == 0 else 'I'}-{etype}"
    for w, (_, _, first_token, _) in enumerate(words):
        labels[first_token] = label2id[word_tags[w] or "O"]
    return AlignedEntities(labels=labels, token_spans=spans, counts=counts)
