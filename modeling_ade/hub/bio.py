"""BIO tags, stated once: label lists, their check, and chunk decoding (Hub code).

Every part of the package that reads or writes BIO tags uses these functions: the two configs (label lists
and their check), the CRF (its transition constraints), the joint model (entities from tags), the metrics and
the NER data code. Tag *repair* of raw corpora is data cleaning and lives with the builders
(``datasets_scripts.common.repair_bio``).

Decoding (:func:`bio_to_spans`) reproduces ``seqeval.metrics.sequence_labeling.get_entities`` in its default
(conlleval-compatible, non-``strict``) mode, malformed tags included; on the label lists of a config (always
well-formed BIO) it is conlleval chunking: an ``I-X`` after ``O`` or after another type starts an entity.

Hub code: imports only the standard library (this file is copied next to the weights).
"""

from __future__ import annotations

from collections.abc import Sequence


def bio_labels(entity_types: Sequence[str]) -> list[str]:
    """``["Drug", "Adverse-Effect"]`` -> ``["O", "B-Drug", "I-Drug", "B-Adverse-Effect", "I-Adverse-Effect"]``."""
    return ["O"] + [f"{prefix}-{t}" for t in entity_types for prefix in ("B", "I")]


def parse_bio_label(label: str) -> tuple[str, str]:
    """``"B-Drug"`` -> ``("B", "Drug")``, ``"O"`` -> ``("O", "")``.

    Raises:
        ValueError: ``label`` is not ``O``, ``B-<type>`` or ``I-<type>``.
    """
    if label == "O":
        return "O", ""
    if len(label) > 2 and label[:2] in ("B-", "I-"):
        return label[0], label[2:]
    raise ValueError(f"{label!r} is not a BIO tag: expected 'O', 'B-<type>' or 'I-<type>'")


def check_bio_labels(labels: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``labels`` is a BIO tag list: each ``O``, ``B-<type>`` or ``I-<type>``, no
    duplicate, exactly one ``O``."""
    if len(set(labels)) != len(labels):
        raise ValueError(f"`id2label` has duplicate labels: {list(labels)}")
    if "O" not in labels:
        raise ValueError(f"`id2label` needs the outside tag 'O', got {list(labels)}")
    for index, label in enumerate(labels):
        try:
            parse_bio_label(label)
        except ValueError:
            raise ValueError(
                f"`id2label[{index}]` is {label!r}: expected 'O', 'B-<type>' or 'I-<type>' (BIO tags)"
            ) from None


_CHUNK_ENDERS = {("B", "B"), ("B", "S"), ("B", "O"), ("I", "B"), ("I", "S"), ("I", "O")}
_CHUNK_STARTERS = {("E", "E"), ("E", "I"), ("S", "E"), ("S", "I"), ("O", "E"), ("O", "I")}


def split_tag(tag: str) -> tuple[str, str]:
    """Split a tag into ``(prefix, type)`` exactly as seqeval's default mode does.

    The prefix is the **first character**; the type is the text after the first ``-`` that follows it
    (the whole remainder when there is no ``-``), and ``"_"`` when that is empty::

        "B-PER" -> ("B", "PER")      "B-A-B" -> ("B", "A-B")     "O" -> ("O", "_")
        "B"     -> ("B", "_")        "-PER"  -> ("-", "PER")     "PER" -> ("P", "ER")
        "b-per" -> ("b", "per")      "X"     -> ("X", "_")

    Raises ``ValueError`` on an empty tag (seqeval raises ``IndexError`` there).
    """
    if not tag:
        raise ValueError("empty tag: every token needs a tag such as 'O' or 'B-TYPE'")
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def ends_chunk(prev_prefix: str, prefix: str, prev_type: str, chunk_type: str) -> bool:
    """Whether a chunk ended between the previous token and this one (conlleval ``endOfChunk``).

    True after an ``E``/``S`` token; after ``B``/``I`` when this token is ``B``, ``S`` or ``O``; and whenever
    the type changes after a token whose prefix is neither ``O`` nor ``.``.
    """
    if prev_prefix in ("E", "S") or (prev_prefix, prefix) in _CHUNK_ENDERS:
        return True
    return prev_prefix not in ("O", ".") and prev_type != chunk_type


def starts_chunk(prev_prefix: str, prefix: str, prev_type: str, chunk_type: str) -> bool:
    """Whether a chunk started at this token (conlleval ``startOfChunk``).

    True at ``B``/``S``; at ``I``/``E`` after ``E``, ``S`` or ``O`` (so a stray ``I-X`` after ``O`` opens a
    chunk); and whenever the type changes at a token whose prefix is neither ``O`` nor ``.`` (so ``I-Y``
    right after ``I-X`` opens a new ``Y`` chunk).
    """
    if prefix in ("B", "S") or (prev_prefix, prefix) in _CHUNK_STARTERS:
        return True
    return prefix not in ("O", ".") and prev_type != chunk_type


def bio_to_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Decode one tag sequence into chunks ``(type, start, end_exclusive)``, like seqeval's default mode.

    Args:
        tags: ``(seq_len,)`` tag strings of one sentence, BIO/IOB2 or IOBES (``B-``, ``I-``, ``E-``, ``S-``,
            ``O``), prefix first.

    Returns:
        The chunks in order of their end. Identical to
        ``[(t, s, e + 1) for t, s, e in seqeval.metrics.sequence_labeling.get_entities(list(tags))]``
        for every non-empty tag, malformed ones included (tested on random sequences):

        - ``I-X`` after ``O`` or after another type starts a chunk (conlleval): ``O I-X I-X`` -> ``X[1:3]``;
        - ``B-X I-Y`` gives two chunks; ``E-X``/``S-X`` close a chunk;
        - a tag is split by :func:`split_tag` (first character = prefix), so ``B``/``I`` with no type are
          chunks of type ``"_"``;
        - seqeval quirks are kept: a tag whose prefix is not one of ``B I E S O`` (``b-x``, ``X``, ``-PER``,
          ``o``) is delimited by type changes only (``b-x b-x`` is one chunk ``x``; ``X`` alone is no
          chunk, ``X B-A`` gives a ``_`` chunk then an ``A`` chunk), and such a chunk may keep the start
          offset of an earlier chunk.

    Raises ``ValueError`` on an empty tag.
    """
    spans: list[tuple[str, int, int]] = []
    prev_prefix, prev_type, begin = "O", "", 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, chunk_type = split_tag(tag)
        if ends_chunk(prev_prefix, prefix, prev_type, chunk_type):
            spans.append((prev_type, begin, position))
        if starts_chunk(prev_prefix, prefix, prev_type, chunk_type):
            begin = position
        prev_prefix, prev_type = prefix, chunk_type
    return spans
