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
  a ``ClassLabel`` over :data:`ENTITY_TYPES` (:func:`ade_records` gives the names), ``text == text[start:end]``. Sorted by ``(start, end, type)``; a mention that
  occurs in several relation lines is one entity.
- ``relations`` (list of ``{head, tail, type}``): indices into ``entities``, sorted by ``(head, tail)``; ``type`` a
  ``ClassLabel`` over :data:`RELATION_TYPES`.
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
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
from tqdm.auto import tqdm

from datasets_scripts.ade_card import (
    CITATION,
    CONFIG_DESCRIPTIONS,
    HOMEPAGE,
    LICENSE,
    SPLIT_CITATION,
    dataset_card,
)
from datasets_scripts.ade_files import (
    ENTITY_TYPES,
    NEGATIVES_FILE,
    NUM_FOLDS,
    RELATION_TYPES,
    RELATIONS_FILE,
    SPLIT_FOLDER,
    AdeFormatError,
    iter_negative_examples,
    iter_relation_examples,
)
from datasets_scripts.ade_folds import SentenceIndex, iter_fold_examples
from datasets_scripts.ade_stats import format_table, statistics_table
from datasets_scripts.common import (
    DataDirError,
    build_dataset_dict,
    export_parquet,
    resolve_data_dir,
    rows_with_type_names,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CONFIG_NAMES",
    "ENTITY_TYPES",
    "FEATURES",
    "NEGATIVES_FILE",
    "NUM_FOLDS",
    "RELATIONS_FILE",
    "RELATION_TYPES",
    "AdeCorpus",
    "AdeFormatError",
    "DataDirError",
    "config_examples",
    "corpus_statistics",
    "export",
    "ade_records",
    "load_ade",
    "main",
    "required_files",
    "resolve_corpus_dir",
]

FOLD_CONFIGS = tuple(f"fold_{k}" for k in range(NUM_FOLDS))
CONFIG_NAMES = ("relations", *FOLD_CONFIGS, "negatives")
ENV_VAR = "ADE_CORPUS_DIR"

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
                "type": datasets.ClassLabel(names=list(ENTITY_TYPES)),
                "text": datasets.Value("string"),
            }
        ),
        "relations": datasets.List(
            {
                "head": datasets.Value("int32"),
                "tail": datasets.Value("int32"),
                "type": datasets.ClassLabel(names=list(RELATION_TYPES)),
            }
        ),
    }
)


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


class AdeCorpus(datasets.GeneratorBasedBuilder):
    """ADE corpus V2: drug / adverse-effect entities and ADE relations (see the module docstring)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = AdeCorpusConfig
    BUILDER_CONFIGS = [
        AdeCorpusConfig(name=name, version=datasets.Version("1.0.0"), description=CONFIG_DESCRIPTIONS[name])
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


def ade_records(
    config_name: str, data_dir: str | Path | None = None, *, cache_dir: str | Path | None = None
) -> dict[str, list[dict[str, Any]]]:
    """One config of the ADE corpus as plain records per split, entity and relation types as names (the
    Arrow dataset of :func:`load_ade` stores them as ``ClassLabel`` indices)."""
    return {
        split: rows_with_type_names(ds)
        for split, ds in load_ade(config_name, data_dir, cache_dir=cache_dir).items()
    }


# --------------------------------------------------------------------------------------------------------
# Export, statistics, CLI
# --------------------------------------------------------------------------------------------------------


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
        table = statistics_table(
            (name, split, rows_with_type_names(ds)) for name, dsd in built for split, ds in dsd.items()
        )
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
