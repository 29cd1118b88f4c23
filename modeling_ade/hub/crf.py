"""A linear-chain conditional random field (CRF) layer, batch-first, with optional BIO constraints.

Hub code: this file is copied next to the model weights and executed through ``trust_remote_code``,
so it imports only ``torch``, the standard library and ``bio.py``, and does no I/O.

Shape names: ``B`` batch size, ``T`` sequence length, ``C`` number of tags, ``L`` the largest number
of active (``mask=True``) positions of a row in the batch.

Masks may have gaps anywhere (e.g. only the first sub-word of each word is active, so position 0,
``[CLS]``, is typically off). Each row is first *compacted*: its active positions are gathered to
the left, in order, and the chain runs over those positions only; inactive positions neither emit
nor break the chain. ``decode`` scatters the tags back to the original positions.

The partition function is computed by a scaled forward algorithm in probability space (one small
``(B, C) @ (C, C)`` product per step, renormalised every step), which is much faster than a
``logsumexp`` over ``(B, C, C)`` per step. Its accuracy is checked on the fly: when a step's
normaliser comes close to float underflow (below 1e-28, i.e. scores that disagree by about 64 nats),
the batch is recomputed with the exact log-space recursion (``logsumexp``), so the result is always
as accurate as the log-space algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .bio import parse_bio_label

__all__ = ["CONSTRAINT_PENALTY", "CRF", "bio_constraints"]

# Score given to a forbidden transition or start. Finite (not -inf): a tag that no allowed path
# reaches keeps finite scores and finite gradients (no ``-inf - -inf = nan``); representable in
# float16 (max 65504) and bfloat16, so the masked parameters can be built in half precision; and
# ``exp(-1e4)`` is exactly 0 in every float type, so forbidden paths add nothing to the partition
# function. The CRF computes in at least float32, so sums of several penalties cannot overflow.
CONSTRAINT_PENALTY = -1.0e4


def bio_constraints(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed starts and transitions of the BIO scheme for a tag list (index = tag id).

    Forbidden: starting with ``I-X``; ``O -> I-X``; ``B-X -> I-Y`` and ``I-X -> I-Y`` with ``Y != X``.
    Everything else is allowed (any tag may end a sequence).

    Args:
        labels: ``C`` tag names, each ``"O"``, ``"B-<type>"`` or ``"I-<type>"`` (e.g. the config's
            ``id2label`` values in id order).

    Returns:
        ``(allowed_start, allowed_transitions)``: bool tensors of shape ``(C,)`` and ``(C, C)``;
        ``allowed_transitions[i, j]`` says whether tag ``j`` may follow tag ``i``.

    Raises:
        ValueError: a label is not ``O``, ``B-<type>`` or ``I-<type>``.
    """
    prefixes: list[str] = []
    types: list[str] = []
    for index, label in enumerate(labels):
        try:
            prefix, entity_type = parse_bio_label(label)
        except ValueError:
            raise ValueError(f"label {index} is {label!r}, expected 'O', 'B-<type>' or 'I-<type>'") from None
        prefixes.append(prefix)
        types.append(entity_type)
    num_tags = len(prefixes)
    # shape: (C,)
    allowed_start = torch.tensor([prefix != "I" for prefix in prefixes], dtype=torch.bool)
    # shape: (C, C)
    allowed_transitions = torch.ones(num_tags, num_tags, dtype=torch.bool)
    for j in range(num_tags):
        if prefixes[j] == "I":
            for i in range(num_tags):
                allowed_transitions[i, j] = prefixes[i] != "O" and types[i] == types[j]
    return allowed_start, allowed_transitions


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags; batch-first; masks may have gaps.

    ``forward`` returns the log-likelihood of gold tag sequences (the training loss is
    ``-crf(emissions, tags, mask)``); ``decode`` returns the Viterbi tags as a ``(B, T)`` tensor.

    Args:
        num_tags: number of tags ``C``.
        allowed_transitions: optional bool tensor ``(C, C)``; ``False`` at ``[i, j]`` forbids tag
            ``j`` right after tag ``i`` (see :func:`bio_constraints`).
        allowed_start: optional bool tensor ``(C,)``; ``False`` forbids starting with that tag.

    Forbidden transitions and starts score :data:`CONSTRAINT_PENALTY`, in training and decoding
    alike: the log-likelihood is normalised over the allowed paths only, and ``decode`` never
    returns a forbidden path (while an allowed one exists). A gold path that breaks a constraint
    gets the penalty in its score (a log-likelihood near -1e4): clean the gold labels first.

    Attributes:
        start_transitions: ``Parameter (C,)``, score of starting with each tag.
        end_transitions: ``Parameter (C,)``, score of ending with each tag.
        transitions: ``Parameter (C, C)``, ``transitions[i, j]`` = score of tag ``i`` -> tag ``j``.
        allowed_transitions: bool buffer ``(C, C)``, or ``None``.
        allowed_start: bool buffer ``(C,)``, or ``None``.

    The constraint buffers are persistent (in the ``state_dict``), so loading a checkpoint restores
    them even when the module was first built on the meta device.
    """

    def __init__(
        self,
        num_tags: int,
        allowed_transitions: torch.Tensor | None = None,
        allowed_start: torch.Tensor | None = None,
    ) -> None:
        if not isinstance(num_tags, int) or isinstance(num_tags, bool) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive int, got {num_tags!r}")
        for name, value, shape in (
            ("allowed_transitions", allowed_transitions, (num_tags, num_tags)),
            ("allowed_start", allowed_start, (num_tags,)),
        ):
            if value is None:
                continue
            if not isinstance(value, torch.Tensor) or value.dtype != torch.bool:
                got = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"expected {name} to be a torch.bool tensor, got {got}")
            if tuple(value.shape) != shape:
                raise ValueError(f"expected {name} of shape {shape}, got {tuple(value.shape)}")
        # A meta tensor (``from_pretrained`` builds modules on the meta device) has no values to check.
        if allowed_start is not None and not allowed_start.is_meta and not bool(allowed_start.any()):
            raise ValueError("allowed_start forbids every tag: no sequence could start")
        super().__init__()
        self.num_tags = num_tags
        # An attribute rather than the module constant, so that TorchScript can compile ``_scores``.
        self.constraint_penalty = CONSTRAINT_PENALTY
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.register_buffer("allowed_transitions", allowed_transitions)
        self.register_buffer("allowed_start", allowed_start)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the three score parameters uniformly in ``[-0.1, 0.1]`` (as pytorch-crf)."""
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def extra_repr(self) -> str:
        constrained = self.allowed_transitions is not None or self.allowed_start is not None
        return f"num_tags={self.num_tags}, constrained={constrained}"

    def forward(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Log-likelihood of the gold tag sequences (the loss is its negative).

        Args:
            emissions: float ``(B, T, C)``, unnormalised tag scores (e.g. classifier logits).
            tags: long ``(B, T)``, gold tag ids. Read only where ``mask`` is ``True``, and there
                they must be in ``[0, C)``; values elsewhere (e.g. ``-100``) are ignored.
            mask: bool ``(B, T)``, ``True`` at the positions that form the chain; gaps allowed
                anywhere, including position 0. ``None`` means all ``True``.
            reduction: ``"mean"`` (over rows), ``"sum"``, ``"none"``, or ``"token_mean"`` (the
                sum divided by the number of active positions, at least 1).

        Returns:
            ``(B,)`` for ``reduction="none"``, else a scalar. float32, or float64 when the
            emissions or parameters are float64 (half-precision emissions are computed in
            float32). A row with no active position has log-likelihood 0 (and still counts as a
            row for ``"mean"``).
        """
        self._validate(emissions, tags, mask, reduction)
        batch_size, seq_len, num_tags = emissions.shape
        dtype = self._compute_dtype(emissions)
        if mask is None:
            mask = torch.ones(batch_size, seq_len, dtype=torch.bool, device=emissions.device)
        if batch_size == 0 or seq_len == 0:
            return self._reduce(
                torch.zeros(batch_size, dtype=dtype, device=emissions.device), mask, reduction
            )

        if torch.jit.is_scripting():
            llh = self._log_likelihood(emissions, tags, mask, dtype)
        else:
            # Autocast would run the small matrix products in half precision: keep float32.
            with torch.autocast(device_type=emissions.device.type, enabled=False):
                llh = self._log_likelihood(emissions, tags, mask, dtype)
        return self._reduce(llh, mask, reduction)

    def _log_likelihood(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        """Per-row log-likelihood ``(B,)`` of validated, non-empty inputs (see ``forward``)."""
        order, lengths, mask_c = _compact(mask)
        # shape: (B, L, C); zero on the padding slots
        emit = _gather_emissions(emissions, order, mask_c, dtype)
        # shape: (B, L); tag 0 on the padding slots (masked out of the score)
        gold = tags.gather(1, order).masked_fill(~mask_c, 0)
        start, transitions, end = self.constrained_scores(dtype)

        # shape: (B,)
        gold_score = _path_score(emit, gold, mask_c, lengths, start, transitions, end)
        # shape: (B,), ()
        log_partition, underflow = _log_partition_scaled(emit, mask_c, lengths, start, transitions, end)
        if bool(underflow):
            # shape: (B,)
            log_partition = _log_partition_exact(emit, lengths, start, transitions, end)
        # shape: (B,)
        return torch.where(lengths > 0, gold_score - log_partition, torch.zeros_like(gold_score))

    @torch.jit.export
    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor | None = None, pad_tag: int = -1
    ) -> torch.Tensor:
        """Viterbi decoding: the tags of the best path at every active position.

        Args:
            emissions: float ``(B, T, C)``, unnormalised tag scores.
            mask: bool ``(B, T)``, active positions (gaps allowed); ``None`` means all ``True``.
            pad_tag: value written at the inactive positions.

        Returns:
            long ``(B, T)``: the best path's tags at the active positions, in their original
            positions, and ``pad_tag`` elsewhere (a row with no active position is all
            ``pad_tag``). No gradient flows through it.
        """
        self._validate(emissions, None, mask, "none")
        batch_size, seq_len, num_tags = emissions.shape
        if mask is None:
            mask = torch.ones(batch_size, seq_len, dtype=torch.bool, device=emissions.device)
        # shape: (B, T)
        out = torch.full((batch_size, seq_len), pad_tag, dtype=torch.long, device=emissions.device)
        if batch_size == 0 or seq_len == 0:
            return out
        with torch.no_grad():
            dtype = self._compute_dtype(emissions)
            order, lengths, mask_c = _compact(mask)
            # shape: (B, L, C)
            emit = _gather_emissions(emissions, order, mask_c, dtype)
            start, transitions, end = self.constrained_scores(dtype)

            # Tag-major layout: the max over the previous tag reduces the outermost dimension of a
            # (C, C, B) tensor, which vectorises well (a max with indices does not, so the
            # backpointers are recomputed while backtracking, for the chosen tags only).
            # shape: (L, C, B)
            emit_by_slot = emit.permute(1, 2, 0).contiguous()
            # shape: (C, C, 1), indexed [previous, tag]
            transitions_3d = transitions.unsqueeze(2)
            # shape: (C, B); best score of a path ending in each tag
            score = start.unsqueeze(1) + emit_by_slot[0]
            scores = [score]
            for emit_step in emit_by_slot[1:].unbind(0):
                # (C, 1, B) + (C, C, 1) -> max over the previous tag; shape: (C, B)
                score = (score.unsqueeze(1) + transitions_3d).amax(dim=0) + emit_step
                scores.append(score)
            # shape: (L, C, B)
            stacked = torch.stack(scores, dim=0)
            # shape: (C, B); each row's scores at its last active slot
            last = stacked.gather(
                0, (lengths - 1).clamp(min=0).view(1, 1, -1).expand(1, num_tags, -1)
            ).squeeze(0)
            # shape: (B,)
            tag = (last + end.unsqueeze(1)).argmax(dim=0)
            path = [tag]
            # shape: (L, B)
            active = mask_c.t()
            for slot in range(stacked.size(0) - 1, 0, -1):
                # Best previous tag of the chosen tag; rows whose last active slot is below
                # ``slot`` keep their tag. shape: (B,)
                previous = (stacked[slot - 1] + transitions.index_select(1, tag)).argmax(dim=0)
                tag = torch.where(active[slot], previous, tag)
                path.append(tag)
            path.reverse()
            # shape: (B, L)
            best_path = torch.stack(path, dim=1).masked_fill(~mask_c, pad_tag)
            out.scatter_(1, order, best_path)
        return out

    def max_marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score of the best path through each (position, tag), over the chain of ``mask`` positions
        (forward and backward max-product recursions; constraints applied as in :meth:`decode`).

        Args:
            emissions: ``(B, T, C)`` float.
            mask: ``(B, T)`` bool; the chain runs over the ``True`` positions (gaps allowed).

        Returns:
            ``(B, T, C)`` in the compute dtype (at least float32): at a masked position ``t``, ``m_t(c)`` =
            the best score of a path over the row's chain whose tag at ``t`` is ``c`` (its max over ``c`` is
            the Viterbi score); 0 elsewhere. No gradient flows through it.
        """
        with torch.no_grad():
            dtype = self._compute_dtype(emissions)
            emissions = emissions.to(dtype)
            start, transitions, end = self.constrained_scores(dtype)
            batch_size, seq_len, num_tags = emissions.shape
            # shape: (B, 1)
            started = torch.zeros(batch_size, 1, dtype=torch.bool, device=emissions.device)
            # Best score of a path over the chain up to the last masked position <= t, ending in each tag.
            # shape: (B, C)
            forward_score = start.expand(batch_size, num_tags)
            forward_scores = []
            for t in range(seq_len):
                # shape: (B, 1)
                active = mask[:, t : t + 1]
                # (B, C, 1) + (C, C) -> max over the previous tag; shape: (B, C)
                step = (forward_score.unsqueeze(2) + transitions).amax(dim=1)
                step = torch.where(started, step, start) + emissions[:, t]
                forward_score = torch.where(active, step, forward_score)
                started = started | active
                forward_scores.append(forward_score)
            # Best score of the rest of the chain after position t, given the tag at the last masked
            # position <= t. shape: (B, C)
            backward_score = end.expand(batch_size, num_tags)
            marginals = [emissions.new_zeros(batch_size, num_tags)] * seq_len
            for t in range(seq_len - 1, -1, -1):
                # shape: (B, 1)
                active = mask[:, t : t + 1]
                marginals[t] = torch.where(active, forward_scores[t] + backward_score, 0.0)
                # (C, C) + (B, 1, C) -> max over the next tag; shape: (B, C)
                step = (transitions + (emissions[:, t] + backward_score).unsqueeze(1)).amax(dim=2)
                backward_score = torch.where(active, step, backward_score)
            # shape: (B, T, C)
            return torch.stack(marginals, dim=1)

    def _validate(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor | None,
        mask: torch.Tensor | None,
        reduction: str,
    ) -> None:
        """Raise ``ValueError`` (expected vs got) on bad shapes, dtypes, tag values or reduction."""
        if emissions.dim() != 3:
            raise ValueError(
                f"expected emissions of shape (batch, seq_len, num_tags), got {emissions.dim()} "
                f"dimensions: {list(emissions.shape)}"
            )
        if not emissions.is_floating_point():
            raise ValueError(f"expected emissions of a floating-point dtype, got {emissions.dtype}")
        if emissions.size(2) != self.num_tags:
            raise ValueError(
                f"expected emissions.shape[2] == num_tags == {self.num_tags}, got {emissions.size(2)}"
            )
        if mask is not None:
            if mask.dtype != torch.bool:
                raise ValueError(f"expected mask of dtype torch.bool, got {mask.dtype}")
            if mask.shape != emissions.shape[:2]:
                raise ValueError(
                    f"expected mask of shape {list(emissions.shape[:2])} (batch, seq_len of emissions), "
                    f"got {list(mask.shape)}"
                )
        if tags is not None:
            if tags.dtype != torch.long:
                raise ValueError(f"expected tags of dtype torch.int64, got {tags.dtype}")
            if tags.shape != emissions.shape[:2]:
                raise ValueError(
                    f"expected tags of shape {list(emissions.shape[:2])} (batch, seq_len of emissions), "
                    f"got {list(tags.shape)}"
                )
            out_of_range = (tags < 0) | (tags >= self.num_tags)
            if mask is not None:
                out_of_range = out_of_range & mask
            if bool(out_of_range.any()):
                raise ValueError(
                    f"expected tags in [0, {self.num_tags}) at active (mask=True) positions, got "
                    f"{int(out_of_range.sum())} outside, e.g. {int(tags[out_of_range][0])}"
                )
        if reduction not in ["mean", "sum", "none", "token_mean"]:
            raise ValueError(f"expected reduction 'mean', 'sum', 'none' or 'token_mean', got '{reduction}'")

    def _compute_dtype(self, emissions: torch.Tensor) -> torch.dtype:
        """float32, or float64 when the emissions or the parameters are float64."""
        dtype = torch.promote_types(emissions.dtype, self.transitions.dtype)
        return torch.promote_types(dtype, torch.float32)

    def constrained_scores(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Start ``(C,)``, transition ``(C, C)`` (``[previous, next]``) and end ``(C,)`` scores in ``dtype``,
        forbidden starts / transitions set to the constraint penalty: the scores every path is scored by."""
        start = self.start_transitions.to(dtype)
        transitions = self.transitions.to(dtype)
        allowed_start = self.allowed_start
        if allowed_start is not None:
            start = start.masked_fill(~allowed_start, self.constraint_penalty)
        allowed_transitions = self.allowed_transitions
        if allowed_transitions is not None:
            transitions = transitions.masked_fill(~allowed_transitions, self.constraint_penalty)
        return start, transitions, self.end_transitions.to(dtype)

    def _reduce(self, llh: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
        """Apply ``reduction`` to the per-row log-likelihoods ``llh (B,)``."""
        if reduction == "none":
            return llh
        if reduction == "sum":
            return llh.sum()
        if reduction == "mean":
            return llh.mean()
        # token_mean
        return llh.sum() / mask.sum().clamp(min=1).to(llh.dtype)


def _compact(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, the active positions first (in order), trimmed to the longest row.

    Args:
        mask: bool ``(B, T)`` with ``B, T >= 1``.

    Returns:
        ``order``: long ``(B, L)``, the original position of each compacted slot (slots past a
        row's length point at inactive positions); ``lengths``: long ``(B,)``, active positions per
        row; ``mask_c``: bool ``(B, L)``, ``True`` on each row's first ``lengths[b]`` slots.
        ``L = max(1, lengths.max())``, except under ``torch.export``, where ``L = T`` (the
        trimmed length depends on the data, which an exported graph cannot).
    """
    # shape: (B,)
    lengths = mask.sum(dim=1)
    if torch.jit.is_scripting():
        exporting = False
    else:
        exporting = torch.compiler.is_exporting()
    longest = mask.size(1) if exporting else max(int(lengths.max()), 1)
    # A stable sort of 0 (active) before 1 (inactive) keeps each group in position order.
    # shape: (B, L)
    order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, :longest]
    # shape: (B, L)
    mask_c = torch.arange(longest, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
    return order, lengths, mask_c


def _gather_emissions(
    emissions: torch.Tensor, order: torch.Tensor, mask_c: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Compacted emissions ``(B, L, C)`` in ``dtype``, zero on padding slots (kept finite)."""
    # shape: (B, L, C)
    emit = emissions.gather(1, order.unsqueeze(2).expand(-1, -1, emissions.size(2))).to(dtype)
    return emit.masked_fill(~mask_c.unsqueeze(2), 0.0)


def _at_last_slot(states: list[torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
    """Each row's state at its last active slot: ``states`` L tensors ``(B, C)`` -> ``(B, C)``."""
    # shape: (B, L, C)
    stacked = torch.stack(states, dim=1)
    # shape: (B, 1, C)
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, stacked.size(2))
    return stacked.gather(1, index).squeeze(1)


def _path_score(
    emit: torch.Tensor,
    tags: torch.Tensor,
    mask_c: torch.Tensor,
    lengths: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """Score ``(B,)`` of the tag paths ``tags (B, L)`` on compacted emissions ``emit (B, L, C)``."""
    num_tags = emit.size(2)
    # shape: (B,); padding slots emit 0
    emit_score = emit.gather(2, tags.unsqueeze(2)).squeeze(2).sum(1)
    # shape: (B, L - 1); flat index of (previous tag, tag) in the (C, C) transitions
    pairs = tags[:, :-1] * num_tags + tags[:, 1:]
    transition_score = torch.take(transitions, pairs).masked_fill(~mask_c[:, 1:], 0.0).sum(1)
    # shape: (B,)
    last = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
    return start[tags[:, 0]] + emit_score + transition_score + end[last]


def _log_partition_scaled(
    emit: torch.Tensor,
    mask_c: torch.Tensor,
    lengths: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log partition function by the scaled forward algorithm, and an underflow flag.

    The state is a probability vector over tags, renormalised each step; the log of each step's
    normaliser is accumulated. Transitions are shifted per column and emissions per step so every
    exponential lies in ``[0, 1]`` (no overflow). Terms below the smallest normal float are lost,
    which only matters when a normaliser gets close to it: then the flag is set.

    Args:
        emit: ``(B, L, C)`` compacted emissions (finite on padding slots).
        mask_c: bool ``(B, L)``, left-aligned active slots.
        lengths: long ``(B,)``, active slots per row.
        start, transitions, end: ``(C,)``, ``(C, C)``, ``(C,)`` scores.

    Returns:
        ``(B,)`` log partition (meaningless for rows with no active slot), and a bool scalar
        tensor, ``True`` if the result may be inaccurate (use :func:`_log_partition_exact`).
    """
    # Literals, not module constants, so that TorchScript can compile this function. ``tiny``:
    # the smallest normal number; ``threshold``: finfo.tiny / finfo.eps * 1e3, so the mass lost to
    # underflow stays below eps relative to any normaliser above it.
    if emit.dtype == torch.float64:
        tiny, threshold = 2.2250738585072014e-308, 1e-289
    else:
        tiny, threshold = 1.1754943508222875e-38, 1e-28
    # The shifts cancel out of the result, so they are detached: no gradient work for them.
    # shape: (C,)
    column_max = transitions.detach().amax(dim=0)
    # shape: (C, C); in [0, 1], a 1 in every column
    transitions_exp = torch.exp(transitions - column_max)
    # shape: (B, L - 1, C)
    shifted = emit[:, 1:] + column_max
    # shape: (B, L - 1, 1)
    shift = shifted.detach().amax(dim=2, keepdim=True)
    # shape: (B, L - 1, C); in [0, 1]
    emit_exp = torch.exp(shifted - shift)

    # shape: (B, C)
    first = start + emit[:, 0]
    # shape: (B, 1)
    first_shift = first.detach().amax(dim=1, keepdim=True)
    # shape: (B, C)
    prob = torch.exp(first - first_shift)
    # shape: (B, 1); >= 1
    first_norm = prob.sum(dim=1, keepdim=True)
    prob = prob / first_norm
    probs = [prob]
    norms: list[torch.Tensor] = []
    for weights in emit_exp.unbind(1):
        # shape: (B, C)
        unnormalised = (prob @ transitions_exp) * weights
        # shape: (B, 1); ``+ tiny`` keeps a row that underflows finite (and flagged below)
        norm = unnormalised.sum(dim=1, keepdim=True) + tiny
        prob = unnormalised / norm
        probs.append(prob)
        norms.append(norm)

    end_shift = end.detach().amax()
    # shape: (B,)
    tail = _at_last_slot(probs, lengths) @ torch.exp(end - end_shift)
    # shape: (B,)
    log_partition = (first_shift + first_norm.log()).squeeze(1) + (tail + tiny).log() + end_shift
    underflow = ((tail < threshold) & (lengths > 0)).any()
    if len(norms) > 0:
        # shape: (B, L - 1)
        steps = torch.cat(norms, dim=1)
        active = mask_c[:, 1:]
        log_partition = log_partition + (steps.log() + shift.squeeze(2)).masked_fill(~active, 0.0).sum(1)
        underflow = underflow | ((steps < threshold) & active).any()
    return log_partition, underflow


def _log_partition_exact(
    emit: torch.Tensor,
    lengths: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """Log partition function ``(B,)`` by the log-space forward algorithm (``logsumexp``).

    Same arguments as :func:`_log_partition_scaled`; slower, accurate for any score range.
    """
    # Tag-major layout, as in ``CRF.decode``: reducing the outermost dimension is faster.
    # shape: (L, C, B)
    emit_by_slot = emit.permute(1, 2, 0)
    # shape: (C, C, 1), indexed [previous, tag]
    transitions_3d = transitions.unsqueeze(2)
    # shape: (C, B)
    alpha = start.unsqueeze(1) + emit_by_slot[0]
    alphas = [alpha]
    for emit_step in emit_by_slot[1:].unbind(0):
        # (C, 1, B) + (C, C, 1) -> logsumexp over the previous tag; shape: (C, B)
        alpha = torch.logsumexp(alpha.unsqueeze(1) + transitions_3d, dim=0) + emit_step
        alphas.append(alpha)
    # shape: (L, C, B)
    stacked = torch.stack(alphas, dim=0)
    # shape: (C, B)
    last = stacked.gather(0, (lengths - 1).clamp(min=0).view(1, 1, -1).expand(1, emit.size(2), -1)).squeeze(0)
    # shape: (B,)
    return torch.logsumexp(last + end.unsqueeze(1), dim=0)
