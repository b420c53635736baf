"""Training configuration. Defaults reproduce the paper; each deviation says why.

A field with a `help` text is a command-line option of `depthda train-stage1/2` (the depth and
style tasks): depthda/cli/train.py builds the flag, its help and the default it shows from the field.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from depthda.errors import DepthdaError

# The paper-faithful training options whose default depends on --preset: a field left None takes
# its preset's value here ("resize": depthda.models.configs.PRESET_RESIZE, which random-weight
# models use too). "paper" is the published recipe; "small" keeps what measured better on CPU
# (short stage-1 runs on `depthda synth` data, compared by validation abs_rel).
PRESET_DEFAULTS: dict[str, dict[str, object]] = {
    "paper": {"init": "normal", "view": "whole", "fresh_critic_batches": True},
    # Measured (150 steps, batch 8, 128x416, 300 `depthda synth` frames): mean val abs_rel / RMSE
    # at steps 100 and 150, each option against crops + a shared critic batch + PyTorch's init.
    "small": {
        "init": "default",             # N(0, 0.02) measured worse here: abs_rel 0.68 vs 0.56, RMSE 13.9 vs 12.1 m
        "view": "whole",               # as the paper: abs_rel 0.55 vs crops' 0.56, RMSE 11.8 vs 12.1 m
        "fresh_critic_batches": True,  # as the paper: abs_rel 0.51 vs a shared batch's 0.56; 37 % more CPU/step
    },
}


def option(default=dataclasses.MISSING, *, help: str, **kwargs):
    """A config field that is also a command-line option with this help text."""
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class TrainConfig:
    out: str = option("runs/run", help="Run folder: checkpoint.pt, model.safetensors + config.json, best/, tb/.")
    steps: int = option(10_000, help="Steps in total (one generator update each).")
    batch_size: int = option(4, help="Per-process batch size.")
    size: tuple[int, int] = option((256, 1024), help="Training crop HxW (the paper trains at 256x1024).")
    preset: str = option("paper", help="paper (the published networks: pix2pix unet_256 for depth, CycleGAN "
                                  "resnet_9blocks for style) or small (CPU-sized).")
    seed: int = option(0, help="Random seed.")
    device: str | None = option(None, help="cpu, cuda or cuda:N (default: CUDA when present).")
    num_workers: int = option(4, help="Data loader processes per GPU.")
    amp: bool = True                      # mixed precision on CUDA only; CPU stays fp32
    checkpoint_every: int = option(500, help="Steps between checkpoints.")
    log_every: int = 20
    image_every: int = 250
    val_every: int = option(500, help="Steps between validations (train-stage2: style-distance checks).")
    val_batches: int = 8
    stop_at: int | None = option(None, help="Checkpoint and exit at this step (time-limited jobs); --resume continues.")
    # "normal": N(0, 0.02) convolutions and N(1, 0.02) affine norms, as pix2pix/CycleGAN's
    # init_weights('normal', 0.02) (depthda/models/init.py); "default": PyTorch's. None: the preset's.
    init: str | None = None

    def __post_init__(self):
        from depthda.models.init import INITS  # torch: not imported until a run is configured

        defaults = PRESET_DEFAULTS.get(self.preset)
        if defaults is None:
            raise DepthdaError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESET_DEFAULTS)}")
        for name, value in defaults.items():
            if hasattr(self, name) and getattr(self, name) is None:
                setattr(self, name, value)
        _check_choice("init", self.init, INITS)


@dataclass
class DepthConfig(TrainConfig):
    data_root: str = option("", help="SYNTHIA root (RAND-CITYSCAPES or SEQS layout), or `depthda synth` output.")
    max_depth: float = 80.0               # KITTI's evaluation cap; SYNTHIA's far field and sky are capped here
    depth_param: str = "log"              # see depthda/models/depth_param.py for why not the paper's linear depth
    l1_weight: float = option(0.99, help="λ in λ·L1 + (1−λ)·adversarial (Atapour-Abarghouei & Breckon 2018).")
    critic_steps: int = option(5, help="Critic updates per generator step (n_critic, Gulrajani et al. 2017, Algorithm 1).")
    gp_weight: float = 10.0               # gradient penalty λ (Gulrajani et al. 2017)
    lr_g: float = 2e-4                    # generator Adam lr and betas from pix2pix (Isola et al. 2017)
    betas_g: tuple[float, float] = (0.5, 0.999)
    lr_c: float = 1e-4                    # critic Adam lr and betas from WGAN-GP (Gulrajani et al. 2017)
    betas_c: tuple[float, float] = (0.0, 0.9)
    val_fraction: float = 0.05
    # "unet": the paper's; "effnet_unet" (small preset only): an ImageNet EfficientNet-Lite0 encoder,
    # which on real traffic reads objects where the synthetic-only U-Net read image rows (model card).
    arch: str = option("unet", help="Depth network: unet (the paper's U-Net) or effnet_unet (U-Net decoder on "
                               "an ImageNet EfficientNet-Lite0 encoder; small preset).")
    # Not in the paper (0 = off). An exponential moving average of the generator's weights, exported
    # instead of the last step's: short CPU runs swing between checkpoints on real frames.
    ema_decay: float = option(0.0, help="Export a moving average of the weights with this decay, e.g. 0.999 "
                                   "(0: off, as the paper).")
    # Not in the paper (0 = off): multi-scale gradient matching in log depth (Li & Snavely 2018),
    # which rewards depth edges where the image's objects have them; see depthda/train/losses.py.
    grad_weight: float = option(0.0, help="Weight of a gradient-matching term in log depth that rewards sharp "
                                     "depth edges (0: off, as the paper).")
    init_from: str = option("", help="Start the depth network from an exported depth model (a folder with "
                                "model.safetensors + config.json, e.g. checkpoints/default/depth); the critic "
                                "and optimisers start fresh.")
    # Training views (depthda/data/augment.py): "whole" resizes every frame straight to `size`, as
    # the authors did; "crop" takes random crops at a random zoom of up to 15 %. None: the preset's.
    view: str | None = None
    # A new batch for each of the critic_steps critic updates (and another for the generator), as
    # WGAN-GP's Algorithm 1 (Gulrajani et al. 2017); False: one batch serves all. None: the preset's.
    fresh_critic_batches: bool | None = None
    # How inference fits a frame to the network, recorded in the exported config.json
    # (depthda/infer/pipeline.py): "stretch" (straight to `size`) or "keep_aspect". None: the preset's.
    resize: str | None = None

    def __post_init__(self):
        from depthda.data.augment import VIEWS
        from depthda.models.configs import PRESET_RESIZE, RESIZE_POLICIES

        super().__post_init__()
        if self.resize is None:
            self.resize = PRESET_RESIZE[self.preset]
        _check_choice("view", self.view, VIEWS)
        _check_choice("arch", self.arch, DEPTH_ARCHS)
        if self.arch == "effnet_unet" and self.preset != "small":
            raise DepthdaError("arch effnet_unet has only the small preset (the paper preset is the paper's U-Net)")
        _check_choice("resize", self.resize, RESIZE_POLICIES)
        if not isinstance(self.fresh_critic_batches, bool):
            raise DepthdaError(f"fresh_critic_batches must be true or false, got {self.fresh_critic_batches!r}")


@dataclass
class StyleConfig(TrainConfig):
    real: list[str] = option(help="Real frames: a KITTI raw root, a folder of images or a video; repeatable.",
                             default_factory=list)
    synthetic: str = option("", help="Synthetic frames: a SYNTHIA root, `depthda synth` output or an image folder.")
    batch_size: int = option(1, help="Per-process batch size (CycleGAN trains with batch 1 and instance norm).")
    cycle_weight: float = 10.0            # λ_cycle (Zhu et al. 2017)
    identity_weight: float = 0.5          # λ_identity = 0.5·λ_cycle (CycleGAN's published setting)
    pool_size: int = 50                   # image buffer of 50 (Shrivastava et al. 2017, as CycleGAN)
    lr: float = 2e-4                      # Adam 2e-4, β1 = 0.5 (Zhu et al. 2017)
    betas: tuple[float, float] = (0.5, 0.999)
    decay_start: float = 0.5              # linear decay to 0 over the second half (CycleGAN: 100 + 100 epochs)
    exclude_eigen_test: bool = True       # KITTI's Eigen test drives stay out of the real frames


DEPTH_ARCHS = ("unet", "effnet_unet")


def _check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise DepthdaError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


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
