"""`depthda train-stage1` (the depth task) and `depthda train-stage2` (the style task): thin
wrappers over depthda.train.

Each option's help text and the default it shows come from its config field in
depthda/train/config.py (`_help`), where the values are also checked. Flags given on the command
line override values from --config; values in neither take the config's defaults, which reproduce
the paper. The config is built and checked before torch is imported, so a bad value fails at once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from depthda.errors import DepthdaError
from depthda.train.config import DepthConfig, StyleConfig, TrainConfig, load_config_file, make_config


def _help(cls: type[TrainConfig], name: str, show_default: bool = True) -> str:
    """Field `name`'s help text; the option itself defaults to None (so a --config file can supply
    the value), so the field's default is written into the help the way click shows defaults."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    text = f.metadata["help"]
    if show_default and f.default not in (None, "", dataclasses.MISSING):
        text += f"  [default: {_shown(f.default)}]"
    return text


def _shown(value) -> str:
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------ the options both commands take
Out = Annotated[Optional[Path], typer.Option("--out", help=_help(TrainConfig, "out", show_default=False))]
Steps = Annotated[Optional[int], typer.Option("--steps", help=_help(TrainConfig, "steps"))]
Size = Annotated[Optional[str], typer.Option("--size", help=_help(TrainConfig, "size"))]
Preset = Annotated[Optional[str], typer.Option("--preset", help=_help(TrainConfig, "preset"))]
Seed = Annotated[Optional[int], typer.Option("--seed", help=_help(TrainConfig, "seed"))]
Resume = Annotated[bool, typer.Option(help="Continue the run in --out from its checkpoint.")]
Config = Annotated[Optional[Path], typer.Option(
    "--config", help="JSON or TOML file of settings (see depthda/train/config.py).")]
Device = Annotated[Optional[str], typer.Option("--device", help=_help(TrainConfig, "device"))]
NumWorkers = Annotated[Optional[int], typer.Option("--num-workers", help=_help(TrainConfig, "num_workers"))]
CheckpointEvery = Annotated[Optional[int], typer.Option(
    "--checkpoint-every", help=_help(TrainConfig, "checkpoint_every"))]
ValEvery = Annotated[Optional[int], typer.Option("--val-every", help=_help(TrainConfig, "val_every"))]
StopAt = Annotated[Optional[int], typer.Option("--stop-at", help=_help(TrainConfig, "stop_at"))]
NoAmp = Annotated[bool, typer.Option("--no-amp", help="Disable mixed precision on CUDA.")]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]


def train_stage1(
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help=_help(DepthConfig, "data_root"))] = None,
    out: Out = None,
    steps: Steps = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=_help(DepthConfig, "batch_size"))] = None,
    size: Size = None,
    preset: Preset = None,
    seed: Seed = None,
    resume: Resume = False,
    config: Config = None,
    device: Device = None,
    num_workers: NumWorkers = None,
    checkpoint_every: CheckpointEvery = None,
    val_every: ValEvery = None,
    critic_steps: Annotated[Optional[int], typer.Option(
        "--critic-steps", help=_help(DepthConfig, "critic_steps"))] = None,
    l1_weight: Annotated[Optional[float], typer.Option("--l1-weight", help=_help(DepthConfig, "l1_weight"))] = None,
    ema_decay: Annotated[Optional[float], typer.Option("--ema-decay", help=_help(DepthConfig, "ema_decay"))] = None,
    grad_weight: Annotated[Optional[float], typer.Option(
        "--grad-weight", help=_help(DepthConfig, "grad_weight"))] = None,
    init_from: Annotated[Optional[Path], typer.Option(
        "--init-from", help=_help(DepthConfig, "init_from", show_default=False))] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help=_help(DepthConfig, "arch"))] = None,
    stop_at: StopAt = None,
    no_amp: NoAmp = False,
    no_progress: NoProgress = False,
):
    """Stage 1: learn RGB -> depth on synthetic data (U-Net, L1 + WGAN-GP). Works under torchrun."""
    flags = dict(data_root=_text(data_root), out=_text(out), steps=steps, batch_size=batch_size, size=_size(size),
                 preset=preset, seed=seed, device=device, num_workers=num_workers,
                 checkpoint_every=checkpoint_every, val_every=val_every, critic_steps=critic_steps,
                 l1_weight=l1_weight, ema_decay=ema_decay, grad_weight=grad_weight, init_from=_text(init_from),
                 arch=arch, stop_at=stop_at, amp=False if no_amp else None)
    cfg, file_values = _config(DepthConfig, config, flags)
    if not cfg.data_root:
        raise DepthdaError("--data-root is required (a SYNTHIA folder or the output of `depthda synth`)")
    from depthda.train.depth_task import DepthTask  # torch: after the settings are checked

    _train(DepthTask, cfg, file_values, out is not None, config, resume, no_progress)


def train_stage2(
    real: Annotated[Optional[list[Path]], typer.Option("--real", help=_help(StyleConfig, "real"))] = None,
    synthetic: Annotated[Optional[Path], typer.Option("--synthetic", help=_help(StyleConfig, "synthetic"))] = None,
    out: Out = None,
    steps: Steps = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=_help(StyleConfig, "batch_size"))] = None,
    size: Size = None,
    preset: Preset = None,
    seed: Seed = None,
    resume: Resume = False,
    config: Config = None,
    device: Device = None,
    num_workers: NumWorkers = None,
    checkpoint_every: CheckpointEvery = None,
    val_every: ValEvery = None,
    include_eigen_test: Annotated[bool, typer.Option(
        "--include-eigen-test", help="Also train on the Eigen test drives (not recommended).")] = False,
    stop_at: StopAt = None,
    no_amp: NoAmp = False,
    no_progress: NoProgress = False,
):
    """Stage 2: learn to restyle real frames as synthetic ones (CycleGAN, unpaired). Works under torchrun."""
    flags = dict(real=[str(p) for p in real] if real else None, synthetic=_text(synthetic), out=_text(out),
                 steps=steps, batch_size=batch_size, size=_size(size), preset=preset, seed=seed, device=device,
                 num_workers=num_workers, checkpoint_every=checkpoint_every, val_every=val_every,
                 exclude_eigen_test=False if include_eigen_test else None, stop_at=stop_at,
                 amp=False if no_amp else None)
    cfg, file_values = _config(StyleConfig, config, flags)
    if not cfg.real or not cfg.synthetic:
        raise DepthdaError("--real and --synthetic are both required")
    from depthda.train.style_task import StyleTask  # torch: after the settings are checked

    _train(StyleTask, cfg, file_values, out is not None, config, resume, no_progress)


def register(app: typer.Typer) -> None:
    app.command("train-stage1")(train_stage1)
    app.command("train-stage2")(train_stage2)


# ------------------------------------------------------------ shared by both commands
def _size(value: Optional[str]):
    if value is None:
        return None
    from depthda.utils.size import parse_size
    return parse_size(value)


def _text(value) -> str | None:
    return str(value) if value else None


def _config(cls: type[TrainConfig], config: Optional[Path], flags: dict) -> tuple[TrainConfig, dict]:
    """The run's config: field defaults, then the --config file, then the flags given (None: not
    given); and the file's values."""
    file_values = load_config_file(config) if config else {}
    return make_config(cls, file_values, flags), file_values


def _train(task_class, cfg: TrainConfig, file_values: dict, out_given: bool, config: Optional[Path], resume: bool,
           no_progress: bool) -> None:
    from depthda.train.engine import Trainer, check_run_paths

    if "out" not in file_values and not out_given:
        raise DepthdaError("--out is required")
    check_run_paths(cfg, reads=[config])
    # OpenCV's own log lines are silenced in depthda.cli (unless --verbose); data loader processes
    # take the level from this process (engine._worker_init).
    task = task_class(cfg)
    summary = Trainer(task, cfg, resume=resume, progress=not no_progress).run()
    _report(cfg, summary, task.final_report())


def _report(cfg, summary: dict, final_report: str | None) -> None:
    if summary.get("world_size", 1) > 1:
        import os
        if os.environ.get("RANK", "0") != "0":
            return
    typer.echo(f"trained to step {summary['steps']}: {summary['images_per_s']:.1f} images/s, "
               f"{summary['compute_ms_per_step']:.0f} ms compute + {summary['data_wait_ms_per_step']:.0f} ms data wait per step "
               f"({100 * summary['data_wait_fraction']:.0f}% waiting for data)")
    if summary.get("best"):
        b = summary["best"]
        typer.echo(f"best validation at step {b['step']}: score {b['score']:.4f}")
    typer.echo(f"exported: {Path(cfg.out) / 'model.safetensors'} + config.json")
    if final_report is not None:
        typer.echo(final_report)
