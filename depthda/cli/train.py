"""`depthda train-stage1` (the depth task) and `depthda train-stage2` (the style task): thin
wrappers over depthda.train.

Options named after a config field take their help text and the default they show from that field
of depthda/train/config.py, and the options both commands take are declared once (`_shared_options`).
Flags given on the command line override values from --config; values in neither take the
config's defaults, which reproduce the paper.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer

from depthda.errors import DepthdaError
from depthda.train.config import DepthConfig, StyleConfig, TrainConfig


def _size(value: Optional[str]):
    if value is None:
        return None
    from depthda.utils.size import parse_size
    return parse_size(value)


def _text(value) -> str | None:
    return str(value) if value else None


# How an option's value becomes its config field's value, where they differ.
_TO_CONFIG: dict[str, Callable] = {
    "out": _text, "data_root": _text, "synthetic": _text, "init_from": _text, "size": _size,
    "real": lambda paths: [str(p) for p in paths] if paths else None,
}
# On/off flags that switch a config field (on by default) off.
_SWITCHES_OFF = {"no_amp": "amp", "include_eigen_test": "exclude_eigen_test"}


def _shown(value) -> str:
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _setting(cls: type[TrainConfig], name: str, kind, show_default: bool = True) -> inspect.Parameter:
    """--<name>: overrides config field `name`; help and shown default come from the field."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    text = f.metadata["help"]
    # The option itself defaults to None (so a --config file can supply the value), so the field's
    # default is written into the help the way click shows defaults.
    if show_default and f.default not in (None, "", dataclasses.MISSING):
        text += f"  [default: {_shown(f.default)}]"
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[kind],
                             default=typer.Option(None, help=text))


def _flag(name: str, help: str, *decls: str) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                             default=typer.Option(False, *decls, help=help))


def _shared_options(cls: type[TrainConfig], task_options: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """Both commands' options in --help order, with the task's own after --val-every."""
    return [
        _setting(cls, "out", Path, show_default=False),
        _setting(cls, "steps", int),
        _setting(cls, "batch_size", int),
        _setting(cls, "size", str),
        _setting(cls, "preset", str),
        _setting(cls, "seed", int),
        _flag("resume", "Continue the run in --out from its checkpoint."),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                          default=typer.Option(None, help="JSON or TOML file of settings (see depthda/train/config.py).")),
        _setting(cls, "device", str),
        _setting(cls, "num_workers", int),
        _setting(cls, "checkpoint_every", int),
        _setting(cls, "val_every", int),
        *task_options,
        _setting(cls, "stop_at", int),
        _flag("no_amp", "Disable mixed precision on CUDA.", "--no-amp"),
        _flag("no_progress", "No progress bar.", "--no-progress"),
    ]


def _command(app: typer.Typer, name: str, doc: str, options: list[inspect.Parameter], train: Callable) -> None:
    """Register `train(values)` as command `name`, taking `options` (typer reads the signature)."""
    def command(**values):
        train(values)

    command.__signature__ = inspect.Signature(options)
    command.__doc__ = doc
    app.command(name)(command)


def register(app: typer.Typer) -> None:
    _command(app, "train-stage1",
             "Stage 1: learn RGB -> depth on synthetic data (U-Net, L1 + WGAN-GP). Works under torchrun.",
             [_setting(DepthConfig, "data_root", Path),
              *_shared_options(DepthConfig, [_setting(DepthConfig, "critic_steps", int),
                                             _setting(DepthConfig, "l1_weight", float),
                                             _setting(DepthConfig, "ema_decay", float),
                                             _setting(DepthConfig, "grad_weight", float),
                                             _setting(DepthConfig, "init_from", Path, show_default=False),
                                             _setting(DepthConfig, "arch", str)])],
             _train_depth)
    _command(app, "train-stage2",
             "Stage 2: learn to restyle real frames as synthetic ones (CycleGAN, unpaired). Works under torchrun.",
             [_setting(StyleConfig, "real", list[Path]),
              _setting(StyleConfig, "synthetic", Path),
              *_shared_options(StyleConfig, [_flag("include_eigen_test", "Also train on the Eigen test drives (not recommended).",
                                                   "--include-eigen-test")])],
             _train_style)


# ------------------------------------------------------------ the commands
def _config(cls: type[TrainConfig], values: dict) -> tuple[TrainConfig, dict]:
    """The run's config: field defaults, then the --config file, then the flags given; and the file's values."""
    from depthda.train.config import load_config_file, make_config

    file_values = load_config_file(values["config"]) if values["config"] else {}
    fields = {f.name for f in dataclasses.fields(cls)}
    overrides = {}
    for name, value in values.items():
        if name in _SWITCHES_OFF:
            overrides[_SWITCHES_OFF[name]] = False if value else None
        elif name in fields:
            overrides[name] = _TO_CONFIG.get(name, lambda v: v)(value)
    return make_config(cls, file_values, overrides), file_values


def _train_depth(values: dict) -> None:
    from depthda.train.depth_task import DepthTask

    cfg, file_values = _config(DepthConfig, values)
    if not cfg.data_root:
        raise DepthdaError("--data-root is required (a SYNTHIA folder or the output of `depthda synth`)")
    _train(DepthTask, cfg, file_values, values)


def _train_style(values: dict) -> None:
    from depthda.train.style_task import StyleTask

    cfg, file_values = _config(StyleConfig, values)
    if not cfg.real or not cfg.synthetic:
        raise DepthdaError("--real and --synthetic are both required")
    _train(StyleTask, cfg, file_values, values)


def _train(task_class, cfg: TrainConfig, file_values: dict, values: dict) -> None:
    from depthda.train.engine import Trainer, check_run_paths

    if values["out"] is None and "out" not in file_values:
        raise DepthdaError("--out is required")
    check_run_paths(cfg, reads=[values["config"]])
    # OpenCV's own log lines are silenced in depthda.cli (unless --verbose); data loader processes
    # take the level from this process (engine._worker_init).
    task = task_class(cfg)
    summary = Trainer(task, cfg, resume=values["resume"], progress=not values["no_progress"]).run()
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

