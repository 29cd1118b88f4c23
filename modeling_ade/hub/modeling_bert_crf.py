"""BERT-CRF token classifier: encoder -> dropout -> two linear layers -> linear-chain CRF (or softmax).

The model of the Chinese healthcare NER paper: a pre-trained encoder (any ``AutoModel``), two linear
layers giving per-tag *emissions*, and a CRF with a learned transition matrix (forward algorithm for the
loss, Viterbi for decoding). ``head="softmax"`` replaces the CRF by per-token cross-entropy (the paper's
ablation).

Which tokens are tagged. A word's tag sits on its first sub-word; training labels are -100 on every
other token (later sub-words, special tokens, padding) and the CRF chain runs over the labelled
positions only (gaps are fine: see ``crf.py``). At inference the chain runs over the *decode mask*:

1. ``decode_mask`` when given (e.g. the first-sub-word mask of the training data);
2. else ``labels != -100`` when labels are given;
3. else every token with ``attention_mask == 1`` whose id is not in ``config.special_token_ids``
   (``[CLS]``, ``[SEP]``, ``[PAD]``...): what the stock ``token-classification`` pipeline needs, since it
   passes only ``input_ids``, ``token_type_ids`` and ``attention_mask``. For character-level Chinese
   every character is one token, so this is the training chain; for words split into several
   sub-words, the later sub-words are decoded too (pass ``decode_mask`` to avoid that).

How ``logits`` encode the Viterbi path (CRF head). The stock pipeline takes a per-token argmax of
``logits`` and a softmax for its scores, so ``logits`` are *max-marginals relative to the best path*:
at a decoded position ``t``, with ``v_t`` the Viterbi tag and ``m_t(c)`` the score of the best path
that puts tag ``c`` at ``t`` (forward + backward max-product recursions)::

    logits[t, v_t] = 0
    logits[t, c]   = min(m_t(c) - m_t(v_t), -TIE_MARGIN)      for c != v_t

so the argmax is exactly ``v_t`` (ties and rounding cannot flip it), every value is finite (forbidden
BIO transitions score ``crf.CONSTRAINT_PENALTY``, about -1e4), and ``softmax(logits[t])`` is a
confidence: how much worse the best path with another tag at ``t`` is. Positions outside the decode
mask carry the raw emissions. The Viterbi part carries no gradient: train on ``loss`` (or use
``emissions``). The softmax head's ``logits`` are its emissions.

Hub code: imports only ``torch``, ``transformers`` and sibling files (relative imports).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput, logging

from .configuration_bert_crf import BertCrfConfig
from .crf import CRF, bio_constraints
from .encoder_utils import EncoderModelMixin, build_encoder

logger = logging.get_logger(__name__)

IGNORE = -100
"""Label of untagged positions, and the tag ``decode`` writes at positions outside the decode mask."""

TIE_MARGIN = 1e-4
"""Smallest gap between the Viterbi tag's logit (0) and any other tag's logit at a decoded position."""


@dataclass
class BertCrfOutput(ModelOutput):
    """Output of [`BertCrfForTokenClassification`].

    Shapes: B batch, T tokens, C tags (`config.num_labels`).

    Args:
        loss (`()`, when `labels` are given): CRF head: the negative log-likelihood of the gold tags,
            mean over sequences, the chain running over the positions where `labels != -100`; softmax
            head: cross-entropy, mean over the positions where `labels != -100`.
        logits (`(B, T, C)`): per-token argmax = the decoded tags (`tags`) at every decoded position. CRF
            head: max-marginals relative to the Viterbi path (see the module docstring), no gradient;
            raw emissions outside the decode mask; `None` in a training step (see `decode_tags`).
            Softmax head: the emissions.
        emissions (`(B, T, C)`): the head's per-token tag scores, before the CRF (with gradient).
        tags (`(B, T)` long): decoded tag ids on the decode mask (Viterbi for the CRF head, argmax for
            the softmax head), -100 elsewhere; CRF head: `None` in a training step (see `decode_tags`).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    emissions: torch.Tensor | None = None
    tags: torch.Tensor | None = None


def path_logits(
    emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, marginals: torch.Tensor
) -> torch.Tensor:
    """Logits whose per-token argmax is ``tags`` on ``mask`` (see the module docstring).

    Args:
        emissions: ``(B, T, C)``; kept as they are outside ``mask``.
        tags: ``(B, T)`` long, the decoded path (any value outside ``mask``).
        mask: ``(B, T)`` bool.
        marginals: ``(B, T, C)`` from :meth:`CRF.max_marginals`.

    Returns:
        ``(B, T, C)`` in the marginals' dtype: 0 at the path's tag, ``min(m(c) - m(tag), -TIE_MARGIN)``
        at the other tags, on ``mask``; the emissions elsewhere.
    """
    # shape: (B, T, 1)
    index = tags.clamp(min=0).unsqueeze(2)
    relative = marginals - marginals.gather(2, index)
    relative = relative.clamp(max=-TIE_MARGIN).scatter(2, index, 0.0)
    return torch.where(mask.unsqueeze(2), relative, emissions.to(relative.dtype))


class BertCrfPreTrainedModel(EncoderModelMixin, PreTrainedModel):
    config_class = BertCrfConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The encoder knows how to initialise its own modules and the head's plain Linear layers.
        if isinstance(module, CRF):
            module.reset_parameters()
        else:
            self.encoder._init_weights(module)


class BertCrfForTokenClassification(BertCrfPreTrainedModel):
    """Encoder + dropout + two linear layers + CRF (or softmax); see the module docstring."""

    def __init__(self, config: BertCrfConfig):
        super().__init__(config)
        self.encoder = build_encoder(config.encoder_config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.hidden_layer = nn.Linear(config.hidden_size, config.head_hidden_size)
        self.activation = ACT2FN[config.head_activation]
        self.classifier = nn.Linear(config.head_hidden_size, config.num_labels)
        self.crf = None
        if config.head == "crf":
            labels = [config.id2label[i] for i in range(config.num_labels)]
            # Persistent buffers: `from_pretrained` restores them from the checkpoint.
            allowed_start, allowed_transitions = (
                bio_constraints(labels) if config.use_bio_constraints else (None, None)
            )
            self.crf = CRF(
                config.num_labels, allowed_transitions=allowed_transitions, allowed_start=allowed_start
            )
        self.post_init()

    @classmethod
    def from_encoder(
        cls,
        encoder_name_or_path: str,
        encoder_kwargs: dict | None = None,
        tokenizer=None,
        **config_kwargs,
    ) -> BertCrfForTokenClassification:
        """Build the model on pre-trained encoder weights (any `AutoModel` checkpoint); the head starts random.

        Args:
            encoder_name_or_path: Hub id or folder of the encoder.
            encoder_kwargs: passed to the encoder's ``from_pretrained`` (``{"num_hidden_layers": 2}`` keeps
                the first two layers).
            tokenizer: optional; its special tokens (all but ``unk_token``) become
                ``config.special_token_ids`` unless ``special_token_ids`` is given.
            config_kwargs: passed to [`BertCrfConfig`] (``id2label``, ``head``, ``classifier_dropout``...).
        """
        if tokenizer is not None and "special_token_ids" not in config_kwargs:
            config_kwargs["special_token_ids"] = [
                i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id
            ]
        return super().from_encoder(encoder_name_or_path, encoder_kwargs, **config_kwargs)

    def default_decode_mask(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, T)`` bool: ``attention_mask == 1`` and the id not in ``config.special_token_ids``."""
        mask = (
            torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        )
        special = torch.tensor(self.config.special_token_ids, dtype=input_ids.dtype, device=input_ids.device)
        return mask & ~torch.isin(input_ids, special)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decode_mask: torch.Tensor | None = None,
        decode_tags: bool | None = None,
        **kwargs,
    ) -> BertCrfOutput:
        r"""
        Args:
            input_ids, attention_mask, token_type_ids (`(B, T)`): as for the encoder.
            labels (`(B, T)` long, *optional*): tag ids at the tagged positions (a word's first
                sub-word), -100 elsewhere. With the CRF head and BIO constraints, the gold tags of a row
                must form a valid BIO path over its labelled positions.
            decode_mask (`(B, T)` bool, *optional*): positions to decode; defaults to `labels != -100`
                when labels are given, else to the non-special, non-padding tokens (module docstring).
            decode_tags (`bool`, *optional*): CRF head: run Viterbi and the max-marginals for `tags` and
                `logits`. Default: yes, except in a training step (training mode with `labels`), where
                only the loss is needed and `tags` and `logits` are `None`.
        """
        encoder_kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(input_ids, **encoder_kwargs).last_hidden_state  # shape: (B, T, H)
        hidden = self.activation(self.hidden_layer(self.dropout(hidden)))  # shape: (B, T, head_hidden)
        emissions = self.classifier(self.dropout(hidden))  # shape: (B, T, C)

        if decode_mask is None:
            decode_mask = labels != IGNORE if labels is not None else None
        if decode_mask is None:
            decode_mask = self.default_decode_mask(input_ids, attention_mask)
        decode_mask = decode_mask.bool()

        loss = tags = logits = None
        if decode_tags is None:
            decode_tags = not (self.training and labels is not None)
        if self.crf is not None:
            if labels is not None:
                loss = -self.crf(emissions, labels, mask=labels != IGNORE, reduction="mean")
            if decode_tags:  # Viterbi + max-marginals: not in a training step, whose loss needs neither
                tags = self.crf.decode(emissions.detach(), mask=decode_mask, pad_tag=IGNORE)  # shape: (B, T)
                marginals = self.crf.max_marginals(emissions.detach(), decode_mask)  # shape: (B, T, C)
                logits = path_logits(emissions.detach(), tags, decode_mask, marginals)
        else:
            if labels is not None:
                loss = nn.functional.cross_entropy(
                    emissions.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE
                )
            # shape: (B, T)
            tags = emissions.detach().argmax(dim=-1).masked_fill(~decode_mask, IGNORE)
            logits = emissions
        return BertCrfOutput(loss=loss, logits=logits, emissions=emissions, tags=tags)

    @torch.no_grad()
    def decode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        decode_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoded tag ids ``(B, T)`` long: the Viterbi path (CRF head) or the per-token argmax (softmax
        head) on the decode mask (see ``forward``), -100 elsewhere. Call in eval mode (dropout off)."""
        return self.forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            decode_mask=decode_mask,
            decode_tags=True,
        ).tags


__all__ = ["BertCrfForTokenClassification", "BertCrfOutput", "BertCrfPreTrainedModel"]
