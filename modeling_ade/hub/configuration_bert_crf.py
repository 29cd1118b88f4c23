"""Configuration of the BERT-CRF token classifier (Chinese healthcare NER and any BIO tagging task).

Hub code: imports only ``transformers`` and its sibling files (this file is copied next to the weights and executed through
``trust_remote_code``).
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig
from transformers.activations import ACT2FN

from .bio import check_bio_labels
from .encoder_utils import EncoderConfigMixin

HEADS = ("crf", "softmax")

# Attributes of an encoder config that may hold the id of a token that is never tagged.
_SPECIAL_TOKEN_ATTRIBUTES = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id")


class BertCrfConfig(EncoderConfigMixin, PretrainedConfig):
    r"""Configuration of [`BertCrfForTokenClassification`]. It rebuilds the whole model: no extra kwargs needed.

    Args:
        encoder_config (`dict` or `PretrainedConfig`, defaults to a BERT-base config):
            Configuration of the encoder, any `AutoModel` architecture (BERT, RoBERTa, ELECTRA, ...).
        id2label (`dict[int, str]`, defaults to `{0: "O", 1: "B-ENTITY", 2: "I-ENTITY"}`):
            The BIO tags (`O`, `B-<type>`, `I-<type>`), id -> tag; `label2id` is derived from it. The single
            source of truth for tags: data encoding, decoding and metrics all read it from here.
        head (`str`, defaults to `"crf"`):
            `"crf"`: a linear-chain CRF over the emissions (negative log-likelihood loss, Viterbi decoding);
            `"softmax"`: per-token cross-entropy and argmax (the paper's ablation).
        use_bio_constraints (`bool`, defaults to `True`):
            CRF head only: forbid the transitions that BIO does not allow (`O -> I-X`, `B-X -> I-Y`,
            `I-X -> I-Y` with `Y != X`, starting with `I-X`), in the loss and in decoding.
        classifier_dropout (`float`, *optional*):
            Dropout before each of the two head layers, in [0, 1); defaults to the encoder's
            `hidden_dropout_prob` (0.1 when it has none).
        head_hidden_size (`int`, *optional*):
            Width of the first head layer (hidden -> head_hidden -> num_labels); defaults to the encoder's
            hidden size.
        head_activation (`str`, defaults to `"gelu"`):
            Activation between the two head layers, a key of `transformers.activations.ACT2FN`.
        special_token_ids (`list[int]`, *optional*):
            Token ids that are never tagged (`[CLS]`, `[SEP]`, `[PAD]`, ...; not `[UNK]`, which stands for a
            real character). At inference without `labels` or `decode_mask`, the model decodes over the
            tokens with `attention_mask == 1` whose id is not in this list. Defaults to the ids the
            encoder config names (`pad_token_id`, `bos_token_id`, `eos_token_id`, `sep_token_id`,
            `cls_token_id`); set it from the tokenizer (`BertCrfForTokenClassification.from_encoder(...,
            tokenizer=tok)` does).
    """

    model_type = "bert_crf"
    sub_configs = {"encoder_config": AutoConfig}

    def __init__(
        self,
        encoder_config=None,
        head: str = "crf",
        use_bio_constraints: bool = True,
        classifier_dropout: float | None = None,
        head_hidden_size: int | None = None,
        head_activation: str = "gelu",
        special_token_ids: list[int] | None = None,
        **kwargs,
    ):
        if encoder_config is None:
            encoder_config = {"model_type": "bert"}
        if isinstance(encoder_config, dict):
            encoder_config = dict(encoder_config)
            encoder_config = AutoConfig.for_model(encoder_config.pop("model_type", "bert"), **encoder_config)
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {', '.join(map(repr, HEADS))}, got {head!r}")
        if not isinstance(use_bio_constraints, bool):
            raise ValueError(f"`use_bio_constraints` must be a bool, got {use_bio_constraints!r}")
        if classifier_dropout is None:
            classifier_dropout = getattr(encoder_config, "hidden_dropout_prob", None)
            classifier_dropout = 0.1 if classifier_dropout is None else classifier_dropout
        if not 0.0 <= classifier_dropout < 1.0:
            raise ValueError(f"`classifier_dropout` must be in [0, 1), got {classifier_dropout!r}")
        if head_hidden_size is None:
            head_hidden_size = encoder_config.hidden_size
        if not isinstance(head_hidden_size, int) or head_hidden_size < 1:
            raise ValueError(f"`head_hidden_size` must be a positive int, got {head_hidden_size!r}")
        if head_activation not in ACT2FN:
            raise ValueError(
                f"`head_activation` must be a key of transformers.activations.ACT2FN, got {head_activation!r}"
            )
        if special_token_ids is None:
            special_token_ids = [
                getattr(encoder_config, name)
                for name in _SPECIAL_TOKEN_ATTRIBUTES
                if isinstance(getattr(encoder_config, name, None), int)
            ]
        special_token_ids = sorted({int(i) for i in special_token_ids})

        id2label = kwargs.pop("id2label", None)
        kwargs.pop("label2id", None)
        kwargs.pop("num_labels", None)
        if id2label is None:
            id2label = {0: "O", 1: "B-ENTITY", 2: "I-ENTITY"}
        id2label = {int(k): v for k, v in id2label.items()}
        if sorted(id2label) != list(range(len(id2label))):
            raise ValueError(f"`id2label` keys must be 0..{len(id2label) - 1}, got {sorted(id2label)}")
        labels = [id2label[i] for i in range(len(id2label))]
        check_bio_labels(labels)
        kwargs["id2label"] = dict(enumerate(labels))
        kwargs["label2id"] = {label: i for i, label in enumerate(labels)}
        kwargs.setdefault("pad_token_id", getattr(encoder_config, "pad_token_id", None))

        self.encoder_config = encoder_config
        self.head = head
        self.use_bio_constraints = use_bio_constraints
        self.classifier_dropout = float(classifier_dropout)
        self.head_hidden_size = head_hidden_size
        self.head_activation = head_activation
        self.special_token_ids = special_token_ids
        super().__init__(**kwargs)

    @property
    def entity_types(self) -> list[str]:
        """Entity types in order of first appearance in `id2label` (`B-X` / `I-X` -> `X`)."""
        types: dict[str, None] = {}
        for i in range(len(self.id2label)):
            label = self.id2label[i]
            if label != "O":
                types.setdefault(label[2:], None)
        return list(types)
