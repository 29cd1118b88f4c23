"""``train.py ade``: joint NER + RE on the ADE corpus, one fold or cross-validation (not Hub code).

The task shape every ``*_task.py`` module follows: ``HELP`` and ``DESCRIPTION`` for ``train.py --help``, a
settings dataclass (:class:`AdeSettings`), :func:`add_arguments` for the task's own flags, and :func:`run`.
The ADE corpus is a preset of the joint task (:mod:`modeling_ade.joint_training`, shared with ``train.py
joint``) with real-text training: negative sentences of ``ADE-NEG.txt`` and a sentence gate. Data code lives in
:mod:`modeling_ade.ade_data`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .joint_training import CorpusTypes, FoldData, JointSettings, add_joint_arguments, run_folds
from .settings import add_lora_arguments, positive_float

HELP = "joint NER + relation extraction of adverse drug events (ADE corpus)"
DESCRIPTION = (
    "Joint NER + RE on the ADE corpus with the standard 10-fold split. Defaults are the paper's: max length "
    "128, batch 16, lr 2e-5, 5 epochs, dropout 0.1, weight decay 5e-3. Any other corpus: train.py joint."
)

ADE_CANDIDATE_TYPES = [["Adverse-Effect", "Drug"]]
"""The ADE relation joins an adverse effect (head) to a drug (tail)."""


@dataclass(frozen=True, kw_only=True)
class AdeSettings(JointSettings):
    """``train.py ade``: the joint settings plus the real-text fields below (the "real text" group of
    ``train.py ade --help``)."""

    task = "ade"
    no_negatives: bool = False
    negatives_per_positive: float = 1.0
    no_sentence_gate: bool = False
    negatives_ner_loss: bool = False

    @property
    def sentence_gate(self) -> bool:
        return not self.no_sentence_gate

    @property
    def relationless_ner_loss(self) -> bool:
        return self.negatives_ner_loss


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``train.py ade`` beyond the shared ones."""
    d = AdeSettings.__dataclass_fields__
    add_joint_arguments(
        parser,
        fold_help="train on fold K's train part, evaluate on its test part (default: 0)",
        cv_help="cross-validation over folds 0..N-1 (10 = the full protocol); per-fold results in OUT/fold_K and "
        "mean ± std in OUT/metrics.json",
    )
    g = parser.add_argument_group("real text (README: Real text): negative sentences and the sentence gate")
    g.add_argument(
        "--no-negatives",
        action="store_true",
        help="train on the sentences with relations only, the literature's setting (by default the ADE-NEG.txt "
        "sentences of the other nine negative parts are trained on as all-O sentences without relations; "
        "held-out negatives are scored for false positives either way)",
    )
    g.add_argument(
        "--negatives-per-positive",
        type=positive_float,
        default=d["negatives_per_positive"].default,
        metavar="R",
        help="negative sentences per sentence with relations in each epoch, drawn in turn from a seeded order "
        "so successive epochs see different ones (default: 1.0)",
    )
    g.add_argument(
        "--no-sentence-gate",
        action="store_true",
        help="leave out the sentence gate (a [CLS] classifier trained on sentences with relations against "
        "negative sentences; a sentence it rejects yields no entity and no relation)",
    )
    g.add_argument(
        "--negatives-ner-loss",
        action="store_true",
        help="also train the NER head on the negative sentences as all-O (by default they train the sentence "
        "gate and the relation head only)",
    )
    add_lora_arguments(parser)


def ade_types() -> CorpusTypes:
    """The ADE corpus' label sets, from its ``ClassLabel`` features."""
    from datasets_scripts.ade_corpus import FEATURES
    from datasets_scripts.common import type_names

    return CorpusTypes(
        entity_types=type_names(FEATURES, "entities"),
        relation_types=type_names(FEATURES, "relations"),
        candidate_types=ADE_CANDIDATE_TYPES,
    )


def run(settings: AdeSettings) -> dict:
    """``train.py ade``: one fold (``settings.fold``) or cross-validation over folds ``0..cv-1``
    (:func:`~modeling_ade.joint_training.run_folds`), with the ADE-NEG.txt negatives split by document."""
    from datasets_scripts.ade_corpus import ade_records

    from .ade_data import split_negatives

    negatives = []  # read after the first fold's files, so a missing corpus folder is reported for the main files

    def fold_data(fold: int) -> FoldData:
        splits = ade_records(f"fold_{fold}", data_dir=settings.data_dir)
        if not negatives:
            negatives.extend(next(iter(ade_records("negatives", data_dir=settings.data_dir).values())))
        train_negatives, held_out = split_negatives(negatives, fold)
        return FoldData(
            train=splits["train"][: settings.max_train_samples],
            test=splits["test"][: settings.max_eval_samples],
            types=ade_types(),
            description=f"ade fold {fold}",
            train_negatives=[] if settings.no_negatives else train_negatives[: settings.max_train_samples],
            held_out_negatives=held_out[: settings.max_eval_samples],
        )

    return run_folds(settings, fold_data)
