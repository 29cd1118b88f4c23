"""Entity-and-relation corpora in the formats users bring: the project schema, SpERT JSON and brat standoff.

Every reader gives records of the project schema (the one of ``datasets_scripts.ade_corpus``)::

    {"id": str, "text": str,
     "entities": [{"start", "end", "type", "text"}],      # character offsets into text, end exclusive
     "relations": [{"head", "tail", "type"}]}             # indices into entities, directed head -> tail

- **Project schema** (JSONL, Parquet, an exported folder or a Hub id, read with ``datasets``):
  :func:`check_schema_record` checks each row.
- **SpERT JSON** (a JSON array of ``{"tokens", "entities": [{"type", "start", "end"}], "relations":
  [{"type", "head", "tail"}]}`` with token offsets, end exclusive): a SpERT file has no original text, so the
  text is **rebuilt** as the tokens joined by single spaces (:func:`spert_to_record`); entity offsets point into
  that text. A ``*types.json`` file beside it may mark relation types ``"symmetric": true``.
- **brat standoff** (a folder of ``NAME.txt`` + ``NAME.ann``): ``T`` lines are entities, ``R`` lines relations
  (``Arg1`` = head, ``Arg2`` = tail); a discontinuous ``T`` (``start end;start end``) cannot be one span: it is
  left out with the relations that use it, and both are counted. Other lines (``E``, ``A``, ``M``, ``N``, ``*``,
  ``#``) are counted and left out. One record per document (``id`` = the path without ``.txt``, relative to the
  folder), so :func:`write_brat` gives the same files back.

Errors are :class:`CorpusFormatError` naming the file, the line or record and the field.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets_scripts.common import read_utf8


class CorpusFormatError(ValueError):
    """A corpus file does not follow its format; the message names the file, the line or record and the field."""


# --------------------------------------------------------------------------------------------------------
# Project schema
# --------------------------------------------------------------------------------------------------------


def check_schema_record(record: Any, where: str) -> dict[str, Any]:
    """Check one project-schema record (``where`` names it: ``"data.jsonl: line 3"``) and return it with the
    entity texts filled in: offsets inside the text, ``start < end``, relation indices in range, types strings."""
    if not isinstance(record, dict):
        raise CorpusFormatError(f"{where}: expected an object, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str):
        raise CorpusFormatError(f"{where}: field 'text' is missing or not a string")
    for key in ("entities", "relations"):
        if not isinstance(record.get(key, []), list):
            raise CorpusFormatError(f"{where}: field {key!r} is not a list")
    entities = []
    for j, entity in enumerate(record.get("entities") or []):
        name = f"entities[{j}]"
        if not isinstance(entity, dict):
            raise CorpusFormatError(f"{where}: field {name} is not an object")
        start, end = (_integer(entity.get(k), f"{where}: field {name}.{k}") for k in ("start", "end"))
        if not 0 <= start < end:
            raise CorpusFormatError(f"{where}: field {name}: start {start} and end {end} give an empty span")
        if end > len(text):
            raise CorpusFormatError(
                f"{where}: field {name}.end = {end} is past the end of the text ({len(text)} characters)"
            )
        entity_type = _type_name(entity.get("type"), f"{where}: field {name}.type")
        given = entity.get("text")
        if given is not None and given != text[start:end]:
            raise CorpusFormatError(
                f"{where}: field {name}.text = {given!r} disagrees with the text at {start}:{end} "
                f"({text[start:end]!r})"
            )
        entities.append({"start": start, "end": end, "type": entity_type, "text": text[start:end]})
    relations = []
    for j, relation in enumerate(record.get("relations") or []):
        name = f"relations[{j}]"
        if not isinstance(relation, dict):
            raise CorpusFormatError(f"{where}: field {name} is not an object")
        head, tail = (_integer(relation.get(k), f"{where}: field {name}.{k}") for k in ("head", "tail"))
        for key, value in (("head", head), ("tail", tail)):
            if not 0 <= value < len(entities):
                raise CorpusFormatError(
                    f"{where}: field {name}.{key} = {value} is out of range ({len(entities)} entities)"
                )
        if head == tail:
            raise CorpusFormatError(f"{where}: field {name}: head and tail are the same entity ({head})")
        relations.append(
            {
                "head": head,
                "tail": tail,
                "type": _type_name(relation.get("type"), f"{where}: field {name}.type"),
            }
        )
    return {"id": str(record.get("id", where)), "text": text, "entities": entities, "relations": relations}


def _integer(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CorpusFormatError(f"{where} = {value!r} is not an integer")
    return value


def _type_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CorpusFormatError(f"{where} = {value!r} is not a type name")
    return value


# --------------------------------------------------------------------------------------------------------
# SpERT JSON
# --------------------------------------------------------------------------------------------------------


def spert_to_record(item: Any, where: str, default_id: str) -> dict[str, Any]:
    """One SpERT record -> a project record whose text is the tokens joined by single spaces."""
    if not isinstance(item, dict):
        raise CorpusFormatError(f"{where}: expected an object, got {type(item).__name__}")
    tokens = item.get("tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t for t in tokens):
        raise CorpusFormatError(f"{where}: field 'tokens' must be a non-empty list of non-empty strings")
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token) + 1
    text = " ".join(tokens)
    entities = []
    for j, entity in enumerate(item.get("entities") or []):
        name = f"entities[{j}]"
        if not isinstance(entity, dict):
            raise CorpusFormatError(f"{where}: field {name} is not an object")
        start, end = (_integer(entity.get(k), f"{where}: field {name}.{k}") for k in ("start", "end"))
        if not 0 <= start < end <= len(tokens):
            raise CorpusFormatError(
                f"{where}: field {name}: tokens {start}:{end} are out of range ({len(tokens)} tokens)"
            )
        entities.append(
            {
                "start": starts[start],
                "end": starts[end - 1] + len(tokens[end - 1]),
                "type": _type_name(entity.get("type"), f"{where}: field {name}.type"),
            }
        )
    record = {"id": item.get("orig_id", default_id), "text": text, "entities": entities}
    record["relations"] = item.get("relations") or []
    return check_schema_record(record, where)


def record_to_spert(record: dict[str, Any]) -> dict[str, Any]:
    """A project record whose text is space-joined tokens (as :func:`spert_to_record` makes) -> SpERT."""
    tokens = record["text"].split(" ")
    starts, position = {}, 0
    ends = {}
    for index, token in enumerate(tokens):
        starts[position] = index
        ends[position + len(token)] = index + 1
        position += len(token) + 1
    entities = []
    for entity in record["entities"]:
        if entity["start"] not in starts or entity["end"] not in ends:
            raise CorpusFormatError(f"{record['id']}: an entity does not fall on token boundaries: {entity}")
        entities.append(
            {"type": entity["type"], "start": starts[entity["start"]], "end": ends[entity["end"]]}
        )
    return {
        "tokens": tokens,
        "entities": entities,
        "relations": [{"type": r["type"], "head": r["head"], "tail": r["tail"]} for r in record["relations"]],
        "orig_id": record["id"],
    }


def read_spert_file(path: str | Path) -> list[dict[str, Any]]:
    """The records of one SpERT JSON file (a JSON array); errors name the file and record."""
    path = Path(path)
    try:
        items = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise CorpusFormatError(f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    if not isinstance(items, list):
        raise CorpusFormatError(f"{path}: expected a JSON array of SpERT records, got {type(items).__name__}")
    return [
        spert_to_record(item, f"{path}: record {i}", default_id=f"{path.stem}-{i}")
        for i, item in enumerate(items)
    ]


def _read_text(path: Path) -> str:
    """The UTF-8 text of a corpus file as it is (a BOM kept: brat offsets count it); a byte that is not UTF-8 is
    a :class:`~datasets_scripts.common.NotUtf8Error` naming the file, line and byte offset."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        read_utf8(path)  # raises NotUtf8Error with the line and offset
        raise


def is_spert_file(path: Path) -> bool:
    """Whether a ``.json`` file is a SpERT file: a JSON array whose first item has ``tokens`` (a types file is
    an object, a project-schema JSON file has ``text``)."""
    if path.suffix != ".json":
        return False
    with path.open(encoding="utf-8") as handle:
        head = handle.read(4096).lstrip()
    return head.startswith("[") and '"tokens"' in head and '"text"' not in head.split("}", 1)[0]


def spert_symmetric_relations(folder: Path) -> list[str]:
    """Relation types a SpERT ``*types.json`` file in ``folder`` marks ``"symmetric": true``."""
    symmetric = set()
    for path in sorted(folder.glob("*types.json")):
        try:
            types = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise CorpusFormatError(f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
        for name, spec in (types.get("relations") or {}).items() if isinstance(types, dict) else ():
            if isinstance(spec, dict) and spec.get("symmetric"):
                symmetric.add(name)
    return sorted(symmetric)


# --------------------------------------------------------------------------------------------------------
# brat standoff
# --------------------------------------------------------------------------------------------------------


@dataclass
class BratCounts:
    """What reading a brat folder left out (reported, never silent)."""

    documents: int = 0
    entities: int = 0
    relations: int = 0
    discontinuous_entities: int = 0
    relations_on_discontinuous: int = 0
    other_lines: Counter[str] = field(default_factory=Counter)  # first letter of E/A/M/N/*/# lines

    def describe(self) -> str:
        other = ", ".join(f"{n} {kind!r}" for kind, n in sorted(self.other_lines.items())) or "none"
        return (
            f"{self.documents} documents, {self.entities} entities, {self.relations} relations; left out: "
            f"{self.discontinuous_entities} discontinuous entities (T lines with ';') and the "
            f"{self.relations_on_discontinuous} relations that use them; other annotation lines: {other}"
        )


_T_LINE = re.compile(r"^(\S+) (\d+ \d+(?:;\d+ \d+)*)$")
_R_ARGS = re.compile(r"^(\S+) Arg1:(\S+) Arg2:(\S+)$")


def read_brat_document(txt_path: Path, doc_id: str, counts: BratCounts) -> dict[str, Any]:
    """One ``.txt`` + ``.ann`` pair -> a record; errors name the ``.ann`` file, its line and the field."""
    ann_path = txt_path.with_suffix(".ann")
    text = _read_text(txt_path)
    if not ann_path.is_file():
        raise CorpusFormatError(f"{txt_path}: no annotation file {ann_path.name} beside it")
    entities, index, skipped, relations = [], {}, set(), []
    for lineno, line in enumerate(_read_text(ann_path).splitlines(), start=1):
        where = f"{ann_path}:{lineno}"
        if not line.strip():
            continue
        parts = line.split("\t")
        ann_id = parts[0]
        if ann_id.startswith("T"):
            if len(parts) != 3:
                raise CorpusFormatError(
                    f"{where}: a T line needs 3 tab-separated fields (id, 'Type start end', text)"
                )
            match = _T_LINE.match(parts[1])
            if match is None:
                raise CorpusFormatError(f"{where}: field 2 {parts[1]!r} is not 'Type start end'")
            if ann_id in index or ann_id in skipped:
                raise CorpusFormatError(f"{where}: field 1: {ann_id} is defined twice")
            if ";" in match.group(2):
                skipped.add(ann_id)
                counts.discontinuous_entities += 1
                continue
            start, end = map(int, match.group(2).split())
            if not start < end:
                raise CorpusFormatError(f"{where}: field 2: start {start} and end {end} give an empty span")
            if end > len(text):
                raise CorpusFormatError(
                    f"{where}: field 2: end {end} is past the end of {txt_path.name} ({len(text)} characters)"
                )
            if text[start:end].replace("\n", " ") != parts[2].replace("\n", " "):
                raise CorpusFormatError(
                    f"{where}: field 3: the span text {parts[2]!r} disagrees with {txt_path.name} at "
                    f"{start}:{end} ({text[start:end]!r})"
                )
            index[ann_id] = len(entities)
            entities.append({"start": start, "end": end, "type": match.group(1), "text": text[start:end]})
        elif ann_id.startswith("R"):
            match = _R_ARGS.match(parts[1]) if len(parts) >= 2 else None
            if match is None:
                raise CorpusFormatError(f"{where}: field 2 {parts[1:2]!r} is not 'Type Arg1:T.. Arg2:T..'")
            relation_type, head, tail = match.groups()
            if head in skipped or tail in skipped:
                counts.relations_on_discontinuous += 1
                continue
            for arg, name in ((head, "Arg1"), (tail, "Arg2")):
                if not arg.startswith("T"):
                    raise CorpusFormatError(f"{where}: field 2: {name} {arg} is not a T annotation")
            relations.append((lineno, relation_type, head, tail))
        else:
            counts.other_lines[ann_id[:1] or "?"] += 1
    record_relations = []
    for lineno, relation_type, head, tail in relations:  # T lines may come after the R lines naming them
        for arg, name in ((head, "Arg1"), (tail, "Arg2")):
            if arg not in index:
                raise CorpusFormatError(
                    f"{ann_path}:{lineno}: field 2: {name} names {arg}, which no T line of {ann_path.name} defines"
                )
        record_relations.append({"head": index[head], "tail": index[tail], "type": relation_type})
    counts.documents += 1
    counts.entities += len(entities)
    counts.relations += len(record_relations)
    return {"id": doc_id, "text": text, "entities": entities, "relations": record_relations}


def is_brat_folder(folder: Path) -> bool:
    return folder.is_dir() and any(folder.rglob("*.ann"))


def read_brat_folder(
    folder: str | Path, counts: BratCounts | None = None, recursive: bool = True
) -> list[dict[str, Any]]:
    """Every ``.txt`` document under ``folder`` (recursively, or only those directly in it; sorted by path) as a
    record whose id is its path relative to ``folder``, without ``.txt``."""
    folder = Path(folder)
    counts = counts if counts is not None else BratCounts()
    return [
        read_brat_document(path, path.relative_to(folder).with_suffix("").as_posix(), counts)
        for path in sorted(folder.rglob("*.txt") if recursive else folder.glob("*.txt"))
    ]


def write_brat(records: Iterable[dict[str, Any]], folder: str | Path) -> list[Path]:
    """Write records as brat standoff (``ID.txt`` + ``ID.ann`` under ``folder``); returns the ``.txt`` paths.

    Entities become ``T1..``, relations ``R1..`` (``Arg1`` = head). A record id may hold ``/`` (sub-folders)."""
    folder = Path(folder)
    written = []
    for record in records:
        doc = folder / f"{record['id']}.txt"
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(record["text"], encoding="utf-8")
        lines = [
            f"T{i + 1}\t{e['type']} {e['start']} {e['end']}\t{record['text'][e['start'] : e['end']].replace(chr(10), ' ')}"
            for i, e in enumerate(record["entities"])
        ]
        lines += [
            f"R{i + 1}\t{r['type']} Arg1:T{r['head'] + 1} Arg2:T{r['tail'] + 1}"
            for i, r in enumerate(record["relations"])
        ]
        doc.with_suffix(".ann").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        written.append(doc)
    return written


# --------------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------------

_SLICE = re.compile(r"^(?P<name>[^\[\]]+)(?:\[(?P<start>-?\d*%?):(?P<end>-?\d*%?)\])?$")


def parse_split(spec: str) -> tuple[str, slice]:
    """``"train[:80%]"`` -> ``("train", slice)`` over a list: integers are indices, ``N%`` a share of the split
    (rounded to the nearest record, as ``datasets`` does)."""
    match = _SLICE.match(spec.strip())
    if match is None:
        raise ValueError(f"split {spec!r}: expected NAME or NAME[START:END] (integers or percentages)")
    return match.group("name"), slice(match.group("start") or None, match.group("end") or None)


def take_split(records: Sequence[dict[str, Any]], bounds: slice) -> list[dict[str, Any]]:
    """``records[bounds]`` where the bounds may be ``"N%"`` strings (see :func:`parse_split`)."""

    def position(value: str | None) -> int | None:
        if value is None:
            return None
        if value.endswith("%"):
            return round(len(records) * int(value[:-1]) / 100)
        return int(value)

    return list(records[position(bounds.start) : position(bounds.stop)])
