"""Length-grouped batching shared by every task (training side): little padding, random order, a new order
each epoch, and optionally a different share of a pool (e.g. negative sentences) each epoch."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group_factor: int = 50
) -> list[list[int]]:
    """Shuffle, cut into mega-batches of ``group_factor * batch_size``, sort each by length (longest first),
    cut into batches, shuffle the batches. Padding waste stays small while the order stays random."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = batch_size * group_factor
    batches = []
    for i in range(0, len(order), mega):
        chunk = sorted(order[i : i + mega], key=lambda j: -lengths[j])
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def epoch_sample(always: int, pool: int, per_epoch: int, epoch: int, seed: int) -> list[int]:
    """Indices of one epoch over ``always + pool`` items: every one of the first ``always``, then the next
    ``per_epoch`` items of the pool (indices ``always ..``) in a seeded order fixed for the run, wrapping around,
    so successive epochs see different pool items and the whole pool is used before any is repeated."""
    order = list(range(pool))
    random.Random(seed).shuffle(order)
    start = epoch * per_epoch
    taken = [order[(start + i) % pool] for i in range(min(per_epoch, pool))] if pool else []
    return list(range(always)) + [always + i for i in taken]


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batch sampler over :func:`length_grouped_batches`; a new order every epoch (``set_epoch``).

    With ``pool`` > 0 the last ``pool`` of ``lengths`` are sampled: each epoch uses every other item and the next
    ``pool_per_epoch`` pool items (:func:`epoch_sample`), e.g. positives plus a share of the negative sentences."""

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int, pool: int = 0, pool_per_epoch: int = 0
    ):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0
        if not 0 <= pool <= len(self.lengths):
            raise ValueError(f"pool must be in [0, {len(self.lengths)}], got {pool}")
        self.pool, self.pool_per_epoch = pool, min(pool_per_epoch, pool)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_indices(self) -> list[int]:
        return epoch_sample(
            len(self.lengths) - self.pool, self.pool, self.pool_per_epoch, self.epoch, self.seed
        )

    def __iter__(self) -> Iterator[list[int]]:
        indices = self.epoch_indices()
        batches = length_grouped_batches(
            [self.lengths[i] for i in indices], self.batch_size, self.seed + self.epoch
        )
        return iter([[indices[i] for i in batch] for batch in batches])

    def __len__(self) -> int:
        return -(-(len(self.lengths) - self.pool + self.pool_per_epoch) // self.batch_size)
