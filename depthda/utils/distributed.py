"""A process's place in a torchrun launch, shared by training (depthda.train.distributed) and
folder prediction (depthda.infer.distributed_predict)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from depthda.errors import DepthdaError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class ReportedByRankZero(DepthdaError):
    """The run failed, and rank 0 raises (and the CLI prints) the error: raised on the other ranks."""
