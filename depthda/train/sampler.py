"""A data order that is a pure function of (seed, position), so resuming at step k is exact.

Epoch e visits a permutation drawn from (seed, e); sample number k of the endless stream is
therefore known without replaying the loader. Each rank takes every world_size-th sample, which is
what DistributedSampler does, without its need for set_epoch calls.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler


class StreamSampler(Sampler[int]):
    def __init__(self, n: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.start, self.rank, self.world = n, seed, start, rank, world_size

    def _perm(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        k = self.start * self.world + self.rank  # global position of this rank's next sample
        epoch, perm = -1, None
        while True:
            e = k // self.n
            if e != epoch:
                epoch, perm = e, self._perm(e)
            # Yield the global position; StreamDataset turns it into (epoch, index).
            yield e * self.n + int(perm[k % self.n])
            k += self.world


class StreamDataset(Dataset):
    """Maps a global stream position to (epoch, index) so augmentation is seeded per epoch."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.n = len(dataset)

    def __len__(self):
        return self.n

    def __getitem__(self, k: int):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(k // self.n)
        return self.dataset[k % self.n]
