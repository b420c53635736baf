"""Training configuration. Defaults reproduce the paper; each deviation says why."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from depthda.errors import DepthdaError


@dataclass
class TrainConfig:
    out: str = "runs/run"
    steps: int = 10_000
    batch_size: int = 4
    size: tuple[int, int] = (256, 1024)   # the paper trains at 256×1024
    preset: str = "paper"
    seed: int = 0
    device: str | None = None             # auto: CUDA when present
    num_workers: int = 4
    amp: bool = True                      # mixed precision on CUDA only; CPU stays fp32
    checkpoint_every: int = 500
    log_every: int = 20
    image_every: int = 250
    val_every: int = 500
    val_batches: int = 8
    stop_at: int | None = None            # checkpoint and exit at this step (time-limited jobs); --resume continues


@dataclass
class Stage1Config(TrainConfig):
    data_root: str = ""
    max_depth: float = 80.0               # KITTI's evaluation cap; SYNTHIA's far field and sky are capped here
    depth_param: str = "log"              # see depthda/models/depth_param.py for why not the paper's linear depth
    l1_weight: float = 0.99               # λ in λ·L1 + (1−λ)·adversarial (Atapour-Abarghouei & Breckon 2018)
    critic_steps: int = 5                 # n_critic (Gulrajani et al. 2017, Algorithm 1)
    gp_weight: float = 10.0               # gradient penalty λ (Gulrajani et al. 2017)
    lr_g: float = 2e-4                    # generator Adam lr and betas from pix2pix (Isola et al. 2017)
    betas_g: tuple[float, float] = (0.5, 0.999)
    lr_c: float = 1e-4                    # critic Adam lr and betas from WGAN-GP (Gulrajani et al. 2017)
    betas_c: tuple[float, float] = (0.0, 0.9)
    val_fraction: float = 0.05
    # Not in the paper (0 = off). An exponential moving average of the generator's weights, exported
    # instead of the last step's: short CPU runs swing between checkpoints on real frames.
    ema_decay: float = 0.0


@dataclass
class Stage2Config(TrainConfig):
    real: list[str] = field(default_factory=list)
    synthetic: str = ""
    batch_size: int = 1                   # CycleGAN trains with batch 1 and instance norm
    cycle_weight: float = 10.0            # λ_cycle (Zhu et al. 2017)
    identity_weight: float = 0.5          # λ_identity = 0.5·λ_cycle (CycleGAN's published setting)
    pool_size: int = 50                   # image buffer of 50 (Shrivastava et al. 2017, as CycleGAN)
    lr: float = 2e-4                      # Adam 2e-4, β1 = 0.5 (Zhu et al. 2017)
    betas: tuple[float, float] = (0.5, 0.999)
    decay_start: float = 0.5              # linear decay to 0 over the second half (CycleGAN: 100 + 100 epochs)
    exclude_eigen_test: bool = True


def load_config_file(path: str | Path) -> dict:
    """Read a JSON or TOML file of config fields (CLI flags given explicitly override it)."""
    path = Path(path)
    if not path.is_file():
        raise DepthdaError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DepthdaError(f"cannot parse config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DepthdaError(f"config file {path} must hold a table/object of settings")
    return data


def make_config(cls, file_values: dict, overrides: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(file_values) - names)
    if unknown:
        raise DepthdaError(f"unknown config setting(s): {', '.join(unknown)}")
    values = {**file_values, **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("size", "betas", "betas_g", "betas_c"):
        if key in values and values[key] is not None:
            values[key] = tuple(values[key])
    return cls(**values)


def config_to_dict(cfg) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
