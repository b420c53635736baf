"""Training configuration. Defaults reproduce the paper; each deviation says why.

A field with a `help` text is a command-line option of `depthda train-stage1/2` (the depth and
style tasks): its flag in depthda/cli/train.py shows that help and the field's default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from depthda.errors import DepthdaError

# The paper-faithful training options whose default depends on --preset: a field left None takes
# its preset's value here ("resize": depthda.models.configs.PRESET_RESIZE, which random-weight
# models use too). "paper" is the published recipe; "small" keeps what validated better in short
# CPU runs of stage 1 (docs/training.md gives the measurements).
PRESET_DEFAULTS: dict[str, dict[str, object]] = {
    "paper": {"init": "normal", "view": "whole", "fresh_critic_batches": True},
    "small": {"init": "default", "view": "whole", "fresh_critic_batches": True},
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
        check_fields(self)  # first: a mistyped value is refused before torch is imported
        defaults = PRESET_DEFAULTS.get(self.preset)
        if defaults is None:
            raise DepthdaError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESET_DEFAULTS)}")
        for name, value in defaults.items():
            if hasattr(self, name) and getattr(self, name) is None:
                setattr(self, name, value)
        from depthda.models.init import INITS

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
        super().__post_init__()
        from depthda.data.augment import VIEWS
        from depthda.models.configs import PRESET_RESIZE, RESIZE_POLICIES

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


# ------------------------------------------------------------ what every field may hold
MAX_SIDE = 4096  # pixels per side of a training size: beyond this is a typo, not a plan


@dataclass(frozen=True)
class Rule:
    """What one config field may hold: a kind ("int", "num", "str", "bool", "pair", "strs") and,
    for numbers, a range; `open_lo`/`open_hi` exclude the ends. Numbers must be finite."""
    kind: str
    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False
    optional: bool = False

    def describe(self) -> str:
        what = {"int": "a whole number", "num": "a finite number", "str": "a text (path or name)",
                "bool": "true or false", "pair": "a pair of finite numbers", "strs": "a list of texts"}[self.kind]
        if self.lo is None and self.hi is None:
            return what
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{what} in {'(' if self.open_lo else '['}{lo}, {hi}{')' if self.open_hi else ']'}"

    def _number_ok(self, v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.kind == "int" and not isinstance(v, int):
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if self.lo is not None and (v < self.lo or (self.open_lo and v == self.lo)):
            return False
        return self.hi is None or (v < self.hi or (not self.open_hi and v == self.hi))

    def ok(self, v) -> bool:
        if v is None:
            return self.optional
        if self.kind in ("int", "num"):
            return self._number_ok(v)
        if self.kind == "pair":
            return isinstance(v, (tuple, list)) and len(v) == 2 and all(self._number_ok(x) for x in v)
        if self.kind == "str":
            return isinstance(v, str)
        if self.kind == "bool":
            return isinstance(v, bool)
        return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _unit(open_hi: bool = False) -> Rule:
    return Rule("num", 0, 1, open_hi=open_hi)


BETAS = Rule("pair", 0, 1, open_hi=True)
LR = Rule("num", 0, 1, open_lo=True)
WEIGHT = Rule("num", 0, 1e6)
RULES: dict[str, Rule] = {
    # TrainConfig
    "out": Rule("str"), "steps": Rule("int", 1, 10**8), "batch_size": Rule("int", 1, 4096),
    "size": Rule("pair"), "preset": Rule("str"), "seed": Rule("int", 0, 2**32 - 1),
    "device": Rule("str", optional=True), "num_workers": Rule("int", 0, 256), "amp": Rule("bool"),
    "checkpoint_every": Rule("int", 1, 10**8), "log_every": Rule("int", 1, 10**8),
    "image_every": Rule("int", 0, 10**8), "val_every": Rule("int", 0, 10**8), "val_batches": Rule("int", 1, 10**5),
    "stop_at": Rule("int", 1, 10**8, optional=True), "init": Rule("str", optional=True),
    # DepthConfig
    "data_root": Rule("str"), "max_depth": Rule("num", 0, 1e5, open_lo=True), "depth_param": Rule("str"),
    "l1_weight": _unit(), "critic_steps": Rule("int", 1, 100), "gp_weight": WEIGHT, "lr_g": LR, "lr_c": LR,
    "betas_g": BETAS, "betas_c": BETAS, "val_fraction": Rule("num", 0, 1, open_lo=True, open_hi=True),
    "ema_decay": _unit(open_hi=True), "grad_weight": WEIGHT, "init_from": Rule("str"),
    "view": Rule("str", optional=True), "fresh_critic_batches": Rule("bool", optional=True),
    "resize": Rule("str", optional=True), "arch": Rule("str"),
    # StyleConfig
    "real": Rule("strs"), "synthetic": Rule("str"), "cycle_weight": WEIGHT, "identity_weight": WEIGHT,
    "pool_size": Rule("int", 0, 10**4), "lr": LR, "betas": BETAS, "decay_start": _unit(),
    "exclude_eigen_test": Rule("bool"),
}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fields(cfg) -> None:
    """Type, range and finiteness of every field, whether it came from a flag, JSON or TOML; the
    first bad one is refused naming the field and what it may hold."""
    for f in dataclasses.fields(cfg):
        rule, value = RULES[f.name], getattr(cfg, f.name)
        if not rule.ok(value):
            raise DepthdaError(f"{f.name} must be {rule.describe()}, got {_shown(value)}")
    h_w = cfg.size
    if not all(isinstance(s, int) and not isinstance(s, bool) and 16 <= s <= MAX_SIDE for s in h_w):
        raise DepthdaError(f"size must be [height, width], whole numbers of pixels from 16 to {MAX_SIDE}, "
                           f"got {_shown(h_w)}")
    if not cfg.out:
        raise DepthdaError("out must name the run folder")
    if hasattr(cfg, "depth_param"):
        from depthda.models.depth_param import DepthParam

        try:
            DepthParam(kind=cfg.depth_param, max_depth=cfg.max_depth)
        except ValueError as exc:
            raise DepthdaError(f"depth_param {cfg.depth_param!r} with max_depth {cfg.max_depth:g}: {exc}") from None


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
    except RecursionError:
        raise DepthdaError(f"cannot parse config file {path}: nested too deeply") from None
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
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return cls(**values)


def config_to_dict(cfg) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
