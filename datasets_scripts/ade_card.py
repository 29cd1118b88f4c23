"""The ADE corpus' provenance and its dataset card: sources with their commits, licence, citations, the
config descriptions, and the Markdown card written next to the Parquet export."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets_scripts.ade_files import NUM_FOLDS
from datasets_scripts.ade_stats import format_table

SOURCE_REPO_RAW = "trunghlt/AdverseDrugReaction"
SOURCE_COMMIT_RAW = "2851af96e26050cf551a2e1f716ff861f7b1059b"
SOURCE_REPO_SPLIT = "Coopercoppers/PFN"
SOURCE_COMMIT_SPLIT = "6173b3e6b048d1307766ee5d2f8178b30d6675b2"
HOMEPAGE = "https://doi.org/10.1016/j.jbi.2012.04.008"
LICENSE = "unknown — research use, cite Gurulingappa et al. 2012"

CITATION = """\
@article{gurulingappa2012development,
  title     = {Development of a benchmark corpus to support the automatic extraction of drug-related
               adverse effects from medical case reports},
  author    = {Gurulingappa, Harsha and Rajput, Abdul Mateen and Roberts, Angus and Fluck, Juliane and
               Hofmann-Apitius, Martin and Toldo, Luca},
  journal   = {Journal of Biomedical Informatics},
  volume    = {45},
  number    = {5},
  pages     = {885--892},
  year      = {2012},
  doi       = {10.1016/j.jbi.2012.04.008}
}"""

SPLIT_CITATION = """\
@inproceedings{eberts2020spert,
  title     = {Span-based Joint Entity and Relation Extraction with Transformer Pre-training},
  author    = {Eberts, Markus and Ulges, Adrian},
  booktitle = {Proceedings of the 24th European Conference on Artificial Intelligence (ECAI 2020)},
  series    = {Frontiers in Artificial Intelligence and Applications},
  volume    = {325},
  pages     = {2006--2013},
  year      = {2020},
  doi       = {10.3233/FAIA200321}
}"""

CONFIG_DESCRIPTIONS = {
    "relations": "One example per (PubMed id, sentence) of DRUG-AE.rel, with all its drug/adverse-effect relations.",
    "negatives": "ADE-NEG.txt: sentences without a drug-related adverse effect; no entities, no relations.",
    **{
        f"fold_{k}": f"SpERT 10-fold cross-validation split, fold {k}: ade_split_{k}_train/test.json."
        for k in range(NUM_FOLDS)
    },
}


def dataset_card(table: Sequence[dict[str, Any]]) -> str:
    """Markdown body of the exported dataset's README (below the YAML header)."""
    configs = "\n".join(
        f"- `{name}`: {CONFIG_DESCRIPTIONS[name]}" for name in dict.fromkeys(row["config"] for row in table)
    )
    return f"""\
# ADE corpus V2 (drug / adverse-effect relations)

Sentences from PubMed case reports annotated with drugs, adverse effects and the relation between them
(Gurulingappa et al., 2012), with the standard SpERT 10-fold cross-validation split.

## Configs

{configs}

Load one with `datasets.load_dataset(PATH_OR_REPO, "fold_0")`.

## Schema

Every config has the same columns:

- `id`: `"{{pmid}}-{{n}}"` for a sentence of DRUG-AE.rel (`n` = rank of the sentence within its PubMed id);
  fold examples carry the id of the same sentence, so ids join across configs. `"{{pmid}}-neg-{{n}}"` for
  ADE-NEG.txt.
- `text`: the sentence; `tokens`: words (SpERT's tokens in the folds; a regex word tokenizer split at
  entity boundaries elsewhere).
- `entities`: `start`/`end` character offsets into `text` (end exclusive), `token_start`/`token_end` token
  indices (end exclusive), `type` (a `ClassLabel`: `Drug` or `Adverse-Effect`), `text` (the mention). Nested and
  crossing entities are kept ("overlapping pairs" below).
- `relations`: `head`, `tail` (indices into `entities`), `type` (a `ClassLabel`: `ADE`).

**Relation direction: head = the Adverse-Effect entity, tail = the Drug entity, type = `ADE`** (SpERT's
direction; SpERT names the type `Adverse-Effect`).

## Statistics

{format_table(table, markdown=True)}

## Source

- Raw corpus (DRUG-AE.rel, ADE-NEG.txt): GitHub `{SOURCE_REPO_RAW}`, folder `ADE-Corpus-V2/`,
  commit `{SOURCE_COMMIT_RAW}`. Document-level offsets are converted to sentence offsets by inferring
  each sentence's document offset from its mentions.
- 10-fold split: SpERT's published `ade_split_K_{{train,test}}.json`, taken from GitHub `{SOURCE_REPO_SPLIT}`
  (`data/ADE/raw/`), commit `{SOURCE_COMMIT_SPLIT}`. Records are matched back to the raw sentences and
  their tokens aligned to character offsets.

## Licence

{LICENSE}. The source repository states no licence for the data; the corpus README asks users to cite
the article below.

## Citation

```bibtex
{CITATION}
```

The 10-fold split:

```bibtex
{SPLIT_CITATION}
```
"""
