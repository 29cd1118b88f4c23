"""Strict entity-level NER scores (seqeval default mode, conlleval-compatible) as a local ``evaluate`` module.

Load it offline by path (``evaluate`` copies this script into its modules cache, so it imports the
installed ``modeling_ade`` package absolutely, never relatively)::

    import evaluate
    from modeling_ade.metrics import STRICT_NER_EVALUATE_PATH

    strict_ner = evaluate.load(STRICT_NER_EVALUATE_PATH)
    strict_ner.compute(predictions=[["B-DRUG", "I-DRUG", "O"]], references=[["B-DRUG", "I-DRUG", "O"]])
"""

import datasets
import evaluate

from modeling_ade.metrics import NER_KEYS, ner_scores_from_tags

_CITATION = """\
@misc{seqeval,
  title={{seqeval}: A Python framework for sequence labeling evaluation},
  url={https://github.com/chakki-works/seqeval},
  author={Hiroki Nakayama},
  year={2018},
}
"""

_DESCRIPTION = """\
Strict entity-level precision, recall and F1 of BIO/IOBES tag sequences. A predicted entity is correct
only when its type, start and end all equal those of a gold entity of the same sentence. Chunks are
decoded like seqeval's default (conlleval-compatible) mode: a stray I-X after O starts an entity.
Micro scores pool the counts of all types; macro scores are the unweighted mean of the per-type scores
over every type found in references or predictions (seqeval's average="macro"). 0/0 counts as 0.0.
Each sentence is decoded on its own (seqeval decodes the concatenated corpus; the two differ only when
a sentence starts with a malformed type-less tag such as "X").
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of sentences, each a list of predicted tags (str), e.g. ["B-DRUG", "I-DRUG", "O"].
    references: list of sentences, each a list of gold tags, same lengths as the predictions.
Returns:
    ner_precision_micro, ner_recall_micro, ner_f1_micro,
    ner_precision_macro, ner_recall_macro, ner_f1_macro: floats in [0, 1];
    per_type: {type: {"precision", "recall", "f1", "support"}};
    n_gold_entities, n_pred_entities, n_correct_entities: counts.
Examples:
    >>> strict_ner = evaluate.load(STRICT_NER_EVALUATE_PATH)
    >>> strict_ner.compute(predictions=[["O", "B-X", "I-X"]], references=[["O", "B-X", "O"]])["ner_f1_micro"]
    0.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class StrictNer(evaluate.Metric):
    """Strict entity-level micro/macro precision, recall and F1; computed by ``modeling_ade.metrics``."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references) -> dict:
        scores = ner_scores_from_tags(references, predictions)
        output = {key: scores[key] for key in NER_KEYS}
        output["per_type"] = scores["per_type"]
        for key in ("n_gold_entities", "n_pred_entities", "n_correct_entities"):
            output[key] = scores[key]
        return output
