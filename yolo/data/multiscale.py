"""Multi-resolution batches: one image size per training batch, the same on every process.

``size_for_step(seed, epoch, step, sizes)`` is a pure function, so every DDP rank (which all
know the seed, the epoch and the step) picks the same size without communicating.
``MultiScaleBatchSampler`` yields, per step, a list of keys ``(index, size, sample_seed)`` for
``TrainDataset``; it shuffles with (seed, epoch), shards the shuffled indices by rank itself
(so the trainer must be built with ``use_distributed_sampler=False``), and has ``set_epoch``.
Lightning (2.x) calls ``set_epoch`` on ``loader.sampler`` and ``loader.batch_sampler.sampler`` at
the start of every epoch, not on the batch sampler itself: ``MultiScaleBatchSampler.sampler`` is
therefore a small sampler over this rank's indices whose ``set_epoch`` forwards to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

_MASK = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers (splitmix64 chained); pure and fast."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & _MASK)) & _MASK
        h = (h + 0x9E3779B97F4A7C15) & _MASK
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK
        h ^= h >> 31
    return h >> 1


def multiscale_sizes(low: int = 320, high: int = 608, step: int = 32) -> tuple[int, ...]:
    """The allowed training sizes, multiples of 32 from ``low`` to ``high`` inclusive."""
    if low % 32 or high % 32 or step % 32 or low > high or low <= 0:
        raise ValueError(f"sizes must be positive multiples of 32 with low <= high, got {low}..{high} by {step}")
    return tuple(range(low, high + 1, step))


def size_for_step(seed: int, epoch: int, step: int, sizes: Sequence[int]) -> int:
    """The image size of training step ``step`` of ``epoch``: uniform over ``sizes``, pure."""
    return int(sizes[mix_seed(seed, epoch, step, 0x5151) % len(sizes)])


class RankIndices(Sampler[int]):
    """The indices of one rank for the current epoch (``batch_sampler.sampler``); its
    ``set_epoch`` sets the batch sampler's epoch, which is how Lightning reaches it."""

    def __init__(self, parent: MultiScaleBatchSampler):
        self.parent = parent

    def set_epoch(self, epoch: int) -> None:
        self.parent.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(int(i) for i in self.parent._indices())

    def __len__(self) -> int:
        return self.parent.num_samples // self.parent.world_size


class MultiScaleBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """Batches of ``(index, size, sample_seed)`` keys with one size per batch, sharded by rank.

    Every epoch: a permutation of range(n) from (seed, epoch) (identity if not shuffle), the same
    on all ranks; rank r takes positions r, r + world_size, ... of it (the tail that does not
    divide evenly is dropped, so all ranks have the same number of steps); batches of
    ``batch_size`` (the last short one dropped when ``drop_last``). Step k's size is
    ``size_for_step(seed, epoch, k, sizes)``.
    """

    def __init__(self, num_samples: int, batch_size: int, sizes: Sequence[int] = multiscale_sizes(),
                 seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True, drop_last: bool = True):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if any(s % 32 for s in sizes) or not sizes:
            raise ValueError(f"sizes must be multiples of 32, got {tuple(sizes)}")
        self.num_samples, self.batch_size = int(num_samples), int(batch_size)
        self.sizes = tuple(int(s) for s in sizes)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch = 0
        self.sampler = RankIndices(self)  # Lightning calls set_epoch here

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self) -> np.ndarray:
        n = self.num_samples
        if self.shuffle:
            order = np.random.default_rng(mix_seed(self.seed, self.epoch, 0x5EED)).permutation(n)
        else:
            order = np.arange(n)
        per_rank = n // self.world_size
        return order[self.rank:per_rank * self.world_size:self.world_size]

    def __len__(self) -> int:
        per_rank = self.num_samples // self.world_size
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def skip_next(self, steps: int) -> None:
        """Make the next pass start at step ``steps`` of its epoch (a mid-epoch resume); the
        steps keep their own indices, sizes and seeds."""
        self._skip = int(steps)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        indices = self._indices()
        start, self._skip = getattr(self, "_skip", 0), 0
        for step in range(start, len(self)):
            chunk = indices[step * self.batch_size:(step + 1) * self.batch_size]
            size = size_for_step(self.seed, self.epoch, step, self.sizes)
            yield [(int(i), size, mix_seed(self.seed, self.epoch, int(i))) for i in chunk]
