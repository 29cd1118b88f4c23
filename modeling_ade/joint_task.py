"""``train.py joint``: joint NER + relation extraction on the user's own corpus, any entity and relation types
(not Hub code).

The corpus (``--dataset``) is read by :mod:`modeling_ade.joint_data` (project schema, SpERT JSON, brat standoff);
the label sets come from its training split and are stored in the model's config. Training, evaluation and the
fold loop are the ADE task's (:mod:`modeling_ade.joint_training`). Documents longer than ``--max-length`` are cut
at sentence boundaries (never through an entity or a relation) instead of being truncated.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .joint_training import FoldData, JointSettings, add_joint_arguments, run_folds
from .settings import add_lora_arguments

HELP = "joint NER + relation extraction on your own corpus (project schema, SpERT JSON, brat standoff)"
DESCRIPTION = (
    "Joint NER + RE on any corpus of entities and relations given by --dataset: a JSONL / JSON / Parquet file, an "
    "exported folder or a Hub id in the project schema (text, entities with character offsets, relations with "
    "head/tail indices), SpERT JSON (a file, or a folder with one file per split), or a brat standoff folder "
    "(.txt + .ann; sub-folders are splits). Entity types, relation types and the type pairs relations join are "
    "read from the training split. Splits: --train-split / --eval-split (slices allowed, '{fold}' is replaced "
    "by the fold with --fold / --cv)."
)


@dataclass(frozen=True, kw_only=True)
class JointCorpusSettings(JointSettings):
    """``train.py joint``: the joint settings plus the corpus fields (the "corpus" group of ``--help``)."""

    task = "joint"
    long_sentences = (
        "cut at sentence boundaries (never inside an entity or a relation) and counted in the log"
    )
    dataset: str
    dataset_format: str = "auto"
    dataset_config: str | None = None
    train_split: str = "train"
    eval_split: str = "test"
    symmetric_relations: tuple[str, ...] = ()
    language: str = "en"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "symmetric_relations", tuple(self.symmetric_relations or ()))
        if self.cv and not ("{fold}" in self.train_split and "{fold}" in self.eval_split):
            raise ValueError(
                "--cv needs '{fold}' in --train-split and --eval-split (e.g. --train-split 'split_{fold}_train' "
                f"--eval-split 'split_{{fold}}_test'), got {self.train_split!r} and {self.eval_split!r}"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``train.py joint`` beyond the shared ones."""
    d = JointCorpusSettings.__dataclass_fields__
    g = parser.add_argument_group("corpus (README: Your own corpus)")
    g.add_argument(
        "--dataset",
        required=True,
        help="the corpus: a .jsonl / .json / .parquet file, an exported folder or a Hub id (project schema), a "
        "SpERT .json file or folder, or a brat folder (.txt + .ann)",
    )
    g.add_argument(
        "--dataset-format",
        choices=["auto", "schema", "spert", "brat"],
        default=d["dataset_format"].default,
        help="format of --dataset (default: auto: a folder with .ann files is brat, a JSON array of records with "
        "'tokens' is SpERT, anything else the project schema)",
    )
    g.add_argument(
        "--dataset-config", default=None, help="configuration of a Hub dataset (default: its default)"
    )
    g.add_argument(
        "--train-split",
        default=d["train_split"].default,
        help="split to train on; slices allowed (train[:80%%]); '{fold}' is the fold (default: train)",
    )
    g.add_argument(
        "--eval-split",
        default=d["eval_split"].default,
        help="split to evaluate on; slices allowed (train[80%%:]); '{fold}' is the fold (default: test)",
    )
    g.add_argument(
        "--symmetric-relations",
        nargs="+",
        default=(),
        metavar="TYPE",
        help="relation types without direction (A r B is B r A); a SpERT *types.json beside the data marking "
        "'symmetric': true adds its types (default: none)",
    )
    g.add_argument(
        "--language",
        default=d["language"].default,
        help="ISO 639-1 language of the text: the sentence splitter of long documents and of the pipeline "
        "(default: en)",
    )
    add_joint_arguments(
        parser,
        fold_help="fold K: replaces '{fold}' in --train-split / --eval-split (default: 0)",
        cv_help="cross-validation over folds 0..N-1 of the splits named with '{fold}'; per-fold results in "
        "OUT/fold_K and mean ± std in OUT/metrics.json",
    )
    add_lora_arguments(parser)


def run(settings: JointCorpusSettings) -> dict:
    """``train.py joint``: read the corpus once, then one fold or cross-validation
    (:func:`~modeling_ade.joint_training.run_folds`)."""
    from transformers import AutoTokenizer

    from datasets_scripts.relation_formats import CorpusFormatError

    from .encoders import resolve_model_name
    from .joint_data import SentenceSplitCounts, corpus_types, load_relation_corpus, split_long_records

    corpus = load_relation_corpus(settings.dataset, settings.dataset_format, settings.dataset_config)
    for note in corpus.notes:
        print(f"{settings.dataset}: {note}")
    symmetric = sorted({*settings.symmetric_relations, *corpus.symmetric_relations})
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(settings.model))

    def too_long(text: str) -> bool:
        return len(tokenizer(text)["input_ids"]) > settings.max_length

    def fold_data(fold: int) -> FoldData:
        train_split = settings.train_split.replace("{fold}", str(fold))
        eval_split = settings.eval_split.replace("{fold}", str(fold))
        train = corpus.split(train_split)[: settings.max_train_samples]
        test = corpus.split(eval_split)[: settings.max_eval_samples]
        if not test:
            raise CorpusFormatError(f"--eval-split {eval_split}: the evaluation split is empty")
        types = corpus_types(train, test, eval_split, symmetric)
        counts = SentenceSplitCounts()
        train = split_long_records(train, too_long, settings.language, counts)
        test = split_long_records(test, too_long, settings.language, counts)
        notes = list(corpus.notes)
        if counts.records_split:
            notes.append(
                f"{counts.records_split} documents longer than --max-length {settings.max_length} cut into "
                f"{counts.units} pieces at sentence boundaries ({counts.boundaries_kept} boundaries not cut: an "
                "entity or a relation crosses them)"
            )
            print(notes[-1])
        return FoldData(
            train=train,
            test=test,
            types=types,
            description=f"{train_split} -> {eval_split}",
            language=settings.language,
            notes=notes,
        )

    return run_folds(settings, fold_data)
