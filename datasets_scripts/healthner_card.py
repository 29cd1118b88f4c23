"""The Chinese HealthNER family's provenance and dataset card: homepage, citations, and the Markdown card
written next to the Parquet export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datasets_scripts.healthner_files import ENTITY_TYPES
from datasets_scripts.healthner_stats import format_stats_table

HOMEPAGE = "https://github.com/NYCU-NLP/Chinese-HealthNER-Corpus"
CITATION = """\
Lung-Hao Lee and Yi Lu. 2021. Multiple Embeddings Enhanced Multi-Graph Neural Networks for Chinese
Healthcare Named Entity Recognition. IEEE Journal of Biomedical and Health Informatics 25(7):2801-2810.
doi:10.1109/JBHI.2020.3048700

Lung-Hao Lee, Chao-Yi Chen, Liang-Chih Yu and Yuen-Hsien Tseng. 2022. Overview of the ROCLING 2022
Shared Task for Chinese Healthcare Named Entity Recognition. ROCLING 2022, pp. 363-368.

Lee et al. 2023. Overview of the ROCLING 2023 Shared Task for Chinese Multi-genre Named Entity
Recognition in the Healthcare Domain (MultiNER-Health). ROCLING 2023.
"""


def dataset_card(
    stats_by_config: Mapping[str, Mapping[str, Any]],
    configs: Mapping[str, tuple[str, str]],
    *,
    split_seed: int,
    dev_percent: int,
) -> str:
    """The Markdown body of the exported dataset's README (below the YAML header). ``configs`` maps each
    config name to ``(split, description)``; ``split_seed`` and ``dev_percent`` describe the train/dev split."""
    config_lines = "\n".join(
        f"- `{name}` (split `{configs[name][0]}`): {configs[name][1]}" for name in stats_by_config
    )
    return f"""# Chinese HealthNER family (character-level BIO NER, 10 healthcare entity types)

Traditional Chinese healthcare sentences with character-level BIO tags for 10 entity types:
{", ".join(ENTITY_TYPES)} (label ids follow this order: `O`, `B-BODY`, `I-BODY`, `B-SYMP`, ...).
Columns: `id`, `source`, `genre` (`ft` formal text, `sm` social media, `wa` Wikipedia), `text`,
`tokens` (single characters, `"".join(tokens) == text`), `ner_tags` (ClassLabel sequence).

## Configs

{config_lines}

**The `train` / `dev` configs are this project's development protocol, not the official HealthNER
protocol.** The official HealthNER training split (28,161 sentences, 61,155 entities) could not be
obtained: every stored copy of `train.json` / `train.zip` lacks its content. So all 9,155 labelled
sentences that are available (the HealthNER official test split and the three ROCLING 2023
MultiNER-Health test sets) were split 90/10, stratified by source, with seed {split_seed}: within each
source the distinct texts are shuffled with Python's `random.Random("{split_seed}:<source>")` and taken into dev
until it holds {dev_percent} % of the source; identical texts never straddle train and dev. Numbers
obtained on `dev` are not comparable with published HealthNER or ROCLING results, and a model trained on
`train` has seen parts of the upstream test sets: do not evaluate it on the source configs.

## Sources

| config | file | repository | commit |
| --- | --- | --- | --- |
| `healthner` | `test.json` | NYCU-NLP/Chinese-HealthNER-Corpus | a5eaca54376267cee7a015eb870f7f302517d813 |
| `multiner_ft` | `MultiNER-Health_truth_FT.txt` | NYCU-NLP/ROCLING-2023-ST-MultiNERHealth | a1e05a61d79c0718ec22dbdca4167b9e6d336849 |
| `multiner_sm` | `MultiNER-Health_truth_SM.txt` | NYCU-NLP/ROCLING-2023-ST-MultiNERHealth | a1e05a61d79c0718ec22dbdca4167b9e6d336849 |
| `multiner_wa` | `MultiNER-Health_truth_WA.txt` | NYCU-NLP/ROCLING-2023-ST-MultiNERHealth | a1e05a61d79c0718ec22dbdca4167b9e6d336849 |

HealthNER `test.json` is the same blob as NCUEE-NLPLab/Chinese-HealthNER-Corpus@0a113c1 (the lab's former
home). All of these are upstream **test** sets.

## Licence

Unknown — research use. None of the repositories has a licence file or states terms; they ask users to
cite the papers below.

## Processing

Gold tags are normalised, never dropped: lower-case tags are upper-cased, invalid tags (`O-X`, unknown
types) become `O`, and an `I-X` without a preceding `B-X`/`I-X` becomes `B-X` (4 such tags in
MultiNER-Health FT). Entities below are counted as `B-` tags after this repair.

## Statistics

{format_stats_table(stats_by_config)}

## Citation

```
{CITATION.strip()}
```
"""
