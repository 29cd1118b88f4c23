"""Write two brat standoff corpora from the ADE corpus files, for ``train.py joint`` (BENCHMARKS.md, section 8).

    python benchmarks/make_brat_corpora.py OUT [--fold 0] [--data-dir DIR]

- ``OUT/ade_dose/{train,test}``: a corpus with three entity types and two relation types, built from real text:
  the sentences of ``DRUG-AE.rel`` (Drug, Adverse-Effect; ADE = adverse effect -> drug) and of ``DRUG-DOSE.rel``
  (Dose, Drug; DOSE = dose -> drug), one document per (PubMed id, sentence), a sentence of both files holding the
  annotations of both. Train / test follow SpERT fold ``--fold``: a sentence of ``DRUG-AE.rel`` goes where the
  fold puts it, a sentence found only in ``DRUG-DOSE.rel`` goes to test when its PubMed id has a test sentence.
- ``OUT/spert_fold/{ade_split_K_train,ade_split_K_test}``: the SpERT fold files themselves written as brat
  (text = the tokens joined by spaces, as ``train.py joint`` reads SpERT), so training on this folder and on the
  fold files must give identical numbers.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets_scripts.ade_corpus import ade_records, resolve_corpus_dir  # noqa: E402
from datasets_scripts.ade_files import group_sentences, read_relation_file, relation_example  # noqa: E402
from datasets_scripts.relation_formats import read_spert_file, write_brat  # noqa: E402

DOSE_FILE = "DRUG-DOSE.rel"


def dose_examples(path: Path) -> list[dict]:
    """``DRUG-DOSE.rel`` has the shape of ``DRUG-AE.rel`` with the dose in the adverse-effect fields: located by
    the same rule, then renamed (Dose entity, DOSE relation)."""
    examples = []
    for raw in group_sentences(read_relation_file(path)):
        example = relation_example(raw, Counter(), source=path.name)
        for entity in example["entities"]:
            entity["type"] = "Dose" if entity["type"] == "Adverse-Effect" else entity["type"]
        for relation in example["relations"]:
            relation["type"] = "DOSE"
        examples.append({**example, "key": (raw.pmid, raw.sentence)})
    return examples


def merge(first: dict, second: dict) -> dict:
    """One sentence's annotations from both files: entities by (start, end, type), relations re-indexed."""
    keys = sorted({(e["start"], e["end"], e["type"]) for e in first["entities"] + second["entities"]})
    index = {key: i for i, key in enumerate(keys)}
    relations = set()
    for example in (first, second):
        entities = example["entities"]
        for r in example["relations"]:
            h, t = entities[r["head"]], entities[r["tail"]]
            relations.add(
                (
                    index[(h["start"], h["end"], h["type"])],
                    index[(t["start"], t["end"], t["type"])],
                    r["type"],
                )
            )
    text = first["text"]
    return {
        "id": first["id"],
        "text": text,
        "entities": [{"start": s, "end": e, "type": t, "text": text[s:e]} for s, e, t in keys],
        "relations": [{"head": h, "tail": t, "type": r} for h, t, r in sorted(relations)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder to write the two corpora into")
    parser.add_argument(
        "--fold", type=int, default=0, help="SpERT fold that splits train / test (default: 0)"
    )
    parser.add_argument("--data-dir", default=None, help="ADE corpus folder (default: ../shared/data/...)")
    args = parser.parse_args(argv)
    corpus_dir = resolve_corpus_dir(args.data_dir)

    # 1. ADE + DOSE, split by the fold
    fold = ade_records(f"fold_{args.fold}", data_dir=args.data_dir)
    relations = next(iter(ade_records("relations", data_dir=args.data_dir).values()))
    by_id = {r["id"]: r for r in relations}
    split_of = {r["id"]: split for split, records in fold.items() for r in records}
    test_pmids = {i.split("-", 1)[0] for i, split in split_of.items() if split == "test"}
    key_of = {(r["id"].split("-", 1)[0], r["text"]): r["id"] for r in relations}
    docs = {"train": {}, "test": {}}
    for sentence_id, split in split_of.items():
        docs[split][sentence_id] = by_id[sentence_id]
    only_dose = 0
    for example in dose_examples(corpus_dir / DOSE_FILE):
        sentence_id = key_of.get(example["key"])
        if sentence_id is not None and sentence_id in split_of:
            split = split_of[sentence_id]
            docs[split][sentence_id] = merge(docs[split][sentence_id], example)
        else:
            only_dose += 1
            split = "test" if example["key"][0] in test_pmids else "train"
            dose_id = f"{example['key'][0]}-dose-{example['id'].split('-', 1)[1]}"
            docs[split][dose_id] = merge({**example, "id": dose_id}, {"entities": [], "relations": []})
    for split, records in docs.items():
        write_brat(records.values(), args.out / "ade_dose" / split)
        types = Counter(e["type"] for r in records.values() for e in r["entities"])
        rels = Counter(x["type"] for r in records.values() for x in r["relations"])
        print(f"ade_dose/{split}: {len(records)} documents, entities {dict(types)}, relations {dict(rels)}")
    print(f"{only_dose} DRUG-DOSE sentences not in DRUG-AE.rel's fold files (split by PubMed id)")

    # 2. the SpERT fold files as brat
    for split in ("train", "test"):
        name = f"ade_split_{args.fold}_{split}"
        records = read_spert_file(corpus_dir / "spert_10fold" / f"{name}.json")
        records = [{**r, "id": f"{i:05d}"} for i, r in enumerate(records)]  # orig_id repeats: file order
        write_brat(records, args.out / "spert_fold" / name)
        print(f"spert_fold/{name}: {len(records)} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
