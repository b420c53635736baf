"""How the depth network's output maps to metres.

The paper follows pix2pix and regresses depth scaled linearly into the generator's tanh range.
We regress *log* depth instead, scaled into [-1, 1] between `min_depth` and `max_depth`: an L1
loss on linear depth is dominated by the far field and the sky, while a loss on log depth
weighs a 10% error the same at 5 m and at 50 m, which is what the KITTI metrics (abs_rel,
δ thresholds) reward. The parameterisation is stored in every depth model's config.json.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class DepthParam:
    kind: str = "log"          # "log" or "linear"
    min_depth: float = 0.5     # metres; nearer than a car bonnet never occurs in driving footage
    max_depth: float = 80.0    # metres; KITTI's evaluation cap, and the cap on SYNTHIA depth

    def __post_init__(self):
        if self.kind not in ("log", "linear"):
            raise ValueError(f"unknown depth parameterisation {self.kind!r}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError("need 0 < min_depth < max_depth")

    def encode(self, depth_m: torch.Tensor) -> torch.Tensor:
        """Metres -> network target in [-1, 1]."""
        d = depth_m.clamp(self.min_depth, self.max_depth)
        if self.kind == "log":
            t = (torch.log(d) - math.log(self.min_depth)) / (math.log(self.max_depth) - math.log(self.min_depth))
        else:
            t = (d - self.min_depth) / (self.max_depth - self.min_depth)
        return t * 2 - 1

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Network output in [-1, 1] -> metres."""
        t = (out.float().clamp(-1, 1) + 1) / 2
        if self.kind == "log":
            return torch.exp(math.log(self.min_depth) + t * (math.log(self.max_depth) - math.log(self.min_depth)))
        return self.min_depth + t * (self.max_depth - self.min_depth)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DepthParam":
        return cls(**d)
