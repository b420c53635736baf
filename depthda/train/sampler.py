"""A data order that is a pure function of (seed, position), so resuming at step k is exact.

Epoch e visits a permutation drawn from (seed, e); sample number k of the endless stream is
therefore known without replaying the loader. Each rank takes every world_size-th sample, which is
what DistributedSampler does, without its need for set_epoch calls.

A sample that fails to load with a DepthdaError (an unreadable or 8-bit depth file met mid-run)
travels to the Trainer as a `FailedSample` in place of the batch, so the user sees the error's own
line; see FailedSample for why it is not left to the DataLoader to re-raise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Sampler, default_collate

from depthda.errors import DepthdaError


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
        try:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(k // self.n)
            return self.dataset[k % self.n]
        except DepthdaError as exc:
            return FailedSample(str(exc))


@dataclass(frozen=True)
class FailedSample:
    """Why a sample could not be loaded: its DepthdaError's message, returned instead of raised.

    A DataLoader worker process cannot send its exception to the main process: torch's
    ExceptionWrapper keeps only the exception's type and its formatted traceback, and raises a new
    DepthdaError whose message is "Caught DepthdaError in DataLoader worker process 1." followed
    by that traceback; the original message could only be recovered by parsing traceback text.
    Returned as data, it arrives exactly, with any number of loader processes or none.
    """

    message: str


def collate(items: list):
    """default_collate, or the first FailedSample of the batch (the Trainer raises its message)."""
    failed = next((item for item in items if isinstance(item, FailedSample)), None)
    return failed if failed is not None else default_collate(items)
