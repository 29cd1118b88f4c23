"""Statistics of the Chinese HealthNER configs: sentences, characters and entities per type."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import datasets

from datasets_scripts.healthner_files import ENTITY_TYPES


def compute_stats(dsd: datasets.DatasetDict) -> dict[str, Any]:
    """Sentences, characters and entities (``B-`` tags) per type over all splits of one config."""
    per_type: Counter[str] = Counter({t: 0 for t in ENTITY_TYPES})
    sentences = characters = 0
    for ds in dsd.values():
        sentences += len(ds)
        for tags in ds["ner_tags"]:
            characters += len(tags)
            per_type.update(ENTITY_TYPES[(t - 1) // 2] for t in tags if t % 2 == 1)
    return {
        "sentences": sentences,
        "characters": characters,
        "entities": sum(per_type.values()),
        "per_type": dict(per_type),
    }


def format_stats_table(stats_by_config: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table: one row per config; sentences, characters, entities, then each type."""
    header = ["config", "sentences", "characters", "entities", *ENTITY_TYPES]
    rows = [header, ["---"] * len(header)]
    for name, s in stats_by_config.items():
        rows.append(
            [name, f"{s['sentences']:,}", f"{s['characters']:,}", f"{s['entities']:,}"]
            + [f"{s['per_type'][t]:,}" for t in ENTITY_TYPES]
        )
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)
