"""Joint NER + relation extraction of adverse drug events: one shared encoder, two heads.

- NER head: dropout + linear + softmax over BIO tags at every token; a word's tag is the tag of its first
  sub-word (later sub-words carry label -100 and are ignored in the loss and in decoding).
- Relation head (R-BERT style): for a candidate pair (head entity, tail entity) take the encoder state of
  each entity's **last** sub-word and of ``[CLS]``; each goes through ``tanh`` then its own linear layer
  (W1, W2, W0); the three are concatenated, passed through W3 and an MLP; softmax over relation labels.
  With ``config.relation_multi_label`` every label gets its own sigmoid (several relations may hold for a pair).
- Loss: ``λ·L_ner + (1 − λ)·L_rel``. Training feeds gold entities to the relation head; inference feeds the
  entities the NER head predicted. Every candidate pair of a batch is classified from one encoder pass.

Hub code: imports only ``torch``, ``transformers`` and sibling files (relative imports).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .bio import bio_to_spans
from .configuration_joint_ner_re import JointNerReConfig
from .encoder_utils import EncoderModelMixin, build_encoder

PAD = -1  # padding value of entity_spans / relation_pairs rows


@dataclass
class JointNerReOutput(ModelOutput):
    """Output of [`JointNerReForAdeExtraction`], the same in training and inference.

    Shapes: B batch, T tokens, L NER labels, E entities per sentence (padded), P candidate pairs per
    sentence (padded), R relation labels.

    Args:
        loss (`()`, when `labels` and/or `relation_labels` are given): `λ·ner_loss + (1 − λ)·relation_loss`.
        ner_loss (`()`, when `labels` are given).
        relation_loss (`()`, when `relation_labels` are given; 0 when the batch has no candidate pair).
        ner_logits (`(B, T, L)`): NER scores at every token (only first sub-words are meaningful).
        entity_spans (`(B, E, 3)` long): `[first_token, last_token, entity_type_index]` of the entities the
            relation head saw (the given gold ones, or those decoded from `ner_logits`); rows of -1 are padding.
        entity_scores (`(B, E)`): mean probability of the decoded tags of each entity (1.0 for given entities).
        relation_pairs (`(B, P, 2)` long): `[head_entity, tail_entity]` indices into `entity_spans`; -1 = padding.
        relation_logits (`(B, P, R)`): relation scores of every candidate pair.
        sentence_loss (`()`, with `config.sentence_gate` and `sentence_labels`): the gate's cross-entropy.
        sentence_logits (`(B, 2)`, with `config.sentence_gate`): does the sentence state a relation (index 1)?
    """

    loss: torch.Tensor | None = None
    ner_loss: torch.Tensor | None = None
    relation_loss: torch.Tensor | None = None
    ner_logits: torch.Tensor | None = None
    entity_spans: torch.Tensor | None = None
    entity_scores: torch.Tensor | None = None
    relation_pairs: torch.Tensor | None = None
    relation_logits: torch.Tensor | None = None
    sentence_loss: torch.Tensor | None = None
    sentence_logits: torch.Tensor | None = None


def first_subword_mask(word_index: torch.Tensor) -> torch.Tensor:
    """``word_index (B, T)`` (1-based word of each token, 0 for special/padding) -> ``(B, T)`` bool, True at the
    first sub-word of every word."""
    previous = torch.nn.functional.pad(word_index[:, :-1], (1, 0), value=0)  # shape: (B, T)
    return (word_index > 0) & (word_index != previous)


def last_subword_mask(word_index: torch.Tensor) -> torch.Tensor:
    """``word_index (B, T)`` -> ``(B, T)`` bool, True at the last sub-word of every word."""
    following = torch.nn.functional.pad(word_index[:, 1:], (0, 1), value=0)  # shape: (B, T)
    return (word_index > 0) & (word_index != following)


def decode_bio_entities(
    tag_ids: list[int], id2label: dict[int, str], entity_types: list[str]
) -> list[tuple[int, int, int]]:
    """Word-level BIO tags -> entities ``(first_word, last_word, type_index)``, chunked as conlleval does
    (an ``I-X`` after ``O`` or after another type starts a new entity); types outside ``entity_types`` are
    left out."""
    return [
        (start, end - 1, entity_types.index(entity_type))
        for entity_type, start, end in bio_to_spans([id2label[i] for i in tag_ids])
        if entity_type in entity_types
    ]


def candidate_pairs(entity_spans: torch.Tensor, candidate_types: torch.Tensor) -> torch.Tensor:
    """Every (head, tail) entity pair whose types form a candidate type pair.

    entity_spans ``(B, E, 3)`` (``[first, last, type]``, -1 rows = padding), candidate_types ``(K, 2)``
    ``[head_type, tail_type]`` -> relation_pairs ``(B, P, 2)``: indices into entity_spans in row-major
    (head, tail) order, -1 = padding.
    """
    batch, num_entities = entity_spans.shape[:2]
    types = entity_spans[..., 2]  # shape: (B, E)
    valid = entity_spans[..., 0] >= 0  # shape: (B, E)
    head_ok = (types.unsqueeze(-1) == candidate_types[:, 0]).unsqueeze(2)  # shape: (B, E, 1, K)
    tail_ok = (types.unsqueeze(-1) == candidate_types[:, 1]).unsqueeze(1)  # shape: (B, 1, E, K)
    ok = (head_ok & tail_ok).any(-1) & valid.unsqueeze(2) & valid.unsqueeze(1)  # shape: (B, E, E)
    ok &= ~torch.eye(num_entities, dtype=torch.bool, device=ok.device)
    counts = ok.flatten(1).sum(-1)  # shape: (B,)
    num_pairs = int(counts.max()) if batch and num_entities else 0
    pairs = entity_spans.new_full((batch, num_pairs, 2), PAD)
    # All pairs at once (no per-sentence op, which on a GPU would wait for the device each time): nonzero is
    # row-major, so each sentence's pairs come in (head, tail) order and its k-th pair goes to slot k.
    rows, heads, tails = ok.nonzero(as_tuple=True)  # each (N,)
    slots = torch.arange(rows.numel(), device=ok.device) - (counts.cumsum(0) - counts)[rows]  # shape: (N,)
    pairs[rows, slots, 0] = heads
    pairs[rows, slots, 1] = tails
    return pairs


def add_negative_entities(
    entity_spans: torch.Tensor,
    relation_pairs: torch.Tensor,
    relation_labels: torch.Tensor,
    extra_spans: torch.Tensor,
    candidate_types: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Add entities that are not gold (e.g. the NER head's own predictions) as relation negatives.

    entity_spans ``(B, E, 3)`` gold entities, relation_pairs ``(B, P, 2)`` the gold pairs and relation_labels their
    labels, ``(B, P)`` class ids or ``(B, P, R)`` multi-hot rows (``config.relation_multi_label``), extra_spans
    ``(B, E2, 3)`` other entities (-1 rows = padding). Returns ``(entity_spans (B, E', 3), relation_pairs (B, P', 2),
    relation_labels (B, P'[, R]))``: each sentence's gold rows first and unchanged, then its extra entities that
    differ from every gold one (first, last, type); every candidate pair of the result; the given label for a
    given pair and "none" (0, or the one-hot row of label 0) for any pair with an extra entity, -100 for padding.
    """
    rows = []
    for b in range(entity_spans.size(0)):
        gold = [row for row in entity_spans[b].tolist() if row[0] >= 0]
        seen = {tuple(row) for row in gold}
        extra = [row for row in extra_spans[b].tolist() if row[0] >= 0 and tuple(row) not in seen]
        rows.append(gold + [row for i, row in enumerate(extra) if row not in extra[:i]])
    width = max((len(r) for r in rows), default=0)
    spans = entity_spans.new_full((len(rows), width, 3), PAD)
    for b, row in enumerate(rows):
        if row:
            spans[b, : len(row)] = torch.tensor(row, dtype=spans.dtype, device=spans.device)
    pairs = candidate_pairs(spans, candidate_types)  # shape: (B, P', 2)
    labels = none_labels(pairs, relation_labels)  # shape: (B, P'[, R])
    for b in range(len(rows)):
        given = {
            (h, t): p
            for p, (h, t) in enumerate(relation_pairs[b].tolist())
            if h >= 0 and (relation_labels[b, p] != -100).all()
        }
        for p, (h, t) in enumerate(pairs[b].tolist()):
            if (h, t) in given:
                labels[b, p] = relation_labels[b, given[(h, t)]]
    return spans, pairs, labels


def none_labels(pairs: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Relation targets saying "none" for every pair of ``pairs`` ``(B, P, 2)``, -100 for padding rows, in the form
    of ``like``: class ids ``(B, P)`` (long), or multi-hot rows ``(B, P, R)`` (float, label 0 set)."""
    valid = pairs[..., 0] >= 0  # shape: (B, P)
    if like.dim() == 2:
        return torch.where(valid, 0, -100).to(like.dtype)
    labels = like.new_zeros((*pairs.shape[:2], like.size(-1)))
    labels[..., 0] = 1.0
    return labels.masked_fill(~valid.unsqueeze(-1), -100.0)


def gather_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values`` ``(B, N, D)``, ``index`` ``(B, P)`` long in ``[0, N)`` -> ``values[b, index[b, p]]`` ``(B, P, D)``."""
    return torch.gather(values, 1, index.unsqueeze(-1).expand(-1, -1, values.size(-1)))


class JointNerReRelationHead(nn.Module):
    """R-BERT relation classifier over ``[CLS]`` and the last sub-word of the head and tail entities."""

    def __init__(self, config: JointNerReConfig):
        super().__init__()
        hidden, width = config.hidden_size, config.relation_hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.cls_projection = nn.Linear(hidden, width)  # W0
        self.head_projection = nn.Linear(hidden, width)  # W1
        self.tail_projection = nn.Linear(hidden, width)  # W2
        self.fuse = nn.Linear(3 * width, width)  # W3
        self.mlp = nn.Sequential(
            nn.Linear(width, config.relation_mlp_hidden_size),
            nn.GELU(),
            nn.Dropout(config.classifier_dropout),
            nn.Linear(config.relation_mlp_hidden_size, len(config.relation_labels)),
        )

    def forward(
        self, hidden: torch.Tensor, entity_spans: torch.Tensor, relation_pairs: torch.Tensor
    ) -> torch.Tensor:
        """hidden ``(B, T, H)``, entity_spans ``(B, E, 3)``, relation_pairs ``(B, P, 2)`` -> logits ``(B, P, R)``.

        ``W3 · [h0; h1; h2]`` is ``W3a·h0 + W3b·h1 + W3c·h2``, so the projections are computed once per sentence
        (``[CLS]``) and once per entity, and a pair only adds up three rows and runs the MLP: the per-pair cost
        no longer grows with the hidden size. Dropout is drawn per sentence and per entity accordingly.
        """
        # No early exit for P = 0: every parameter stays in the graph (DDP needs that), empty tensors are fine.
        width = self.fuse.out_features
        ends = self.dropout(torch.tanh(gather_rows(hidden, entity_spans[..., 1].clamp(min=0))))  # (B, E, H)
        cls = self.dropout(torch.tanh(hidden[:, 0]))  # shape: (B, H)
        w_cls, w_head, w_tail = self.fuse.weight.split(width, dim=1)  # each (width, width)
        cls_part = self.dropout(self.cls_projection(cls)) @ w_cls.T + self.fuse.bias  # shape: (B, width)
        head_part = self.dropout(self.head_projection(ends)) @ w_head.T  # shape: (B, E, width)
        tail_part = self.dropout(self.tail_projection(ends)) @ w_tail.T  # shape: (B, E, width)
        pairs = relation_pairs.clamp(min=0)  # shape: (B, P, 2)
        fused = (
            cls_part.unsqueeze(1)
            + gather_rows(head_part, pairs[..., 0])
            + gather_rows(tail_part, pairs[..., 1])
        )  # shape: (B, P, width)
        return self.mlp(fused)  # shape: (B, P, R)


class JointNerRePreTrainedModel(EncoderModelMixin, PreTrainedModel):
    config_class = JointNerReConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The encoder knows how to initialise its own modules (and any head: plain Linear layers).
        self.encoder._init_weights(module)


class JointNerReForAdeExtraction(JointNerRePreTrainedModel):
    """Shared encoder + token-softmax NER head + R-BERT relation head (see the module docstring)."""

    def __init__(self, config: JointNerReConfig):
        super().__init__(config)
        self.encoder = build_encoder(config.encoder_config)
        self.ner_dropout = nn.Dropout(config.classifier_dropout)
        self.ner_classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.relation_head = JointNerReRelationHead(config)
        if config.sentence_gate:
            self.sentence_classifier = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def candidate_type_ids(self) -> torch.Tensor:
        """``(K, 2)`` long: ``[head_type_index, tail_type_index]`` of every candidate type pair of the config."""
        index = {t: i for i, t in enumerate(self.config.entity_types)}
        return torch.tensor(
            [[index[h], index[t]] for h, t in self.config.relation_candidate_types], dtype=torch.long
        )

    def candidate_pairs(self, entity_spans: torch.Tensor) -> torch.Tensor:
        """Every candidate (head, tail) pair of `entity_spans` under this config (see `candidate_pairs`)."""
        return candidate_pairs(entity_spans, self.candidate_type_ids().to(entity_spans.device))

    def decode_entities(
        self, ner_logits: torch.Tensor, word_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Argmax NER tags at first sub-words -> entities (conlleval chunking over words).

        ner_logits ``(B, T, L)``, word_index ``(B, T)`` -> entity_spans ``(B, E, 3)`` with the entity's first
        token (first sub-word of its first word) and last token (last sub-word of its last word), and
        entity_scores ``(B, E)``: the mean probability of the entity's word tags.
        """
        probs = ner_logits.float().softmax(-1)  # shape: (B, T, L)
        best_prob, best_tag = probs.max(-1)  # shape: (B, T)
        starts, ends = first_subword_mask(word_index), last_subword_mask(word_index)
        # One copy to the host, then plain Python over lists: on a GPU every per-sentence or per-entity tensor op
        # would wait for the device, and on a CPU such small ops cost more than the list work.
        rows = zip(*(t.tolist() for t in (best_prob, best_tag, starts, ends)))
        spans_per_sample, scores_per_sample = [], []
        for prob, tag, start, end in rows:  # one sentence: (T,) lists
            word_first = [t for t, is_first in enumerate(start) if is_first]
            word_last = [t for t, is_last in enumerate(end) if is_last]
            found, scores = [], []
            for first_word, last_word, type_index in decode_bio_entities(
                [tag[t] for t in word_first], self.config.id2label, self.config.entity_types
            ):
                found.append([word_first[first_word], word_last[last_word], type_index])
                word_probs = [prob[t] for t in word_first[first_word : last_word + 1]]
                scores.append(sum(word_probs) / len(word_probs))
            spans_per_sample.append(found)
            scores_per_sample.append(scores)
        width = max((len(f) for f in spans_per_sample), default=0)
        spans = torch.tensor(
            [found + [[PAD] * 3] * (width - len(found)) for found in spans_per_sample], dtype=torch.long
        ).reshape(len(spans_per_sample), width, 3)
        scores = torch.tensor(
            [row + [0.0] * (width - len(row)) for row in scores_per_sample], dtype=torch.float32
        ).reshape(len(scores_per_sample), width)
        return spans.to(ner_logits.device), scores.to(ner_logits.device)

    def relation_loss(self, relation_logits: torch.Tensor, relation_labels: torch.Tensor) -> torch.Tensor:
        """relation_logits ``(B, P, R)``; relation_labels ``(B, P)`` class ids (softmax cross-entropy) or, with
        ``config.relation_multi_label``, ``(B, P, R)`` multi-hot rows (binary cross-entropy per label); -100 marks
        padding. 0 (in the graph) when the batch has no pair."""
        if relation_labels.dim() == 3:
            valid = relation_labels[..., 0] >= 0  # shape: (B, P)
            if not valid.any():
                return relation_logits.sum() * 0.0
            return nn.functional.binary_cross_entropy_with_logits(
                relation_logits[valid].float(), relation_labels[valid].float()
            )
        if not (relation_labels != -100).any():
            return relation_logits.sum() * 0.0
        return nn.functional.cross_entropy(
            relation_logits.flatten(0, 1), relation_labels.flatten(), ignore_index=-100
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        word_index: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        entity_spans: torch.Tensor | None = None,
        relation_pairs: torch.Tensor | None = None,
        relation_labels: torch.Tensor | None = None,
        predicted_entity_negatives: bool = False,
        sentence_labels: torch.Tensor | None = None,
        **kwargs,
    ) -> JointNerReOutput:
        r"""
        Args:
            input_ids, attention_mask, token_type_ids (`(B, T)`): as for the encoder.
            word_index (`(B, T)` long, *optional*): 1-based index of the word each token belongs to, 0 for special
                and padding tokens (`tokenizer(...).word_ids()` + 1). Needed to decode entities when
                `entity_spans` is not given.
            labels (`(B, T)` long, *optional*): BIO tag ids at first sub-words, -100 elsewhere.
            entity_spans (`(B, E, 3)` long, *optional*): gold `[first_token, last_token, type_index]`, -1 padding.
                Given in training (and to score relations on gold entities); otherwise decoded from the NER head.
            relation_pairs (`(B, P, 2)` long, *optional*): `[head, tail]` indices into `entity_spans`, -1 padding;
                defaults to every candidate pair (`config.relation_candidate_types`).
            relation_labels (`(B, P)` long or `(B, P, R)` float, *optional*): relation class per pair, or with
                `config.relation_multi_label` a multi-hot row of labels per pair (label 0 = "none"); -100 for padding.
            predicted_entity_negatives (`bool`, defaults to `False`): training only, with gold `entity_spans`,
                `relation_pairs`, `relation_labels` and `word_index`: the entities the NER head predicts in this
                pass that are not gold are added, and every pair with one of them is a "none" example
                (`add_negative_entities`), so the relation head learns to reject the entities it will see at
                inference. The outputs then hold the extended entities and pairs.
            sentence_labels (`(B,)` long, *optional*): with `config.sentence_gate`, 1 for a sentence that states
                a relation, 0 for a negative sentence; adds `sentence_loss_weight · sentence_loss` to the loss.
        """
        encoder_kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(input_ids, **encoder_kwargs).last_hidden_state  # shape: (B, T, H)
        ner_logits = self.ner_classifier(self.ner_dropout(hidden))  # shape: (B, T, L)
        sentence_logits = sentence_loss = None
        if self.config.sentence_gate:
            sentence_logits = self.sentence_classifier(self.ner_dropout(hidden[:, 0]))  # shape: (B, 2)
            if sentence_labels is not None:
                sentence_loss = nn.functional.cross_entropy(sentence_logits, sentence_labels)

        if entity_spans is None:
            if word_index is None:
                raise ValueError(
                    "`word_index` is needed to decode entities when `entity_spans` is not given: pass "
                    "`torch.tensor([[0 if w is None else w + 1 for w in encoding.word_ids()]])`, or use the "
                    "`ade-extraction` pipeline, which does it for you"
                )
            entity_spans, entity_scores = self.decode_entities(ner_logits.detach(), word_index)
        else:
            if predicted_entity_negatives and relation_labels is not None and relation_pairs is not None:
                if word_index is None:
                    raise ValueError(
                        "`predicted_entity_negatives` needs `word_index` to decode the NER output"
                    )
                predicted, _ = self.decode_entities(ner_logits.detach(), word_index)
                entity_spans, relation_pairs, relation_labels = add_negative_entities(
                    entity_spans,
                    relation_pairs,
                    relation_labels,
                    predicted,
                    self.candidate_type_ids().to(entity_spans.device),
                )
            entity_scores = (entity_spans[..., 0] >= 0).to(hidden.dtype)
        if relation_pairs is None:
            relation_pairs = self.candidate_pairs(entity_spans)
        relation_logits = self.relation_head(hidden, entity_spans, relation_pairs)  # shape: (B, P, R)

        loss = ner_loss = relation_loss = None
        if labels is not None:
            if (labels != -100).any():
                ner_loss = nn.functional.cross_entropy(
                    ner_logits.flatten(0, 1), labels.flatten(), ignore_index=-100
                )
            else:  # e.g. a batch of negative sentences whose tags are left out: no NaN from an empty mean
                ner_loss = ner_logits.sum() * 0.0
        if relation_labels is not None:
            relation_loss = self.relation_loss(relation_logits, relation_labels)
        if ner_loss is not None or relation_loss is not None:
            weight = self.config.ner_loss_weight
            loss = sum(
                part
                for part in (
                    weight * ner_loss if ner_loss is not None else None,
                    (1.0 - weight) * relation_loss if relation_loss is not None else None,
                    self.config.sentence_loss_weight * sentence_loss if sentence_loss is not None else None,
                )
                if part is not None
            )
        return JointNerReOutput(
            loss=loss,
            ner_loss=ner_loss,
            relation_loss=relation_loss,
            ner_logits=ner_logits,
            entity_spans=entity_spans,
            entity_scores=entity_scores,
            relation_pairs=relation_pairs,
            relation_logits=relation_logits,
            sentence_loss=sentence_loss,
            sentence_logits=sentence_logits,
        )


__all__ = ["JointNerReForAdeExtraction", "JointNerRePreTrainedModel", "JointNerReOutput"]
