"""Shared by the corpus builders: where the raw data lives, BIO tag repair, and the Parquet + README export
for the Hub.

Each builder module (``ade_corpus``, ``chinese_healthner``) calls :func:`resolve_data_dir` to find its raw
files and :func:`export_parquet` to write a folder that ``datasets.load_dataset(folder, config)`` reads
offline (Parquet files + a ``README.md`` whose YAML ``configs:`` section maps configs to files).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import datasets

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


REPAIR_KINDS: tuple[str, ...] = ("lowercase", "invalid_tag", "unknown_type", "orphan_inside")
"""Keys of the repair counts returned by :func:`repair_bio`."""


def repair_bio(tags: Sequence[str], types: Collection[str] | None = None) -> tuple[list[str], Counter[str]]:
    """Repair one sentence's BIO tags; returns ``(tags, counts)`` with counts keyed by :data:`REPAIR_KINDS`.

    The one repair path for every way tags come in (the HealthNER files, ``train.py ner --dataset``, the
    training windows). Per tag, in order:

    - ``lowercase``: a lower-case prefix (``b-``, ``i-``, ``o``) is upper-cased; so is the type when
      ``types`` is given and holds only its upper-case form (``i-drug`` -> ``I-DRUG``);
    - ``invalid_tag``: not ``O``, ``B-<type>`` or ``I-<type>`` (``O-SYMP``, ``E-X``, ``X``, ``B-``) -> ``O``;
    - ``unknown_type``: a type outside ``types`` (when given) -> ``O``;
    - ``orphan_inside``: ``I-X`` whose repaired predecessor is not ``B-X``/``I-X`` -> ``B-X``.

    The output has the input's length; the input is not changed.
    """
    counts: Counter[str] = Counter()
    fixed: list[str] = []
    prev = "O"
    for tag in tags:
        prefix, sep, etype = tag.partition("-")
        upper_type = types is not None and etype not in types and etype.upper() in types
        if prefix != prefix.upper() or upper_type:
            counts["lowercase"] += 1
            tag = f"{prefix.upper()}{sep}{etype.upper() if upper_type else etype}"
            prefix = prefix.upper()
            etype = etype.upper() if upper_type else etype
        if tag != "O":
            if not sep or prefix not in ("B", "I") or not etype:
                counts["invalid_tag"] += 1
                tag = "O"
            elif types is not None and etype not in types:
                counts["unknown_type"] += 1
                tag = "O"
            elif prefix == "I" and prev not in (f"B-{etype}", f"I-{etype}"):
                counts["orphan_inside"] += 1
                tag = f"B-{etype}"
        fixed.append(tag)
        prev = tag
    return fixed, counts


def describe_repairs(
    totals: Counter[str], where: str, repaired: int, sentences: int, places: Sequence[int], unit: str
) -> str:
    """One warning line for :func:`repair_bio` counts over a file or split: kinds, sentences, first places."""
    kinds = ", ".join(f"{k}: {totals[k]}" for k in REPAIR_KINDS)
    places = sorted(set(places))
    shown = ", ".join(map(str, places[:10])) + (" ..." if len(places) > 10 else "")
    return (
        f"{where}: repaired BIO tags ({kinds}) in {repaired} of {sentences} sentences; "
        f"at {unit}(s) {shown}; no sentence dropped"
    )


def type_names(features: datasets.Features, column: str) -> list[str] | None:
    """Names of the ``ClassLabel`` ``type`` of the items of list column ``column`` (``"entities"``,
    ``"relations"``); ``None`` when the type is stored as a string."""
    feature = features[column].feature["type"]
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def rows_with_type_names(dataset: datasets.Dataset) -> list[dict]:
    """The rows of an entities-and-relations dataset as plain dicts whose entity and relation ``type`` is a name:
    a ``ClassLabel`` index is decoded by the dataset's own features, a string is kept as it is."""
    names = {column: type_names(dataset.features, column) for column in ("entities", "relations")}
    rows = []
    for row in dataset:
        for column, labels in names.items():
            if labels is not None:
                row[column] = [{**item, "type": labels[item["type"]]} for item in row[column]]
        rows.append(row)
    return rows


class DataDirError(FileNotFoundError):
    """The raw corpus folder is missing or incomplete."""


def resolve_data_dir(
    data_dir: str | os.PathLike | None,
    *,
    env_var: str,
    default_subdir: str,
    required_files: Sequence[str],
    corpus_name: str,
) -> Path:
    """Find a corpus folder: ``data_dir`` if given, else ``$env_var``, else ``../shared/data/<default_subdir>``.

    Raises :class:`DataDirError` listing every expected file and every place looked at when the folder
    does not exist or lacks one of ``required_files`` (paths relative to the folder).
    """
    if data_dir is not None:
        candidates = [("--data-dir / data_dir", Path(data_dir))]
    elif os.environ.get(env_var):
        candidates = [(f"${env_var}", Path(os.environ[env_var]))]
    else:
        candidates = [("default", SHARED_DATA / default_subdir)]
    source, folder = candidates[0]
    missing = [f for f in required_files if not (folder / f).is_file()]
    if folder.is_dir() and not missing:
        return folder
    expected = "\n".join(f"  - {f}" for f in required_files)
    if not folder.is_dir():
        problem = f"folder {folder} ({source}) does not exist"
    else:
        problem = f"folder {folder} ({source}) lacks: " + ", ".join(missing)
    raise DataDirError(
        f"{corpus_name}: {problem}.\n"
        f"Expected these files in it:\n{expected}\n"
        f"Looked in: {folder}. Point to your copy with --data-dir DIR (data_dir=DIR in Python) "
        f"or the environment variable {env_var}; the default is {SHARED_DATA / default_subdir}."
    )


class NotUtf8Error(UnicodeError):
    """A file holds a byte that is not UTF-8: ``path``, 1-based ``line`` and ``detail`` (byte and offset)."""

    def __init__(self, path: Path, line: int, detail: str):
        self.path, self.line, self.detail = path, line, detail
        super().__init__(f"{path.name}:{line}: {detail}")


def read_utf8(path: str | os.PathLike) -> str:
    """The text of ``path`` (a leading BOM dropped, line ends kept as they are); a byte that is not UTF-8
    raises :class:`NotUtf8Error`, whose message names the file, line and byte offset."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = err.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        detail = f"not UTF-8 (byte 0x{data[start]:02x} at byte offset {start} of the file)"
        raise NotUtf8Error(Path(path), line, detail) from None


def build_dataset_dict(
    builder_cls: type[datasets.DatasetBuilder], config_name: str, **builder_kwargs
) -> datasets.DatasetDict:
    """Instantiate ``builder_cls`` directly (``datasets`` >= 4 refuses loading scripts) and build it.

    ``builder_kwargs`` go to the builder (``data_dir``, ``data_files``, ...). Without a ``cache_dir`` the
    Arrow files go to a fresh temporary folder, so nothing stale is ever read back; it is removed when the
    process exits.
    """
    if "cache_dir" not in builder_kwargs:
        cache = tempfile.mkdtemp(prefix="modeling_ade_ds_")
        atexit.register(
            shutil.rmtree, cache, ignore_errors=True
        )  # the Arrow files live as long as the process
        builder_kwargs["cache_dir"] = cache
    builder = builder_cls(config_name=config_name, **builder_kwargs)
    builder.download_and_prepare()
    return builder.as_dataset()


EXPORT_MARKER = "<!-- written by modeling-ade's Parquet export; a new export replaces this file -->"


def export_parquet(
    out_dir: str | os.PathLike,
    datasets_by_config: Iterable[tuple[str, datasets.DatasetDict]],
    card_body: str,
    *,
    pretty_name: str,
    license: str = "unknown",
    language: Sequence[str] = ("en",),
    default_config: str | None = None,
) -> Path:
    """Write ``OUT/<config>/<split>.parquet`` for every config and a ``README.md`` with YAML ``configs:``.

    ``card_body`` is the Markdown below the YAML header (description, statistics, citations).
    Returns the output folder. A ``README.md`` already in ``out_dir`` that an export did not write (it lacks
    :data:`EXPORT_MARKER`) is someone's own: the export refuses (:class:`DataDirError`) and writes nothing.
    """
    out = Path(out_dir)
    card = out / "README.md"
    if card.is_file() and EXPORT_MARKER not in card.read_text(encoding="utf-8", errors="replace"):
        raise DataDirError(
            f"{card} exists and was not written by an export: it is kept, and nothing was exported. Export to "
            "another folder, or move the README away first."
        )
    out.mkdir(parents=True, exist_ok=True)
    config_lines = []
    for name, dsd in datasets_by_config:
        config_lines.append(f"- config_name: {name}")
        if name == default_config:
            config_lines.append("  default: true")
        config_lines.append("  data_files:")
        for split, ds in dsd.items():
            rel = f"{name}/{split}.parquet"
            (out / name).mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(out / rel))
            config_lines.append(f"  - split: {split}")
            config_lines.append(f"    path: {rel}")
    header = [
        "---",
        f"pretty_name: {pretty_name}",
        f"license: {license}",
        "language:",
        *[f"- {lang}" for lang in language],
        "configs:",
        *config_lines,
        "---",
        "",
        EXPORT_MARKER,
        "",
    ]
    card.write_text("\n".join(header) + card_body.rstrip() + "\n", encoding="utf-8")
    return out
