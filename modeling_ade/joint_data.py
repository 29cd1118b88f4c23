"""A user's entity-and-relation corpus for ``train.py joint`` (training side): read it in any supported format,
choose its splits, read its label sets and cut long documents into sentences.

Formats (``datasets_scripts.relation_formats``): the project schema (JSONL / JSON / Parquet file, an exported
folder, a Hub id), SpERT JSON (a file, or a folder of them: one split per file, named by its stem) and brat
standoff (a folder: one split per sub-folder holding ``.ann`` files, or ``train`` for documents at the top).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets_scripts.relation_formats import (
    BratCounts,
    CorpusFormatError,
    check_schema_record,
    is_brat_folder,
    is_spert_file,
    parse_split,
    read_brat_folder,
    read_spert_file,
    spert_symmetric_relations,
    take_split,
)

from .joint_training import CorpusTypes

logger = logging.getLogger(__name__)

FORMATS = ("auto", "schema", "spert", "brat")


@dataclass
class RelationCorpus:
    """Every split of a corpus as project-schema records, and what reading it found."""

    splits: dict[str, list[dict[str, Any]]]
    format: str  # "schema", "spert" or "brat"
    symmetric_relations: list[str] = field(default_factory=list)  # from a SpERT types file
    notes: list[str] = field(default_factory=list)  # what the log and the run record say about the reading

    def split(self, spec: str) -> list[dict[str, Any]]:
        """The records of ``spec`` (``"train"``, ``"train[:80%]"``...); an unknown split is named with the known."""
        name, bounds = parse_split(spec)
        if name not in self.splits:
            raise CorpusFormatError(f"the corpus has no split {name!r}; its splits: {sorted(self.splits)}")
        return take_split(self.splits[name], bounds)


def detect_format(dataset: str) -> str:
    """``schema``, ``spert`` or ``brat`` for a path; a name that is not a path is a Hub id (``schema``)."""
    path = Path(dataset)
    if path.is_dir():
        if is_brat_folder(path):
            return "brat"
        if any(is_spert_file(p) for p in path.glob("*.json")):
            return "spert"
        return "schema"
    if path.is_file() and is_spert_file(path):
        return "spert"
    return "schema"


def load_relation_corpus(
    dataset: str, dataset_format: str = "auto", config: str | None = None
) -> RelationCorpus:
    """Read ``dataset`` (see the module docstring); ``dataset_format`` overrides the detection."""
    kind = detect_format(dataset) if dataset_format == "auto" else dataset_format
    path = Path(dataset)
    if kind == "brat":
        if not path.is_dir():
            raise CorpusFormatError(f"--dataset {dataset}: a brat corpus is a folder of .txt + .ann files")
        counts = BratCounts()
        sub = sorted(p for p in path.iterdir() if p.is_dir() and any(p.rglob("*.ann")))
        splits = {p.name: read_brat_folder(p, counts) for p in sub}
        if any(path.glob("*.txt")):
            if "train" in splits:
                raise CorpusFormatError(
                    f"--dataset {dataset}: documents at the top and in a train/ sub-folder: which are train?"
                )
            splits["train"] = read_brat_folder(path, counts, recursive=False)
        return RelationCorpus(splits, "brat", notes=[f"brat standoff: {counts.describe()}"])
    if kind == "spert":
        files = sorted(p for p in path.glob("*.json") if is_spert_file(p)) if path.is_dir() else [path]
        splits = {p.stem if path.is_dir() else "train": read_spert_file(p) for p in files}
        folder = path if path.is_dir() else path.parent
        return RelationCorpus(
            splits,
            "spert",
            symmetric_relations=spert_symmetric_relations(folder),
            notes=[
                "SpERT JSON has no original text: each text is rebuilt as its tokens joined by single spaces"
            ],
        )
    if kind == "schema":
        return RelationCorpus(load_schema_splits(dataset, config), "schema")
    raise ValueError(f"--dataset-format must be one of {FORMATS}, got {dataset_format!r}")


def load_schema_splits(dataset: str, config: str | None) -> dict[str, list[dict[str, Any]]]:
    """Every split of a project-schema dataset (file, folder or Hub id) as checked records; a ``ClassLabel``
    type becomes its name. Errors name the file (and line, for JSON lines) or the split, the record and the
    field."""
    from datasets_scripts.common import rows_with_type_names

    from .ner_data import load_split

    path = Path(dataset)
    if not path.exists() and (
        path.is_absolute() or dataset.startswith((".", "~")) or dataset.count("/") != 1
    ):
        raise CorpusFormatError(f"--dataset {dataset}: no such file or folder")
    try:
        loaded = load_split(dataset, config, None)
    except CorpusFormatError:
        raise
    except Exception as err:  # datasets raises many types for unreadable files, configs and ids
        raise CorpusFormatError(f"--dataset {dataset}: cannot be read ({str(err).splitlines()[0]})") from None
    splits = {}
    for name, split in loaded.items():
        for column in ("text", "entities", "relations"):
            if column not in split.column_names:
                raise CorpusFormatError(
                    f"--dataset {dataset} (split {name}): no column {column!r}; columns: {split.column_names} "
                    "(the project schema: text, entities with character offsets, relations with head/tail indices)"
                )
        rows = rows_with_type_names(split)
        line = path.suffix == ".jsonl" and path.is_file()
        splits[name] = [
            check_schema_record(
                row, f"{dataset}: line {i + 1}" if line else f"{dataset} (split {name}): record {i}"
            )
            for i, row in enumerate(rows)
        ]
    return splits


def corpus_types(
    train: Sequence[dict], evaluation: Sequence[dict], eval_split: str, symmetric: Sequence[str] = ()
) -> CorpusTypes:
    """The label sets of a run, from its training records (order of first appearance): entity types, relation
    types, the (head type, tail type) pairs relations join, whether a pair holds several relation types
    (multi-label), and ``symmetric`` checked against the relation types.

    Raises :class:`CorpusFormatError` for an empty training split, one without entities or relations, and an
    entity or relation type seen only in the evaluation split (naming the record)."""
    if not train:
        raise CorpusFormatError("the training split is empty")
    entity_types: dict[str, None] = {}
    relation_types: dict[str, None] = {}
    candidates: dict[tuple[str, str], None] = {}
    multi_label = False
    for record in train:
        for entity in record["entities"]:
            entity_types[entity["type"]] = None
        labels_of_pair: dict[tuple[int, int], set[str]] = defaultdict(set)
        for relation in record["relations"]:
            relation_types[relation["type"]] = None
            head, tail = record["entities"][relation["head"]], record["entities"][relation["tail"]]
            candidates[(head["type"], tail["type"])] = None
            if relation["type"] in symmetric:
                candidates[(tail["type"], head["type"])] = None
            labels_of_pair[(relation["head"], relation["tail"])].add(relation["type"])
        multi_label |= any(len(labels) > 1 for labels in labels_of_pair.values())
    if not entity_types:
        raise CorpusFormatError("the training split has no entity: nothing to learn")
    if not relation_types:
        raise CorpusFormatError(
            "the training split has no relation (for entities alone, train.py ner trains a tagger)"
        )
    unknown = [r for r in symmetric if r not in relation_types]
    if unknown:
        raise CorpusFormatError(f"--symmetric-relations {unknown}: not relation types of the training split")
    for index, record in enumerate(evaluation):
        for j, entity in enumerate(record["entities"]):
            if entity["type"] not in entity_types:
                raise CorpusFormatError(
                    f"{eval_split}: record {index} (id {record['id']}): entities[{j}].type {entity['type']!r} is "
                    f"not in the training split (its types: {list(entity_types)}): the model could never predict it"
                )
        for j, relation in enumerate(record["relations"]):
            if relation["type"] not in relation_types:
                raise CorpusFormatError(
                    f"{eval_split}: record {index} (id {record['id']}): relations[{j}].type {relation['type']!r} "
                    f"is not in the training split (its types: {list(relation_types)})"
                )
    return CorpusTypes(
        entity_types=list(entity_types),
        relation_types=list(relation_types),
        candidate_types=[list(pair) for pair in candidates],
        symmetric_relations=sorted(symmetric),
        multi_label=multi_label,
    )


@dataclass
class SentenceSplitCounts:
    records_split: int = 0
    units: int = 0
    boundaries_kept: int = 0  # sentence boundaries an entity or a relation crosses


def split_long_records(
    records: Sequence[dict], too_long: Callable[[str], bool], language: str, counts: SentenceSplitCounts
) -> list[dict]:
    """Records whose text is ``too_long`` cut at sentence boundaries (the pipeline's splitter, ``sentencex``), so
    no part of a long document is truncated away. A boundary that an entity or a relation crosses is not cut
    (counted); each piece keeps its entities (offsets shifted) and relations, id ``"{id}#{k}"``."""
    from .hub.pipeline_ade_extraction import sentence_spans

    out = []
    for record in records:
        text = record["text"]
        if not too_long(text):
            out.append(record)
            continue
        starts = [start for start, _ in sentence_spans(text, language)[1:]]
        entities = record["entities"]
        blocked = {
            cut
            for cut in starts
            if any(e["start"] < cut < e["end"] for e in entities)
            or any(
                (entities[r["head"]]["start"] < cut) != (entities[r["tail"]]["start"] < cut)
                for r in record["relations"]
            )
        }
        cuts = [0, *(c for c in starts if c not in blocked), len(text)]
        counts.boundaries_kept += len(blocked)
        counts.records_split += 1
        for k, (start, end) in enumerate(zip(cuts, cuts[1:])):
            inside = [i for i, e in enumerate(entities) if start <= e["start"] and e["end"] <= end]
            new_index = {old: new for new, old in enumerate(inside)}
            out.append(
                {
                    **record,
                    "id": f"{record['id']}#{k}",
                    "text": text[start:end],
                    "entities": [
                        {
                            **entities[i],
                            "start": entities[i]["start"] - start,
                            "end": entities[i]["end"] - start,
                        }
                        for i in inside
                    ],
                    "relations": [
                        {**r, "head": new_index[r["head"]], "tail": new_index[r["tail"]]}
                        for r in record["relations"]
                        if r["head"] in new_index
                    ],
                }
            )
            counts.units += 1
    return out
