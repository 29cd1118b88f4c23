"""Configuration of the joint NER + relation-extraction model for adverse drug events.

Hub code: imports only ``transformers`` and its sibling files (this file is copied next to the weights and executed through
``trust_remote_code``).
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

from .bio import bio_labels
from .encoder_utils import EncoderConfigMixin


class JointNerReConfig(EncoderConfigMixin, PretrainedConfig):
    r"""Configuration of [`JointNerReForAdeExtraction`]. It rebuilds the whole model: no extra kwargs needed.

    Args:
        encoder_config (`dict` or `PretrainedConfig`):
            Configuration of the shared encoder, any `AutoModel` architecture (BERT, RoBERTa, ELECTRA, ...).
        entity_types (`list[str]`, defaults to `["Drug", "Adverse-Effect"]`):
            Entity types. The NER label map (`id2label` / `label2id`, BIO over these types) is derived from it
            and is the single source of truth for tags.
        relation_labels (`list[str]`, defaults to `["none", "ADE"]`):
            Relation classes; index 0 must be the "no relation" class.
        relation_candidate_types (`list[list[str]]`, defaults to `[["Adverse-Effect", "Drug"]]`):
            `(head type, tail type)` pairs; every head × tail entity pair of a sentence is a relation candidate.
            ADE convention: head = the adverse effect, tail = the drug.
        ner_loss_weight (`float`, defaults to 0.5):
            λ in `loss = λ·L_ner + (1 − λ)·L_rel`, in [0, 1].
        classifier_dropout (`float`, defaults to 0.1):
            Dropout before the NER layer and inside the relation head.
        relation_hidden_size (`int`, *optional*):
            Width of the W0 / W1 / W2 projections; defaults to the encoder's hidden size.
        relation_mlp_hidden_size (`int`, *optional*):
            Width of the relation MLP's hidden layer; defaults to the encoder's hidden size.
        relation_multi_label (`bool`, defaults to `False`):
            Several relation labels may hold between one pair: the relation head scores each label with a sigmoid
            (binary cross-entropy) instead of one softmax, and every label other than "none" at or above
            `relation_threshold` is extracted. Set from the training data (a pair with two relation types).
        symmetric_relations (`list[str]`, *optional*):
            Relation labels that have no direction (`A r B` is `B r A`): training labels both orders, and a
            prediction is reported once, with the entity that comes first in the text as head.
        relation_threshold (`float`, defaults to 0.5):
            A candidate pair is extracted when its most probable relation label other than "none" has at least
            this probability (with two labels, 0.5 is the argmax). The pipeline and evaluation read it here.
        sentence_gate (`bool`, defaults to `False`):
            Add a sentence gate: a linear layer on `[CLS]` that says whether a sentence states a relation at all
            (trained on sentences with relations against negative sentences). A sentence (window) whose gate
            probability is below `sentence_threshold` yields no relation, and no entity either with
            `sentence_gate_scope="all"`.
        sentence_threshold (`float`, defaults to 0.5):
            Gate probability a sentence needs for its relations (and, by `sentence_gate_scope`, entities) to be
            reported.
        sentence_gate_scope (`str`, defaults to `"all"`):
            What a sentence the gate rejects loses: `"all"` (its entities and relations) or `"relations"` (its
            relations only; its entities are still reported).
        sentence_loss_weight (`float`, defaults to 0.5):
            Weight of the gate's cross-entropy added to the joint loss.
        train_max_length (`int`, *optional*):
            Tokens per sentence the model was trained on (`train.py --max-length`); the pipeline windows long sentences by it (default:
            the encoder's maximum when not set).
        language (`str`, defaults to `"en"`):
            Language of the training text (ISO 639-1); the pipeline splits documents into sentences for it.
        entity_scripts (`list[str]`, *optional*):
            Unicode scripts (first word of a letter's Unicode name: `"LATIN"`, `"GREEK"`, `"CJK"`, ...) seen in
            the training entities. Predicted entities with a letter of another script are not reported; `None`
            reports every entity.
    """

    model_type = "joint_ner_re"
    sub_configs = {"encoder_config": AutoConfig}

    def __init__(
        self,
        encoder_config=None,
        entity_types: list[str] | None = None,
        relation_labels: list[str] | None = None,
        relation_candidate_types: list[list[str]] | None = None,
        ner_loss_weight: float = 0.5,
        classifier_dropout: float = 0.1,
        relation_hidden_size: int | None = None,
        relation_mlp_hidden_size: int | None = None,
        relation_multi_label: bool = False,
        symmetric_relations: list[str] | None = None,
        relation_threshold: float = 0.5,
        sentence_gate: bool = False,
        sentence_threshold: float = 0.5,
        sentence_gate_scope: str = "all",
        sentence_loss_weight: float = 0.5,
        train_max_length: int | None = None,
        language: str = "en",
        entity_scripts: list[str] | None = None,
        **kwargs,
    ):
        if encoder_config is None:
            encoder_config = {"model_type": "bert"}
        if isinstance(encoder_config, dict):
            encoder_config = dict(encoder_config)
            encoder_config = AutoConfig.for_model(encoder_config.pop("model_type", "bert"), **encoder_config)
        entity_types = list(entity_types or ["Drug", "Adverse-Effect"])
        relation_labels = list(relation_labels or ["none", "ADE"])
        relation_candidate_types = [
            list(p) for p in (relation_candidate_types or [["Adverse-Effect", "Drug"]])
        ]
        if not 0.0 <= ner_loss_weight <= 1.0:
            raise ValueError(f"`ner_loss_weight` must be in [0, 1], got {ner_loss_weight}")
        if not 0.0 <= classifier_dropout < 1.0:
            raise ValueError(f"`classifier_dropout` must be in [0, 1), got {classifier_dropout}")
        if not 0.0 < relation_threshold < 1.0:
            raise ValueError(f"`relation_threshold` must be in (0, 1), got {relation_threshold}")
        if not 0.0 < sentence_threshold < 1.0:
            raise ValueError(f"`sentence_threshold` must be in (0, 1), got {sentence_threshold}")
        if sentence_gate_scope not in ("all", "relations"):
            raise ValueError(
                f"`sentence_gate_scope` must be 'all' or 'relations', got {sentence_gate_scope!r}"
            )
        if sentence_loss_weight < 0.0:
            raise ValueError(f"`sentence_loss_weight` must be >= 0, got {sentence_loss_weight}")
        if train_max_length is not None and train_max_length < 3:
            raise ValueError(
                f"`train_max_length` must be at least 3 (two special tokens and a word), got {train_max_length}"
            )
        if len(relation_labels) < 2:
            raise ValueError(
                f"`relation_labels` needs a 'none' class and at least one relation, got {relation_labels}"
            )
        symmetric_relations = sorted(symmetric_relations or [])
        unknown = [r for r in symmetric_relations if r not in relation_labels[1:]]
        if unknown:
            raise ValueError(f"`symmetric_relations` {unknown} are not relation labels {relation_labels[1:]}")
        for pair in relation_candidate_types:
            if len(pair) != 2 or any(t not in entity_types for t in pair):
                raise ValueError(
                    f"`relation_candidate_types` entries must be [head_type, tail_type] from {entity_types}, got {pair}"
                )
        labels = bio_labels(entity_types)
        kwargs["id2label"] = dict(enumerate(labels))
        kwargs["label2id"] = {label: i for i, label in enumerate(labels)}
        kwargs.pop("num_labels", None)
        kwargs.setdefault("pad_token_id", getattr(encoder_config, "pad_token_id", None))

        self.encoder_config = encoder_config
        self.entity_types = entity_types
        self.relation_labels = relation_labels
        self.relation_candidate_types = relation_candidate_types
        self.ner_loss_weight = ner_loss_weight
        self.classifier_dropout = classifier_dropout
        self.relation_hidden_size = relation_hidden_size or encoder_config.hidden_size
        self.relation_mlp_hidden_size = relation_mlp_hidden_size or encoder_config.hidden_size
        self.relation_multi_label = relation_multi_label
        self.symmetric_relations = symmetric_relations
        self.relation_threshold = relation_threshold
        self.sentence_gate = sentence_gate
        self.sentence_threshold = sentence_threshold
        self.sentence_gate_scope = sentence_gate_scope
        self.sentence_loss_weight = sentence_loss_weight
        self.train_max_length = train_max_length
        self.language = language
        self.entity_scripts = sorted(entity_scripts) if entity_scripts is not None else None
        super().__init__(**kwargs)
