"""``ade-extraction`` pipeline: text -> entities (character offsets) and drug -> adverse-effect relations.

Hub code: imports only ``torch`` and ``transformers`` (plus the optional sentence splitter ``sentencex``,
imported when a document is split). Saved next to the model (``custom_pipelines`` in ``config.json``) so
``pipeline("ade-extraction", model=DIR, trust_remote_code=True)`` works anywhere.

A document is first split into sentences (``sentencex``, for ``config.language``), since the model was trained
on single sentences: relations never cross a sentence boundary. A sentence longer than ``max_length`` tokens
(default: the training length, ``config.train_max_length``) is cut into overlapping windows (``stride`` >= 1 tokens
shared by neighbours), so no part of a text is dropped. An entity that touches a window edge inside the
sentence is left to the neighbouring window (it may be a fragment of a word the window cut); an entity seen
whole by several windows is kept from the window where it lies farthest from an edge. A relation needs both
of its entities in one window. An entity longer than ``stride`` tokens that crosses a window edge is seen
whole by no window: raise ``stride`` (or ``max_length``) for very long mentions.

A pair is a relation when its best non-"none" label has probability >= ``config.relation_threshold`` (with
``config.relation_multi_label``: every non-"none" label whose own sigmoid probability is); a label of
``config.symmetric_relations`` is reported once, head = the entity that comes first. With a
sentence gate (``config.sentence_gate``) a window whose gate probability is below ``config.sentence_threshold``
yields no relation, and no entity either unless ``config.sentence_gate_scope`` is ``"relations"``.
Entities with a letter of a script the model never saw in a training entity (``config.entity_scripts``, e.g. a
lone CJK character for an English model) are not reported.
"""

from __future__ import annotations

import re
import unicodedata

import torch
from transformers.pipelines.base import ChunkPipeline


def entity_char_span(offsets: list[list[int]], first_token: int, last_token: int) -> tuple[int, int]:
    """Token span -> ``(start, end_exclusive)`` character offsets, given the tokenizer's offset mapping."""
    return offsets[first_token][0], offsets[last_token][1]


def relation_key(head_type: str, tail_type: str) -> tuple[str, str]:
    """Output keys of a relation's two entities: the entity types in snake case (``"adverse_effect"``,
    ``"drug"``), or ``"head"``/``"tail"`` when both entities have the same type."""
    head, tail = (re.sub(r"\W+", "_", t).strip("_").lower() for t in (head_type, tail_type))
    return ("head", "tail") if head == tail else (head, tail)


def relation_label(probs: list[float], threshold: float) -> int:
    """Index of the extracted relation label for one pair's label probabilities, or 0 ("none"): the most probable
    label other than "none" when its probability is at least ``threshold``."""
    best = max(range(1, len(probs)), key=probs.__getitem__)
    return best if probs[best] >= threshold else 0


def relation_label_ids(probs: list[float], threshold: float, multi_label: bool = False) -> list[int]:
    """The extracted relation labels of one pair: :func:`relation_label` (at most one), or with ``multi_label``
    (per-label sigmoid probabilities) every label other than "none" whose probability is at least ``threshold``."""
    if multi_label:
        return [label for label in range(1, len(probs)) if probs[label] >= threshold]
    label = relation_label(probs, threshold)
    return [label] if label else []


def relation_probabilities(relation_logits: torch.Tensor, multi_label: bool = False) -> torch.Tensor:
    """``(..., R)`` relation logits -> probabilities: one softmax, or a sigmoid per label with ``multi_label``."""
    logits = relation_logits.float()
    return logits.sigmoid() if multi_label else logits.softmax(-1)


def letter_scripts(text: str) -> set[str]:
    """Unicode scripts of the letters in ``text``: the first word of each letter's Unicode name (``"LATIN"``,
    ``"GREEK"``, ``"CJK"``, ``"CYRILLIC"``, ...). Digits, punctuation and symbols have none."""
    scripts = set()
    for char in text:
        if unicodedata.category(char).startswith("L"):
            scripts.add(unicodedata.name(char, "UNKNOWN").split(" ")[0])
    return scripts


def script_filter(texts: list[str], entity_scripts: list[str] | None) -> list[bool]:
    """For each entity text: may it be reported, given ``config.entity_scripts`` (``None`` allows everything)?"""
    allowed = None if entity_scripts is None else set(entity_scripts)
    return [allowed is None or letter_scripts(text) <= allowed for text in texts]


def sentence_spans(text: str, language: str) -> list[tuple[int, int]]:
    """``(start, end_exclusive)`` character spans of the sentences of ``text`` (whitespace at their edges left
    out), from Wikimedia's ``sentencex``; a text without any non-space character gives ``[(0, len(text))]``."""
    try:
        import sentencex
    except ImportError:
        raise ImportError(
            "ade-extraction splits documents into sentences with `sentencex`: pip install sentencex "
            "(or call the pipeline with split_sentences=False for text that is already one sentence)"
        ) from None
    spans = []
    for boundary in sentencex.get_sentence_boundaries(language, text):
        start, end = boundary["start_index"], boundary["end_index"]
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans or [(0, len(text))]


def window_predictions(
    offsets: list[list[int]],
    num_tokens: int,
    entity_spans: list[list[int]],
    entity_scores: list[float],
    relation_pairs: list[list[int]],
    relation_probs: list[list[float]],
    entity_types: list[str],
    relation_labels: list[str],
    cut_left: bool = False,
    cut_right: bool = False,
    relation_threshold: float = 0.5,
    sentence_probability: float | None = None,
    sentence_threshold: float = 0.5,
    sentence_gate_scope: str = "all",
    multi_label: bool = False,
    symmetric_relations: list[str] = (),
) -> tuple[list[dict], list[tuple[int, int, int, float]]]:
    """One window's model output -> entities (with ``centrality``: distance in tokens to the nearer window
    edge) and relations ``(head_entity, tail_entity, label_index, score)`` over this window's entities.

    ``cut_left`` / ``cut_right``: the window starts / ends inside the text (it is not the first / last
    window). An entity touching such an edge (first content token after the leading special token, last
    one before the closing special token) may be a fragment of a word or entity cut by the window, so it
    is left to the neighbouring window, which sees it whole (windows overlap by ``stride`` tokens). A pair is a
    relation by :func:`relation_label_ids` at ``relation_threshold`` (several labels with ``multi_label``); a
    relation of a ``symmetric_relations`` label gets the entity that comes first in the text as its head. With
    a sentence gate, a window whose
    ``sentence_probability`` is below ``sentence_threshold`` yields no relation, and no entity either when
    ``sentence_gate_scope`` is ``"all"`` (with ``"relations"`` its entities are kept)."""
    rejected = sentence_probability is not None and sentence_probability < sentence_threshold
    if rejected and sentence_gate_scope == "all":
        return [], []
    entities, index = [], {}
    for e, (first, last, type_index) in enumerate(entity_spans):
        if first < 0 or (cut_left and first <= 1) or (cut_right and last >= num_tokens - 2):
            continue
        start, end = entity_char_span(offsets, first, last)
        index[e] = len(entities)
        entities.append(
            {
                "type": entity_types[type_index],
                "start": start,
                "end": end,
                "score": float(entity_scores[e]),
                "centrality": min(first, num_tokens - 1 - last),
            }
        )
    relations = []
    for (head, tail), probs in zip(relation_pairs, relation_probs):
        if rejected or head < 0 or head not in index or tail not in index:
            continue
        for label in relation_label_ids(probs, relation_threshold, multi_label):
            first, second = index[head], index[tail]
            if relation_labels[label] in symmetric_relations and (
                (entities[second]["start"], entities[second]["end"])
                < (entities[first]["start"], entities[first]["end"])
            ):
                first, second = second, first
            relations.append((first, second, label, float(probs[label])))
    return entities, relations


class AdeExtractionPipeline(ChunkPipeline):
    """Extract entities and relations with a `JointNerReForAdeExtraction` model.

    Call with a string or a list of strings; returns per text
    ``{"entities": [{"type", "text", "start", "end", "score"}], "relations": [{"type", "score", <head>, <tail>}]}``
    where ``<head>``/``<tail>`` are keyed by entity type (``"adverse_effect"``, ``"drug"`` for ADE) and hold
    the entity dicts. ``text[start:end] == entity["text"]`` always holds.

    Parameters: ``max_length`` (tokens per window, default: the training length ``config.train_max_length``, else
    the model's maximum), ``stride`` (tokens shared by neighbouring windows, default 32, or a quarter of a shorter window), ``split_sentences``
    (default True: split documents into sentences first), ``language`` (for the splitter, default
    ``config.language``).
    """

    def _sanitize_parameters(
        self,
        max_length: int | None = None,
        stride: int | None = None,
        split_sentences: bool | None = None,
        language: str | None = None,
        **kwargs,
    ):
        preprocess = {}
        for key, value in (
            ("max_length", max_length),
            ("stride", stride),
            ("split_sentences", split_sentences),
            ("language", language),
        ):
            if value is not None:
                preprocess[key] = value
        return preprocess, {}, {}

    def _default_max_length(self) -> int:
        if getattr(self.model.config, "train_max_length", None):
            return int(self.model.config.train_max_length)
        limits = [self.tokenizer.model_max_length, self.model.config.max_position_embeddings or 512, 512]
        return min(int(x) for x in limits if x)

    def preprocess(
        self,
        text: str,
        max_length: int | None = None,
        stride: int | None = None,
        split_sentences: bool = True,
        language: str | None = None,
    ):
        if not isinstance(text, str):
            raise ValueError(f"ade-extraction takes a string or a list of strings, got {type(text).__name__}")
        max_length = max_length or self._default_max_length()
        if stride is None:  # 32, or a quarter of a short window
            stride = min(32, max(1, (max_length - 2) // 4))
        if not 1 <= stride < max_length - 2:
            raise ValueError(
                f"`stride` must be in [1, max_length - 2), got stride={stride}, max_length={max_length}"
            )
        if split_sentences:
            language = language or getattr(self.model.config, "language", None) or "en"
            sentences = sentence_spans(text, language)
        else:
            sentences = [(0, len(text))]
        for s, (start, end) in enumerate(sentences):
            encoding = self.tokenizer(
                text[start:end],
                return_offsets_mapping=True,
                truncation=True,
                max_length=max_length,
                stride=stride,
                return_overflowing_tokens=True,
                padding=True,  # windows of one sentence share a length (the last one is padded)
                return_tensors="pt",
            )
            num_windows = encoding["input_ids"].shape[0]
            for i in range(num_windows):
                word_ids = encoding.word_ids(i)
                model_inputs = {
                    key: encoding[key][i : i + 1]
                    for key in ("input_ids", "attention_mask", "token_type_ids")
                    if key in encoding
                }
                model_inputs["word_index"] = torch.tensor([[0 if w is None else w + 1 for w in word_ids]])
                # offsets into the document: the sentence's tokens are shifted by where the sentence starts
                model_inputs["offset_mapping"] = encoding["offset_mapping"][i : i + 1] + start
                model_inputs["text"] = text if s == 0 and i == 0 else None
                model_inputs["first_window"] = torch.tensor([i == 0])
                model_inputs["last_window"] = torch.tensor([i == num_windows - 1])
                # read (and removed) by ChunkPipeline: the document's last chunk
                model_inputs["is_last"] = s == len(sentences) - 1 and i == num_windows - 1
                yield model_inputs

    def _forward(self, model_inputs):
        offsets = model_inputs.pop("offset_mapping")
        text = model_inputs.pop("text")
        is_last = model_inputs.pop("is_last")
        first_window = model_inputs.pop("first_window")
        last_window = model_inputs.pop("last_window")
        output = self.model(**model_inputs)
        result = {
            "offset_mapping": offsets,
            "num_tokens": model_inputs["attention_mask"].sum(-1),
            "entity_spans": output.entity_spans,
            "entity_scores": output.entity_scores,
            "relation_pairs": output.relation_pairs,
            "relation_probs": relation_probabilities(
                output.relation_logits, getattr(self.model.config, "relation_multi_label", False)
            ),
            "text": text,
            "is_last": is_last,
            "first_window": first_window,
            "last_window": last_window,
        }
        if output.get("sentence_logits") is not None:  # a model with a sentence gate
            result["sentence_probability"] = output.sentence_logits.float().softmax(-1)[:, 1]
        return result

    def postprocess(self, all_outputs):
        config = self.model.config
        text = next(o["text"] for o in all_outputs if o["text"] is not None)
        threshold = getattr(config, "relation_threshold", 0.5)
        scripts = getattr(config, "entity_scripts", None)
        kept: dict[tuple, dict] = {}
        relations: dict[tuple, tuple] = {}
        for output in all_outputs:
            entities, window_relations = window_predictions(
                output["offset_mapping"][0].tolist(),
                int(output["num_tokens"].reshape(-1)[0]),
                output["entity_spans"][0].tolist(),
                output["entity_scores"][0].tolist(),
                output["relation_pairs"][0].tolist(),
                output["relation_probs"][0].tolist(),
                config.entity_types,
                config.relation_labels,
                cut_left=not bool(output["first_window"].reshape(-1)[0]),
                cut_right=not bool(output["last_window"].reshape(-1)[0]),
                relation_threshold=threshold,
                sentence_probability=None
                if output.get("sentence_probability") is None
                else float(output["sentence_probability"].reshape(-1)[0]),
                sentence_threshold=getattr(config, "sentence_threshold", 0.5),
                sentence_gate_scope=getattr(config, "sentence_gate_scope", "all"),
                multi_label=getattr(config, "relation_multi_label", False),
                symmetric_relations=getattr(config, "symmetric_relations", None) or (),
            )
            keys = [(e["start"], e["end"], e["type"]) for e in entities]
            fits = script_filter([text[k[0] : k[1]] for k in keys], scripts)
            for key, entity, ok in zip(keys, entities, fits):
                if ok and (key not in kept or entity["centrality"] > kept[key]["centrality"]):
                    kept[key] = entity
            for head, tail, label, score in window_relations:
                if not (fits[head] and fits[tail]):
                    continue
                rel = (keys[head], keys[tail], label)
                if rel not in relations or score > relations[rel][0]:
                    relations[rel] = (score,)
        ordered = sorted(kept)
        entities = {
            key: {
                "type": key[2],
                "text": text[key[0] : key[1]],
                "start": key[0],
                "end": key[1],
                "score": kept[key]["score"],
            }
            for key in ordered
        }
        out_relations = []
        for (head, tail, label), (score,) in sorted(relations.items()):
            head_name, tail_name = relation_key(head[2], tail[2])
            out_relations.append(
                {
                    "type": config.relation_labels[label],
                    head_name: entities[head],
                    tail_name: entities[tail],
                    "score": score,
                }
            )
        return {"entities": [entities[k] for k in ordered], "relations": out_relations}


__all__ = ["AdeExtractionPipeline"]
