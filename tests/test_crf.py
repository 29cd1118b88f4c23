"""CRF layer: likelihood and Viterbi against brute force over all tag paths, BIO constraints,
masks with gaps, gradients, reductions, pinned error messages, TorchScript and torch.export."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest
import torch

from modeling_ade.hub import crf as crf_module
from modeling_ade.hub.crf import CONSTRAINT_PENALTY, CRF, bio_constraints

BIO_LABELS = ["O", "B-Drug", "I-Drug", "B-AE", "I-AE"]


# --------------------------------------------------------------------------------- helpers
def make_crf(num_tags: int, seed: int, constrained_labels: list[str] | None = None) -> CRF:
    """A float64 CRF with non-trivial random scores (the default init is nearly uniform)."""
    generator = torch.Generator().manual_seed(seed)
    if constrained_labels is None:
        crf = CRF(num_tags)
    else:
        allowed_start, allowed_transitions = bio_constraints(constrained_labels)
        crf = CRF(num_tags, allowed_transitions=allowed_transitions, allowed_start=allowed_start)
    crf = crf.double()
    with torch.no_grad():
        for parameter in (crf.start_transitions, crf.end_transitions, crf.transitions):
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return crf


def gap_masks(batch: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """Masks with gaps: row 0 all on, row 1 first position off, row 2 all off, others random."""
    mask = torch.rand(batch, seq_len, generator=generator) < 0.6
    mask[0] = True
    mask[1] = torch.tensor([(i % 3) != 0 for i in range(seq_len)])  # off at 0, 3: first off + gap
    mask[2] = False
    return mask


def path_score(crf: CRF, emissions: torch.Tensor, path: tuple[int, ...]) -> float:
    """Unconstrained score of ``path`` on active-only emissions ``(n, C)`` (n >= 1)."""
    start, transitions, end = (
        p.detach() for p in (crf.start_transitions, crf.transitions, crf.end_transitions)
    )
    score = start[path[0]] + emissions[0, path[0]]
    for k in range(1, len(path)):
        score = score + transitions[path[k - 1], path[k]] + emissions[k, path[k]]
    return float(score + end[path[-1]])


def is_allowed(path: tuple[int, ...], allowed_start: torch.Tensor, allowed_transitions: torch.Tensor) -> bool:
    if not bool(allowed_start[path[0]]):
        return False
    return all(bool(allowed_transitions[a, b]) for a, b in itertools.pairwise(path))


def brute_force(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor, allowed=None):
    """Per row: (log partition, best path) over every tag path of its active positions.

    ``allowed``: optional ``(allowed_start, allowed_transitions)``; then only allowed paths count.
    A row with no active position gives ``(None, ())``.
    """
    results = []
    for row in range(emissions.size(0)):
        active = emissions[row][mask[row]]
        if active.size(0) == 0:
            results.append((None, ()))
            continue
        scored = []
        for path in itertools.product(range(crf.num_tags), repeat=active.size(0)):
            if allowed is None or is_allowed(path, *allowed):
                scored.append((path_score(crf, active, path), path))
        log_partition = torch.logsumexp(torch.tensor([s for s, _ in scored], dtype=torch.float64), 0)
        best = max(scored, key=lambda item: item[0])[1]
        results.append((float(log_partition), best))
    return results


def bio_violations(tags: list[int], labels: list[str]) -> list[str]:
    """Human-readable BIO violations of a tag sequence (empty if valid)."""
    names = [labels[t] for t in tags]
    problems = []
    for k, name in enumerate(names):
        if not name.startswith("I-"):
            continue
        previous = names[k - 1] if k > 0 else None
        if previous is None:
            problems.append(f"starts with {name}")
        elif previous == "O" or previous[2:] != name[2:]:
            problems.append(f"{previous} -> {name} at {k}")
    return problems


# ---------------------------------------------------------------- brute force, unconstrained
@pytest.mark.parametrize("num_tags", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_log_likelihood_and_viterbi_match_brute_force(num_tags: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(100 + seed)
    batch, seq_len = 8, 5
    crf = make_crf(num_tags, seed)
    emissions = torch.randn(batch, seq_len, num_tags, generator=generator, dtype=torch.float64)
    mask = gap_masks(batch, seq_len, generator)
    tags = torch.randint(num_tags, (batch, seq_len), generator=generator)
    tags[~mask] = -100  # ignored at inactive positions

    llh = crf(emissions, tags, mask, reduction="none")
    decoded = crf.decode(emissions, mask)
    for row, (log_partition, best) in enumerate(brute_force(crf, emissions, mask)):
        if log_partition is None:
            assert llh[row].item() == 0.0
            assert decoded[row].tolist() == [-1] * seq_len
            continue
        gold = tuple(tags[row][mask[row]].tolist())
        expected = path_score(crf, emissions[row][mask[row]], gold) - log_partition
        assert llh[row].item() == pytest.approx(expected, abs=1e-9)
        assert tuple(decoded[row][mask[row]].tolist()) == best
        assert (decoded[row][~mask[row]] == -1).all()


def test_probabilities_of_all_paths_sum_to_one() -> None:
    crf = make_crf(3, seed=7)
    emissions = torch.randn(1, 4, 3, dtype=torch.float64)
    mask = torch.tensor([[False, True, True, True]])
    paths = torch.tensor(list(itertools.product(range(3), repeat=3)))
    tags = torch.cat([torch.full((len(paths), 1), -100), paths], dim=1)
    llh = crf(emissions.expand(len(paths), -1, -1), tags, mask.expand(len(paths), -1), reduction="none")
    assert llh.exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def test_gaps_equal_the_compacted_sequence() -> None:
    crf = make_crf(4, seed=3)
    emissions = torch.randn(1, 7, 4, dtype=torch.float64)
    tags = torch.randint(4, (1, 7))
    mask = torch.tensor([[False, True, False, False, True, True, False]])
    compact = mask[0].nonzero().squeeze(1)
    with_gaps = crf(emissions, tags, mask)
    compacted = crf(emissions[:, compact], tags[:, compact])
    assert with_gaps.item() == pytest.approx(compacted.item(), abs=1e-12)
    assert crf.decode(emissions, mask)[0, compact].tolist() == crf.decode(emissions[:, compact])[0].tolist()


def test_inactive_positions_do_not_matter() -> None:
    crf = make_crf(3, seed=4)
    generator = torch.Generator().manual_seed(4)
    emissions = torch.randn(4, 6, 3, generator=generator, dtype=torch.float64)
    mask = gap_masks(4, 6, generator)
    tags = torch.randint(3, (4, 6), generator=generator)
    changed_emissions = torch.where(mask.unsqueeze(2), emissions, torch.full_like(emissions, 1e6))
    changed_tags = tags.masked_fill(~mask, -100)
    assert torch.equal(crf(emissions, tags, mask, "none"), crf(changed_emissions, changed_tags, mask, "none"))
    assert torch.equal(crf.decode(emissions, mask), crf.decode(changed_emissions, mask))


def test_empty_rows_and_empty_sequences() -> None:
    crf = CRF(3)
    emissions = torch.randn(2, 4, 3, requires_grad=True)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    llh = crf(emissions, torch.zeros(2, 4, dtype=torch.long), mask, reduction="none")
    assert llh.tolist() == [0.0, 0.0]
    llh.sum().backward()
    assert torch.isfinite(emissions.grad).all() and (emissions.grad == 0).all()
    assert crf.decode(emissions, mask, pad_tag=-7).eq(-7).all()
    no_steps = torch.randn(2, 0, 3)
    assert crf(no_steps, torch.zeros(2, 0, dtype=torch.long), reduction="none").tolist() == [0.0, 0.0]
    assert crf.decode(no_steps).shape == (2, 0)


# ----------------------------------------------------------------------- BIO constraints
def test_bio_constraints_matrix() -> None:
    allowed_start, allowed_transitions = bio_constraints(BIO_LABELS)
    assert allowed_start.tolist() == [True, True, False, True, False]
    #                        to: O      B-Drug I-Drug B-AE   I-AE
    expected = [
        [True, True, False, True, False],  # from O
        [True, True, True, True, False],  # from B-Drug
        [True, True, True, True, False],  # from I-Drug
        [True, True, False, True, True],  # from B-AE
        [True, True, False, True, True],  # from I-AE
    ]
    assert allowed_transitions.tolist() == expected
    assert allowed_start.dtype == allowed_transitions.dtype == torch.bool


def test_bio_constraints_rejects_other_schemes() -> None:
    with pytest.raises(
        ValueError, match=re.escape("label 2 is 'E-Drug', expected 'O', 'B-<type>' or 'I-<type>'")
    ):
        bio_constraints(["O", "B-Drug", "E-Drug"])


def test_constrained_decoding_never_emits_invalid_bio() -> None:
    labels = BIO_LABELS
    allowed_start, allowed_transitions = bio_constraints(labels)
    constrained = CRF(len(labels), allowed_transitions=allowed_transitions, allowed_start=allowed_start)
    free = CRF(len(labels))
    free.load_state_dict(constrained.state_dict(), strict=False)
    generator = torch.Generator().manual_seed(0)
    # Emissions that strongly favour I- tags, so unconstrained decoding breaks BIO often.
    emissions = 4 * torch.randn(400, 12, len(labels), generator=generator)
    emissions[:, :, [2, 4]] += 2.0
    mask = torch.rand(400, 12, generator=generator) < 0.7
    mask[:, 0] = False
    decoded = constrained.decode(emissions, mask)
    free_invalid = 0
    free_decoded = free.decode(emissions, mask)
    for row in range(400):
        assert bio_violations(decoded[row][mask[row]].tolist(), labels) == [], row
        free_invalid += bool(bio_violations(free_decoded[row][mask[row]].tolist(), labels))
    assert free_invalid > 100  # the check has teeth


def test_constrained_log_likelihood_and_viterbi_match_brute_force_over_allowed_paths() -> None:
    labels = ["O", "B-A", "I-A", "I-B"]  # I-B is unreachable: no B-B
    crf = make_crf(len(labels), seed=5, constrained_labels=labels)
    allowed = bio_constraints(labels)
    generator = torch.Generator().manual_seed(5)
    batch, seq_len = 5, 5
    emissions = torch.randn(batch, seq_len, len(labels), generator=generator, dtype=torch.float64)
    emissions[..., 2:] += 1.5  # favour the I- tags
    mask = gap_masks(batch, seq_len, generator)
    llh_rows, decoded = [], crf.decode(emissions, mask)
    for row, (log_partition, best) in enumerate(brute_force(crf, emissions, mask, allowed)):
        if log_partition is None:
            continue
        assert is_allowed(best, *allowed)
        assert tuple(decoded[row][mask[row]].tolist()) == best
        # every allowed gold path of this row
        active = emissions[row][mask[row]]
        for path in itertools.product(range(len(labels)), repeat=active.size(0)):
            if not is_allowed(path, *allowed):
                continue
            tags = torch.full((1, seq_len), -100)
            tags[0, mask[row]] = torch.tensor(path)
            llh = crf(emissions[row : row + 1], tags, mask[row : row + 1], reduction="sum")
            expected = path_score(crf, active, path) - log_partition
            assert llh.item() == pytest.approx(expected, abs=1e-9)
            llh_rows.append(llh.item())
    assert len(llh_rows) > 20


def test_forbidden_gold_path_gets_the_penalty_and_forbidden_entries_no_gradient() -> None:
    allowed_start, allowed_transitions = bio_constraints(BIO_LABELS)
    crf = CRF(5, allowed_transitions=allowed_transitions, allowed_start=allowed_start)
    emissions = torch.randn(1, 3, 5)
    invalid = torch.tensor([[0, 2, 2]])  # O -> I-Drug
    assert crf(emissions, invalid).item() < CONSTRAINT_PENALTY / 2
    valid = torch.tensor([[0, 1, 2]])
    loss = -crf(emissions, valid)
    loss.backward()
    assert torch.isfinite(loss)
    assert (crf.transitions.grad[~allowed_transitions] == 0).all()
    assert (crf.start_transitions.grad[~allowed_start] == 0).all()


def test_constraint_penalty_is_safe_in_half_precision() -> None:
    for dtype in (torch.float16, torch.bfloat16):
        value = torch.tensor(CONSTRAINT_PENALTY, dtype=dtype)
        assert torch.isfinite(value) and value.float().item() == pytest.approx(CONSTRAINT_PENALTY, rel=1e-2)
        assert torch.exp(value.float()).item() == 0.0


def test_constraint_buffers_are_saved_and_loaded() -> None:
    allowed_start, allowed_transitions = bio_constraints(BIO_LABELS)
    crf = CRF(5, allowed_transitions=allowed_transitions, allowed_start=allowed_start)
    state = crf.state_dict()
    assert torch.equal(state["allowed_transitions"], allowed_transitions)
    assert torch.equal(state["allowed_start"], allowed_start)
    with torch.device("meta"):
        fresh = CRF(5, allowed_transitions=allowed_transitions, allowed_start=allowed_start)
    fresh.load_state_dict(state, assign=True)
    emissions = torch.randn(2, 4, 5)
    assert torch.equal(fresh.decode(emissions), crf.decode(emissions))
    assert set(CRF(5).state_dict()) == {"start_transitions", "end_transitions", "transitions"}


# ------------------------------------------------------------------ numerics and gradients
def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    crf = CRF(4)
    emissions = torch.randn(3, 6, 4, requires_grad=True)
    mask = torch.tensor([[0, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    loss = -crf(emissions, torch.randint(4, (3, 6)), mask)
    loss.backward()
    for name, parameter in crf.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    assert (emissions.grad[~mask] == 0).all() and (emissions.grad[mask] != 0).any()


@pytest.mark.parametrize("constrained", [False, True])
def test_gradcheck(constrained: bool) -> None:
    labels = ["O", "B-A", "I-A"]
    crf = make_crf(3, seed=2, constrained_labels=labels if constrained else None)
    generator = torch.Generator().manual_seed(2)
    emissions = torch.randn(3, 4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    tags = torch.tensor([[-100, 0, 1, 2], [1, -100, 0, -100], [0, 1, 2, 2]])
    mask = tags != -100
    names = [name for name, _ in crf.named_parameters()]
    parameters = tuple(p.detach().clone().requires_grad_() for _, p in crf.named_parameters())

    def log_likelihood(emissions: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(
            crf, dict(zip(names, values, strict=True)), (emissions, tags, mask), {"reduction": "none"}
        )

    assert torch.autograd.gradcheck(log_likelihood, (emissions, *parameters))


def test_extreme_scores_fall_back_to_the_exact_algorithm() -> None:
    """Transitions and emissions that disagree by hundreds of nats underflow the scaled algorithm;
    its flag hands over to the exact one."""
    torch.manual_seed(0)
    crf = CRF(4)
    with torch.no_grad():
        crf.transitions.copy_(-200 * (1 - torch.eye(4)) + torch.rand(4, 4))  # staying is cheap
    emissions = torch.rand(3, 5, 4)
    emissions[:, torch.arange(5), torch.arange(5) % 4] += 150  # ... but emissions want a new tag
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 0, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    tags = torch.randint(4, (3, 5))
    order, lengths, mask_c = crf_module._compact(mask)
    emit = crf_module._gather_emissions(emissions, order, mask_c, torch.float32)
    start, transitions, end = crf.constrained_scores(torch.float32)
    _, underflow = crf_module._log_partition_scaled(emit, mask_c, lengths, start, transitions, end)
    assert bool(underflow)

    llh = crf(emissions, tags, mask, reduction="none")
    crf64 = CRF(4).double()
    crf64.load_state_dict(crf.state_dict())
    for row, (log_partition, _) in enumerate(brute_force(crf64, emissions.double(), mask)):
        gold = tuple(tags[row][mask[row]].tolist())
        expected = path_score(crf64, emissions[row][mask[row]].double(), gold) - log_partition
        assert llh[row].item() == pytest.approx(expected, rel=1e-5, abs=1e-3)
    emissions.requires_grad_(True)
    (-crf(emissions, tags, mask)).backward()
    assert torch.isfinite(emissions.grad).all() and torch.isfinite(crf.transitions.grad).all()


def test_scaled_and_exact_partition_functions_agree() -> None:
    labels = BIO_LABELS
    allowed_start, allowed_transitions = bio_constraints(labels)
    for crf in (CRF(5), CRF(5, allowed_transitions=allowed_transitions, allowed_start=allowed_start)):
        with torch.no_grad():
            crf.transitions.normal_(0, 3)
        emissions = 10 * torch.randn(8, 30, 5)
        mask = torch.rand(8, 30) < 0.8
        order, lengths, mask_c = crf_module._compact(mask)
        emit = crf_module._gather_emissions(emissions, order, mask_c, torch.float32)
        start, transitions, end = crf.constrained_scores(torch.float32)
        scaled, underflow = crf_module._log_partition_scaled(emit, mask_c, lengths, start, transitions, end)
        exact = crf_module._log_partition_exact(emit, lengths, start, transitions, end)
        assert not bool(underflow)
        torch.testing.assert_close(scaled, exact, rtol=1e-5, atol=1e-4)


def test_half_precision_emissions_are_computed_in_float32() -> None:
    torch.manual_seed(0)
    crf = CRF(5)
    emissions = torch.randn(2, 6, 5)
    tags = torch.randint(5, (2, 6))
    reference = crf(emissions, tags, reduction="none")
    for dtype in (torch.float16, torch.bfloat16):
        llh = crf(emissions.to(dtype), tags, reduction="none")
        assert llh.dtype == torch.float32
        torch.testing.assert_close(llh, reference, rtol=2e-2, atol=5e-2)
        assert crf.decode(emissions.to(dtype)).dtype == torch.long


def test_autocast_does_not_lower_the_precision() -> None:
    """Under mixed precision the model's forward runs in autocast; the CRF keeps float32."""
    torch.manual_seed(0)
    crf = CRF(21)
    emissions = torch.randn(4, 30, 21)
    tags = torch.randint(21, (4, 30))
    reference = crf(emissions, tags, reduction="none")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        llh = crf(emissions, tags, reduction="none")
        decoded = crf.decode(emissions)
    assert llh.dtype == torch.float32
    torch.testing.assert_close(llh, reference, rtol=1e-6, atol=1e-5)
    assert torch.equal(decoded, crf.decode(emissions))


# ---------------------------------------------------------------------------- reductions
def test_reductions() -> None:
    torch.manual_seed(0)
    crf = CRF(3)
    emissions = torch.randn(3, 4, 3)
    tags = torch.randint(3, (3, 4))
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    per_row = crf(emissions, tags, mask, reduction="none")
    assert per_row.shape == (3,)
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="sum"), per_row.sum())
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="mean"), per_row.sum() / 3)
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="token_mean"), per_row.sum() / 6)
    torch.testing.assert_close(crf(emissions, tags, mask), per_row.mean())  # default: mean


# ------------------------------------------------------------------------ error messages
def _errors_case():
    crf = CRF(3)
    emissions = torch.randn(2, 4, 3)
    tags = torch.zeros(2, 4, dtype=torch.long)
    mask = torch.ones(2, 4, dtype=torch.bool)
    return crf, emissions, tags, mask


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda e, t, m: (e[0], t, m),
            "expected emissions of shape (batch, seq_len, num_tags), got 2 dimensions: [4, 3]",
        ),
        (
            lambda e, t, m: (e.long(), t, m),
            "expected emissions of a floating-point dtype, got torch.int64",
        ),
        (
            lambda e, t, m: (e[..., :2], t, m),
            "expected emissions.shape[2] == num_tags == 3, got 2",
        ),
        (
            lambda e, t, m: (e, t, m.long()),
            "expected mask of dtype torch.bool, got torch.int64",
        ),
        (
            lambda e, t, m: (e, t, m[:, :3]),
            "expected mask of shape [2, 4] (batch, seq_len of emissions), got [2, 3]",
        ),
        (
            lambda e, t, m: (e, t.int(), m),
            "expected tags of dtype torch.int64, got torch.int32",
        ),
        (
            lambda e, t, m: (e, t[:1], m),
            "expected tags of shape [2, 4] (batch, seq_len of emissions), got [1, 4]",
        ),
        (
            lambda e, t, m: (e, t.index_fill(1, torch.tensor([2]), -100), m),
            "expected tags in [0, 3) at active (mask=True) positions, got 2 outside, e.g. -100",
        ),
        (
            lambda e, t, m: (e, t.index_fill(1, torch.tensor([1]), 3), m),
            "expected tags in [0, 3) at active (mask=True) positions, got 2 outside, e.g. 3",
        ),
    ],
)
def test_forward_errors(change, message: str) -> None:
    crf, emissions, tags, mask = _errors_case()
    emissions, tags, mask = change(emissions, tags, mask)
    with pytest.raises(ValueError, match=re.escape(message)):
        crf(emissions, tags, mask)


def test_decode_and_reduction_errors() -> None:
    crf, emissions, tags, mask = _errors_case()
    with pytest.raises(
        ValueError, match=re.escape("expected reduction 'mean', 'sum', 'none' or 'token_mean', got 'avg'")
    ):
        crf(emissions, tags, mask, reduction="avg")
    with pytest.raises(ValueError, match=re.escape("expected mask of dtype torch.bool, got torch.uint8")):
        crf.decode(emissions, mask.to(torch.uint8))
    with pytest.raises(ValueError, match=re.escape("expected emissions.shape[2] == num_tags == 3, got 5")):
        crf.decode(torch.randn(2, 4, 5))


def test_constructor_errors() -> None:
    allowed_start, allowed_transitions = bio_constraints(BIO_LABELS)
    with pytest.raises(ValueError, match=re.escape("num_tags must be a positive int, got 0")):
        CRF(0)
    with pytest.raises(
        ValueError, match=re.escape("expected allowed_transitions of shape (4, 4), got (5, 5)")
    ):
        CRF(4, allowed_transitions=allowed_transitions)
    with pytest.raises(
        ValueError, match=re.escape("expected allowed_start to be a torch.bool tensor, got torch.int64")
    ):
        CRF(5, allowed_start=allowed_start.long())
    with pytest.raises(
        ValueError, match=re.escape("allowed_start forbids every tag: no sequence could start")
    ):
        CRF(5, allowed_start=torch.zeros(5, dtype=torch.bool))


# ------------------------------------------------------------------- export and Hub rule
def test_decode_returns_a_tensor_in_original_positions() -> None:
    crf = CRF(3)
    emissions = torch.randn(2, 5, 3)
    mask = torch.tensor([[0, 1, 1, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    decoded = crf.decode(emissions, mask, pad_tag=-100)
    assert isinstance(decoded, torch.Tensor) and decoded.dtype == torch.long and decoded.shape == (2, 5)
    assert (decoded[~mask] == -100).all() and ((decoded[mask] >= 0) & (decoded[mask] < 3)).all()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript() -> None:
    allowed_start, allowed_transitions = bio_constraints(BIO_LABELS)
    crf = CRF(5, allowed_transitions=allowed_transitions, allowed_start=allowed_start)
    scripted = torch.jit.script(crf)
    emissions = torch.randn(3, 6, 5)
    mask = torch.rand(3, 6) < 0.7
    mask[1] = False
    tags = torch.zeros(3, 6, dtype=torch.long)
    assert torch.equal(scripted.decode(emissions, mask), crf.decode(emissions, mask))
    torch.testing.assert_close(scripted(emissions, tags, mask, "none"), crf(emissions, tags, mask, "none"))


def test_torch_export_of_decode() -> None:
    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            allowed_start, allowed_transitions = bio_constraints(BIO_LABELS)
            self.crf = CRF(5, allowed_transitions=allowed_transitions, allowed_start=allowed_start)

        def forward(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.crf.decode(emissions, mask)

    decoder = Decoder()
    generator = torch.Generator().manual_seed(0)
    example = (torch.randn(3, 6, 5, generator=generator), torch.ones(3, 6, dtype=torch.bool))
    exported = torch.export.export(decoder, example).module()
    for _ in range(3):  # other data, same shapes: the graph is not specialised to the example mask
        emissions = torch.randn(3, 6, 5, generator=generator)
        mask = torch.rand(3, 6, generator=generator) < 0.6
        mask[0] = False
        assert torch.equal(exported(emissions, mask), decoder(emissions, mask))


def test_crf_module_does_no_io() -> None:
    """Hub code rule: crf.py runs through trust_remote_code next to the weights (its imports: test_hub_code)."""
    assert not re.search(r"\bopen\(", Path(crf_module.__file__).read_text(encoding="utf-8"))


def test_repr() -> None:
    assert repr(CRF(3)) == "CRF(num_tags=3, constrained=False)"
    assert math.isclose(CONSTRAINT_PENALTY, -1e4)


def test_constrained_crf_can_be_built_on_the_meta_device():
    """`from_pretrained` builds modules on the meta device; the constraint check must not read values there."""
    allowed_start, allowed_transitions = bio_constraints(["O", "B-X", "I-X"])
    with torch.device("meta"):
        crf = CRF(
            3, allowed_transitions=allowed_transitions.to("meta"), allowed_start=allowed_start.to("meta")
        )
    assert crf.allowed_start.is_meta
