"""Documents to extract from, streamed: plain text, JSONL, gzip of either, Parquet, PubMed/MEDLINE XML and
``datasets`` datasets, from files, folders and globs (not Hub code).

The input is cut into :class:`Unit` s, pieces that one process reads alone: a byte range of an uncompressed text or
JSONL file (cut at line starts), a row group of a Parquet file, a whole gzip or XML file, a shard of a
``datasets`` dataset. :func:`plan_units` makes the same list in every process from the input alone, so a job's
output never depends on how many processes ran it. :func:`read_unit` streams a unit's rows; memory stays flat.

A row is a :class:`Row`: its id (``--id-column``, else ``"{file}:{row}"`` with the 0-based row number in the file,
or a PubMed record's PMID), its text (the ``--text-column`` s joined by a blank line, e.g. title + abstract), the
columns to copy, or the reason it cannot be used (:attr:`Row.error`): empty, missing or non-string text,
undecodable bytes, a broken JSON line.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SourceError(ValueError):
    """An input that cannot be read at all (missing, unsupported, corrupt); the message names it and where."""


KINDS = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".xml": "pubmed",
}


def file_kind(path: Path) -> tuple[str, bool]:
    """``(kind, gzipped)`` of a file by its suffixes (``abstracts.jsonl.gz`` -> ``("jsonl", True)``)."""
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = (
        suffixes[-2] if gzipped and len(suffixes) > 1 else (suffixes[-1] if suffixes and not gzipped else "")
    )
    if suffix not in KINDS or (gzipped and KINDS[suffix] == "parquet"):
        raise SourceError(
            f"{path}: unsupported file type (expected {', '.join(sorted(KINDS))}, optionally .gz, or a folder)"
        )
    return KINDS[suffix], gzipped


def is_dataset_folder(path: Path) -> bool:
    """A folder that ``datasets`` loads as one dataset (a dataset card or saved dataset info), not a folder of files."""
    return path.is_dir() and any((path / name).is_file() for name in ("README.md", "dataset_info.json"))


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files of the inputs in a fixed order: a folder gives its supported files (recursively, sorted), a glob its
    matches (sorted); a dataset folder or a Hub id stays as it is. A missing input is a :class:`SourceError`."""
    out: list[str] = []
    for given in inputs:
        path = Path(given)
        if any(c in given for c in "*?[") and not path.exists():
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                raise SourceError(f"{given}: the pattern matches no file")
            out += [m for m in matches if Path(m).is_file()]
        elif path.is_dir() and not is_dataset_folder(path):
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            supported = []
            for p in files:
                try:
                    file_kind(p)
                except SourceError:
                    continue
                supported.append(str(p))
            if not supported:
                raise SourceError(f"{given}: the folder holds no supported file")
            out += supported
        elif path.is_file() or is_dataset_folder(path):
            out.append(given)
        elif path.is_absolute() or given.startswith(".") or given.count("/") != 1:
            raise SourceError(f"{given}: no such file or folder")
        else:
            out.append(given)  # a Hub dataset id
    return out


@dataclass(frozen=True)
class Unit:
    """A piece of input read by one process: ``kind`` text / jsonl / parquet / pubmed / dataset; ``start`` and
    ``stop`` are a byte range (plain text and JSONL), a row group (Parquet) or a shard (dataset);
    ``first_row`` the file row number of its first row."""

    source: str
    kind: str
    gzipped: bool = False
    start: int = 0
    stop: int | None = None
    first_row: int = 0

    @property
    def name(self) -> str:
        """How the unit's rows name their file in ids and errors."""
        return self.source


def _plan_plain_file(path: str, kind: str, chunk_bytes: int) -> list[Unit]:
    """Byte ranges of about ``chunk_bytes``, each ending after a newline (or at the end of the file), each with
    the file row number of its first line."""
    units, start, first_row = [], 0, 0
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        while start < size:
            handle.seek(min(start + chunk_bytes, size))
            if handle.tell() < size:
                handle.readline()  # on to the start of the next line
            stop = handle.tell()
            handle.seek(start)
            data = handle.read(stop - start)
            units.append(Unit(path, kind, start=start, stop=stop, first_row=first_row))
            first_row += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            start = stop
    return units


def plan_units(
    inputs: Sequence[str],
    chunk_bytes: int = 1 << 18,
    dataset_config: str | None = None,
    dataset_split: str = "train",
) -> list[Unit]:
    """Every unit of the inputs, in input order (see the module docstring)."""
    units: list[Unit] = []
    for source in expand_inputs(inputs):
        path = Path(source)
        if not path.is_file():  # a dataset folder or a Hub id: one unit per shard of the streaming dataset
            dataset = load_streaming(source, dataset_config, dataset_split)
            units += [Unit(source, "dataset", start=i, stop=i + 1) for i in range(dataset.num_shards)]
            continue
        kind, gzipped = file_kind(path)
        if kind == "parquet":
            import pyarrow.parquet as pq

            try:
                metadata = pq.ParquetFile(source).metadata
            except Exception as err:  # pyarrow raises several types for a corrupt file
                raise SourceError(f"{source}: not a readable Parquet file ({err})") from None
            first = 0
            for group in range(metadata.num_row_groups):
                units.append(Unit(source, kind, start=group, stop=group + 1, first_row=first))
                first += metadata.row_group(group).num_rows
        elif gzipped or kind == "pubmed":
            units.append(Unit(source, kind, gzipped=gzipped))  # read whole, by one process
        else:
            units += _plan_plain_file(source, kind, chunk_bytes)
    return units


def load_streaming(source: str, config: str | None, split: str):
    import datasets

    try:
        return datasets.load_dataset(source, config, split=split, streaming=True)
    except Exception as err:  # an unknown dataset, config or split
        raise SourceError(f"{source}: cannot be read as a dataset ({str(err).splitlines()[0]})") from None


# --------------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One document of the input: ``error`` says why it cannot be used (its text is then None)."""

    id: str
    text: str | None
    copied: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    source: str = ""
    row: int = 0


@dataclass(frozen=True)
class Columns:
    """Which columns hold the text, the id and what to copy (``predict.py --text-column/--id-column/--copy-columns``)."""

    text: tuple[str, ...] = ("text",)
    id: str | None = None
    copy: tuple[str, ...] = ()


def make_row(record: dict[str, Any], columns: Columns, source: str, row: int) -> Row:
    """A row from a record: the text columns joined by a blank line (missing ones left out), the id, the copies."""
    default_id = f"{source}:{row}"
    given_id = record.get(columns.id) if columns.id else None
    row_id = str(given_id) if given_id is not None else default_id
    copied = {name: record.get(name) for name in columns.copy}
    parts, reason = [], None
    for name in columns.text:
        value = record.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            reason = f"column {name!r} is {type(value).__name__}, not text"
            break
        if value.strip():
            parts.append(value.strip())
    if reason is None and columns.id and given_id is None:
        reason = f"column {columns.id!r} (--id-column) is missing"
    if reason is None and not parts:
        reason = f"no text: column(s) {', '.join(columns.text)} missing or empty"
    text = "\n\n".join(parts) if reason is None else None
    return Row(row_id, text, copied, reason, source, row)


def _lines(unit: Unit) -> Iterator[tuple[int, bytes]]:
    """``(row number in the file, raw line without its newline)`` of a text or JSONL unit."""
    if unit.gzipped:
        try:
            with gzip.open(unit.source, "rb") as handle:
                for n, raw in enumerate(handle):
                    yield n, raw.rstrip(b"\r\n")
        except (OSError, EOFError) as err:
            raise SourceError(f"{unit.source}: broken gzip stream ({err})") from None
        return
    with open(unit.source, "rb") as handle:
        handle.seek(unit.start)
        data = handle.read(unit.stop - unit.start)
    for n, raw in enumerate(io.BytesIO(data), start=unit.first_row):
        yield n, raw.rstrip(b"\r\n")


def _line_row(unit: Unit, n: int, raw: bytes, columns: Columns) -> Row:
    """The row of line ``n`` of a text or JSONL unit, or a bad row saying why it cannot be used."""
    try:
        line = raw.decode("utf-8-sig" if n == 0 else "utf-8")
    except UnicodeDecodeError as err:
        reason = f"not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
    else:
        if unit.kind == "text":
            return make_row({"text": line}, Columns(("text",)), unit.name, n)
        if not line.strip():
            reason = "empty line"
        else:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                reason = f"not valid JSON ({err.msg} at column {err.colno})"
            else:
                if isinstance(record, dict):
                    return make_row(record, columns, unit.name, n)
                reason = "a JSON line must be an object"
    return Row(f"{unit.name}:{n}", None, error=reason, source=unit.name, row=n)


def _text_rows(unit: Unit, columns: Columns) -> Iterator[Row]:
    for n, raw in _lines(unit):
        yield _line_row(unit, n, raw, columns)


def _parquet_rows(unit: Unit, columns: Columns) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(unit.source).read_row_group(unit.start)
    except Exception as err:
        raise SourceError(f"{unit.source}: row group {unit.start} cannot be read ({err})") from None
    for offset, record in enumerate(table.to_pylist()):
        yield make_row(record, columns, unit.name, unit.first_row + offset)


def _dataset_rows(unit: Unit, columns: Columns, config: str | None, split: str) -> Iterator[Row]:
    dataset = load_streaming(unit.source, config, split)
    shard = dataset.shard(num_shards=dataset.num_shards, index=unit.start)
    for n, record in enumerate(shard):
        yield make_row(record, columns, f"{unit.name}:{unit.start}", n)


def pubmed_records(path: str, gzipped: bool) -> Iterator[dict[str, str]]:
    """``{"pmid", "title", "abstract"}`` of each ``PubmedArticle`` of a PubMed/MEDLINE XML file, streamed
    (``iterparse``, each article freed once read). Abstract sections are joined by a space, with their labels."""
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rb") as handle:
            for _, element in ElementTree.iterparse(handle, events=("end",)):
                if element.tag != "PubmedArticle":
                    continue
                citation = element.find("MedlineCitation")
                pmid = citation.findtext("PMID") if citation is not None else None
                article = citation.find("Article") if citation is not None else None
                title = (
                    "".join(article.find("ArticleTitle").itertext())
                    if article is not None and article.find("ArticleTitle") is not None
                    else ""
                )
                sections = []
                for part in article.iterfind("Abstract/AbstractText") if article is not None else ():
                    text = "".join(part.itertext()).strip()
                    label = part.get("Label")
                    sections.append(f"{label}: {text}" if label and text else text)
                yield {"pmid": pmid, "title": title.strip(), "abstract": " ".join(s for s in sections if s)}
                element.clear()
    except ElementTree.ParseError as err:
        line, column = err.position
        raise SourceError(f"{path}:{line}:{column}: broken XML ({err})") from None
    except (OSError, EOFError) as err:
        raise SourceError(f"{path}: broken gzip stream ({err})") from None


def _pubmed_rows(unit: Unit, columns: Columns) -> Iterator[Row]:
    text_columns = columns.text if columns.text != ("text",) else ("title", "abstract")
    for n, record in enumerate(pubmed_records(unit.source, unit.gzipped)):
        yield make_row(record, Columns(text_columns, columns.id or "pmid", columns.copy), unit.name, n)


def read_unit(
    unit: Unit, columns: Columns, dataset_config: str | None = None, dataset_split: str = "train"
) -> Iterator[Row]:
    """Stream the rows of one unit, in order."""
    if unit.kind in ("text", "jsonl"):
        return _text_rows(unit, columns)
    if unit.kind == "parquet":
        return _parquet_rows(unit, columns)
    if unit.kind == "pubmed":
        return _pubmed_rows(unit, columns)
    return _dataset_rows(unit, columns, dataset_config, dataset_split)
