"""Chinese HealthNER family: character-level BIO NER in Traditional Chinese healthcare text (10 types).

Sources (raw files in ``../shared/data/chinese_healthner``; see its SOURCE.md):

- ``healthner_corpus/test.json``: the official **test** split of the Chinese HealthNER corpus
  (Lee & Lu 2021), JSON lines (read as ``utf-8-sig``; one record, 01969, holds a U+FEFF character
  inside its sentence, which is kept), gold tags in ``character`` / ``character_label``.
- ``rocling2023_multinerhealth/MultiNER-Health_truth_{FT,SM,WA}.txt``: the ROCLING 2023
  MultiNER-Health **test** sets (formal text, social media, Wikipedia): ``char tag`` lines, CRLF,
  an empty line between sentences.

The official HealthNER training split (28,161 sentences) is not available offline, so this module
does not provide the official protocol.

Schema (every config)::

    id        string   "<source>-<local id>": the record's ``id`` in JSON files, else the 0-based
                       sentence index as 5 digits ("multiner_ft-00042")
    source    string   healthner | multiner_ft | multiner_sm | multiner_wa | (custom) the file name
    genre     string   as in the data: ft / sm (HealthNER), ft / sm / wa (MultiNER); custom: the
                       JSON ``genre`` key, else ""
    text      string   the sentence; "".join(tokens) == text
    tokens    list[string]      one character each
    ner_tags  list[ClassLabel]  BIO_LABELS: "O", then B-X, I-X for X in ENTITY_TYPES

Configs:

- ``healthner``, ``multiner_ft``, ``multiner_sm``, ``multiner_wa``: one source file each, split ``test``
  (they are upstream test sets).
- ``train`` (split ``train``) and ``dev`` (split ``validation``): the project's **development
  protocol, NOT the official HealthNER protocol**: a seeded 90/10 split of all 9,155 sentences of
  the four sources, stratified by source. Within each source the distinct sentence texts (ordered by
  their first id) are shuffled with ``random.Random(f"{SPLIT_SEED}:{source}")`` and taken into dev
  in that order until dev holds ``round(DEV_PERCENT % of the source)`` sentences (half rounds up).
  Identical texts therefore never straddle train and dev. A string seed is hashed with SHA-512 and
  nothing depends on hash randomisation, so the split is the same on every run and machine
  (dev: 916 sentences, train: 8,239). Examples keep the source order, then the file order.
- ``custom``: the user's own files through ``data_files`` (``{"train": [...], "validation": [...]}``;
  splits are its keys). A file ending in ``.json`` or ``.jsonl`` is JSON lines with either
  ``character``/``character_label`` (HealthNER) or ``tokens``/``ner_tags`` (tag strings, or ids into
  BIO_LABELS), optional ``id``, ``genre`` and ``sentence``/``text`` (checked against the characters);
  any other file is ``char tag`` lines (one character, one space, the tag; blank lines separate
  sentences; a space character is written as ``"  O"``). Both may have a BOM and CRLF line ends.

Tag repair (:func:`repair_bio`), applied to every file; one ``logging`` warning per file counts each
kind, and no sentence is ever dropped:

1. ``lowercase``: a tag with lower-case letters is upper-cased (``b-body`` -> ``B-BODY``);
2. ``invalid_tag``: a tag that is not ``O``, ``B-X`` or ``I-X`` (``O-BODY``, ``E-BODY``, ``BODY``) -> ``O``;
3. ``unknown_type``: ``B-X`` / ``I-X`` with X not in ENTITY_TYPES -> ``O``;
4. ``orphan_inside``: ``I-X`` not preceded by ``B-X`` or ``I-X`` -> ``B-X``.

A line that cannot be read (no space separator, more than two fields, a multi-character "char",
invalid JSON, a missing key, characters and labels of different lengths, an empty sentence) raises
:class:`HealthNerFormatError` naming the file and line.

Usage: ``load_healthner("train")["train"]``, ``load_healthner("dev")["validation"]``,
``load_healthner("custom", data_files={...})``. CLI: ``python -m datasets_scripts.chinese_healthner
export OUT`` (Parquet + dataset card for the Hub) and ``... stats`` (statistics table).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from datasets_scripts.common import (
    build_dataset_dict,
    export_parquet,
    resolve_data_dir,
)
from datasets_scripts.healthner_card import CITATION, HOMEPAGE, dataset_card
from datasets_scripts.healthner_files import (
    BIO_LABELS,
    ENTITY_TYPES,
    HealthNerFormatError,
    is_json_lines,
    read_examples,
)
from datasets_scripts.healthner_stats import compute_stats, format_stats_table

logger = logging.getLogger(__name__)

__all__ = [  # the builder's public names (ENTITY_TYPES, BIO_LABELS and CITATION come from its helper modules)
    "BIO_LABELS",
    "CITATION",
    "ENTITY_TYPES",
    "ChineseHealthNer",
    "HealthNerFormatError",
    "export",
    "load_healthner",
    "main",
]

SPLIT_SEED = 20240601
"""Seed of the train/dev split: ``random.Random(f"{SPLIT_SEED}:{source}")``, one generator per source."""

DEV_PERCENT = 10
"""Share of each source's sentences in the dev split, in percent."""

HEALTHNER_FILE = "healthner_corpus/test.json"
SOURCE_FILES: dict[str, str] = {
    "healthner": HEALTHNER_FILE,
    "multiner_ft": "rocling2023_multinerhealth/MultiNER-Health_truth_FT.txt",
    "multiner_sm": "rocling2023_multinerhealth/MultiNER-Health_truth_SM.txt",
    "multiner_wa": "rocling2023_multinerhealth/MultiNER-Health_truth_WA.txt",
}
"""Config name -> file, relative to the corpus folder."""

SOURCE_GENRES = {"multiner_ft": "ft", "multiner_sm": "sm", "multiner_wa": "wa"}
SPLIT_CONFIGS: dict[str, str] = {"train": "train", "dev": "validation"}
"""Development-protocol config -> its split name."""
CUSTOM_CONFIG = "custom"
DEFAULT_EXPORT_CONFIGS: tuple[str, ...] = ("train", "dev", *SOURCE_FILES)

ENV_VAR = "CHINESE_HEALTHNER_DIR"
CORPUS_NAME = "Chinese HealthNER"


def dev_ids(
    examples: Iterable[Mapping[str, Any]], *, seed: int = SPLIT_SEED, dev_percent: int = DEV_PERCENT
) -> set[str]:
    """Ids of the dev split: per source, shuffle the distinct texts (ordered by first id) and fill dev.

    Needs ``id``, ``source`` and ``text``. Dev gets ``round(dev_percent % of the source)`` sentences (half
    up), slightly more when the last text taken occurs more than once: identical texts stay together.
    """
    by_source: dict[str, dict[str, list[str]]] = {}
    for ex in examples:
        by_source.setdefault(ex["source"], {}).setdefault(ex["text"], []).append(ex["id"])
    chosen: set[str] = set()
    for source in sorted(by_source):
        groups = sorted(sorted(ids) for ids in by_source[source].values())
        random.Random(f"{seed}:{source}").shuffle(groups)  # str seed: SHA-512, no hash randomisation
        n_total = sum(len(g) for g in groups)
        target = (n_total * dev_percent + 50) // 100
        taken = 0
        for group in groups:
            if taken >= target:
                break
            chosen.update(group)
            taken += len(group)
    return chosen


# ----------------------------------------------------------------------------------------------
# Builder


def resolve_corpus_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The corpus folder: ``data_dir``, else ``$CHINESE_HEALTHNER_DIR``, else ``../shared/data/chinese_healthner``.

    Raises :class:`~datasets_scripts.common.DataDirError` listing the expected files.
    """
    return resolve_data_dir(
        data_dir,
        env_var=ENV_VAR,
        default_subdir="chinese_healthner",
        required_files=list(SOURCE_FILES.values()),
        corpus_name=CORPUS_NAME,
    )


def _source_examples(source: str, corpus_dir: Path) -> list[dict[str, Any]]:
    return read_examples(corpus_dir / SOURCE_FILES[source], source, SOURCE_GENRES.get(source, ""))


FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "genre": datasets.Value("string"),
        "text": datasets.Value("string"),
        "tokens": datasets.List(datasets.Value("string")),
        "ner_tags": datasets.List(datasets.ClassLabel(names=list(BIO_LABELS))),
    }
)

_DEV_PROTOCOL_NOTE = (
    "Project development protocol, NOT the official HealthNER protocol: a seeded 90/10 split, "
    "stratified by source, of the 9,155 sentences of HealthNER test + MultiNER-Health FT/SM/WA test."
)


class ChineseHealthNer(datasets.GeneratorBasedBuilder):
    """Chinese HealthNER family: character BIO NER, 10 healthcare entity types (see the module docstring)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIGS = [
        datasets.BuilderConfig(
            name="healthner",
            version=VERSION,
            description="HealthNER official test split (2,531 sentences), split 'test'.",
        ),
        datasets.BuilderConfig(
            name="multiner_ft",
            version=VERSION,
            description="ROCLING 2023 MultiNER-Health test, formal text (FT), split 'test'.",
        ),
        datasets.BuilderConfig(
            name="multiner_sm",
            version=VERSION,
            description="ROCLING 2023 MultiNER-Health test, social media (SM), split 'test'.",
        ),
        datasets.BuilderConfig(
            name="multiner_wa",
            version=VERSION,
            description="ROCLING 2023 MultiNER-Health test, Wikipedia (WA), split 'test'.",
        ),
        datasets.BuilderConfig(
            name="train",
            version=VERSION,
            description=_DEV_PROTOCOL_NOTE + " Training part (90 %), split 'train'.",
        ),
        datasets.BuilderConfig(
            name="dev",
            version=VERSION,
            description=_DEV_PROTOCOL_NOTE + " Dev part (10 %), split 'validation'.",
        ),
        datasets.BuilderConfig(
            name=CUSTOM_CONFIG,
            version=VERSION,
            description="Your own files via data_files={split: [paths]}; JSON lines or 'char tag' lines.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "train"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=self.config.description or "",
            features=FEATURES,
            homepage=HOMEPAGE,
            citation=CITATION,
            license="unknown (no license stated upstream; research use)",
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        name = self.config.name
        if name == CUSTOM_CONFIG:
            if not self.config.data_files:
                raise ValueError("config 'custom' needs data_files, e.g. data_files={'train': ['my.jsonl']}")
            return [
                datasets.SplitGenerator(
                    name=str(split),
                    gen_kwargs={"files": [(Path(str(f)).name, dl_manager.download(str(f))) for f in files]},
                )
                for split, files in self.config.data_files.items()
            ]
        if self.config.data_files:
            raise ValueError(
                f"config {name!r} reads the corpus folder (data_dir); data_files is only for 'custom'"
            )
        corpus_dir = resolve_corpus_dir(self.config.data_dir)
        if name in SOURCE_FILES:
            return [
                datasets.SplitGenerator(
                    name=datasets.Split.TEST, gen_kwargs={"corpus_dir": corpus_dir, "source": name}
                )
            ]
        return [
            datasets.SplitGenerator(
                name=SPLIT_CONFIGS[name], gen_kwargs={"corpus_dir": corpus_dir, "part": name}
            )
        ]

    def _generate_examples(
        self,
        corpus_dir: Path | None = None,
        source: str | None = None,
        part: str | None = None,
        files: list[tuple[str, str]] | None = None,
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        if files is not None:
            examples = [
                ex
                for file_name, local in files  # the format follows the name given, not the download path
                for ex in read_examples(local, file_name, json_lines=is_json_lines(file_name))
            ]
        elif source is not None:
            examples = _source_examples(source, corpus_dir)
        else:
            examples = [ex for src in SOURCE_FILES for ex in _source_examples(src, corpus_dir)]
            in_dev = dev_ids(examples)
            examples = [ex for ex in examples if (ex["id"] in in_dev) == (part == "dev")]
        yield from enumerate(examples)


def load_healthner(
    config_name: str,
    data_dir: str | os.PathLike | None = None,
    data_files: Mapping[str, Sequence[str | os.PathLike]] | None = None,
) -> datasets.DatasetDict:
    """Build one config: ``load_healthner("train")["train"]``, ``load_healthner("dev")["validation"]``,
    ``load_healthner("multiner_ft")["test"]``, ``load_healthner("custom", data_files={"train": [...]})``.

    Raises :class:`HealthNerFormatError` (``file:line: ...``) for an unreadable line and
    :class:`~datasets_scripts.common.DataDirError` when the corpus folder is missing or incomplete.
    """
    kwargs: dict[str, Any] = {}
    if data_dir is not None:
        kwargs["data_dir"] = str(data_dir)
    if data_files is not None:
        kwargs["data_files"] = {
            split: [str(Path(p).resolve()) for p in paths] for split, paths in data_files.items()
        }
    try:
        return build_dataset_dict(ChineseHealthNer, config_name, **kwargs)
    except datasets.exceptions.DatasetGenerationError as err:
        if isinstance(err.__cause__, HealthNerFormatError):  # surface "file:line: ..." unwrapped
            raise err.__cause__ from None
        raise


# ----------------------------------------------------------------------------------------------
# Dataset card, export and command line
# ----------------------------------------------------------------------------------------------


def export(
    out_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    configs: Sequence[str] = DEFAULT_EXPORT_CONFIGS,
) -> Path:
    """Build ``configs`` and write ``OUT/<config>/<split>.parquet`` + a dataset card; returns OUT."""
    unknown = [c for c in configs if c not in DEFAULT_EXPORT_CONFIGS]
    if unknown:
        raise ValueError(f"cannot export config(s) {unknown}; choose from {list(DEFAULT_EXPORT_CONFIGS)}")
    built = {name: load_healthner(name, data_dir=data_dir) for name in configs}
    stats = {name: compute_stats(dsd) for name, dsd in built.items()}
    default = "train" if "train" in built else next(iter(built))
    split_of = {**SPLIT_CONFIGS, **{source: "test" for source in SOURCE_FILES}}
    described = {
        c.name: (split_of[c.name], c.description)
        for c in ChineseHealthNer.BUILDER_CONFIGS
        if c.name in split_of
    }
    return export_parquet(
        out_dir,
        built.items(),
        dataset_card(stats, described, split_seed=SPLIT_SEED, dev_percent=DEV_PERCENT),
        pretty_name="Chinese HealthNER family (HealthNER + ROCLING 2023 MultiNER-Health)",
        license="unknown",
        language=("zh",),
        default_config=default,
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m datasets_scripts.chinese_healthner`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m datasets_scripts.chinese_healthner",
        description="Chinese HealthNER family: export to Parquet for the Hub, or print statistics.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = (
        f"corpus folder holding {', '.join(SOURCE_FILES.values())} "
        f"(default: ${ENV_VAR}, else ../shared/data/chinese_healthner)"
    )
    configs_help = (
        "configs to process (default: %(default)s); train/dev are the project's split, not the official one"
    )
    exp = sub.add_parser("export", help="write OUT/<config>/<split>.parquet and a dataset card README.md")
    exp.add_argument("out", metavar="OUT", help="output folder (created if missing)")
    exp.add_argument("--data-dir", metavar="DIR", help=data_help)
    exp.add_argument(
        "--configs",
        nargs="+",
        choices=DEFAULT_EXPORT_CONFIGS,
        metavar="CONFIG",
        default=list(DEFAULT_EXPORT_CONFIGS),
        help=configs_help,
    )
    st = sub.add_parser("stats", help="print sentences, characters and entities per type for each config")
    st.add_argument("--data-dir", metavar="DIR", help=data_help)
    st.add_argument(
        "--configs",
        nargs="+",
        choices=DEFAULT_EXPORT_CONFIGS,
        metavar="CONFIG",
        default=list(DEFAULT_EXPORT_CONFIGS),
        help=configs_help,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_warning()
    if args.command == "export":
        out = export(args.out, data_dir=args.data_dir, configs=args.configs)
        print(f"wrote {out} (configs: {', '.join(args.configs)})")
    else:
        stats = {name: compute_stats(load_healthner(name, data_dir=args.data_dir)) for name in args.configs}
        print(format_stats_table(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
