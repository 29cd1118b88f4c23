"""Statistics of the ADE corpus configs: sentences, entities by type, relations, overlapping pairs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from datasets_scripts.ade_files import ENTITY_TYPES
from datasets_scripts.ade_text import count_overlapping_pairs

STATS_COLUMNS = ("config", "split", "sentences", "Drug", "Adverse-Effect", "relations", "overlapping pairs")


def split_statistics(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Counts of one split: sentences, entities by type, relations, overlapping entity pairs."""
    stats = {"sentences": 0, "relations": 0, "overlapping pairs": 0, **{t: 0 for t in ENTITY_TYPES}}
    for row in rows:
        stats["sentences"] += 1
        stats["relations"] += len(row["relations"])
        stats["overlapping pairs"] += count_overlapping_pairs(row["entities"])
        for entity in row["entities"]:
            stats[entity["type"]] += 1
    return stats


def statistics_table(splits: Iterable[tuple[str, str, Iterable[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One statistics row per ``(config, split, rows)``."""
    return [{"config": c, "split": s, **split_statistics(rows)} for c, s, rows in splits]


def format_table(table: Sequence[dict[str, Any]], *, markdown: bool = False) -> str:
    """Render statistics rows as aligned plain text, or as a Markdown table."""
    cells = [
        [str(row[c]) if not isinstance(row[c], int) else f"{row[c]:,}" for c in STATS_COLUMNS]
        for row in table
    ]
    if markdown:
        lines = ["| " + " | ".join(STATS_COLUMNS) + " |", "|" + "---|" * len(STATS_COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(STATS_COLUMNS)]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([fmt(STATS_COLUMNS), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)])
