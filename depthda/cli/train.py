"""`depthda train-stage1` and `depthda train-stage2`: thin wrappers over depthda.train.

Flags given on the command line override values from --config; values in neither take the
defaults of depthda.train.config, which reproduce the paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from depthda.errors import DepthdaError


def _size(value: Optional[str]):
    if value is None:
        return None
    from depthda.utils.size import parse_size
    return parse_size(value)


def _common(out, steps, batch_size, size, preset, seed, device, num_workers, checkpoint_every, val_every, no_amp, stop_at=None):
    if steps is not None and steps <= 0:
        raise DepthdaError("--steps must be positive")
    if batch_size is not None and batch_size <= 0:
        raise DepthdaError("--batch-size must be positive")
    if preset is not None and preset not in ("paper", "small"):
        raise DepthdaError(f"unknown --preset {preset!r}; choose paper or small")
    return {"out": str(out) if out else None, "steps": steps, "batch_size": batch_size, "size": _size(size),
            "preset": preset, "seed": seed, "device": device, "num_workers": num_workers,
            "checkpoint_every": checkpoint_every, "val_every": val_every, "amp": False if no_amp else None,
            "stop_at": stop_at}


def register(app: typer.Typer) -> None:
    @app.command("train-stage1")
    def train_stage1(
        data_root: Optional[Path] = typer.Option(None, help="SYNTHIA root (RAND-CITYSCAPES or SEQS layout), or `depthda synth` output."),
        out: Optional[Path] = typer.Option(None, help="Run folder: checkpoint.pt, model.safetensors + config.json, best/, tb/."),
        steps: Optional[int] = typer.Option(None, help="Generator steps in total (default 10000)."),
        batch_size: Optional[int] = typer.Option(None, help="Per-process batch size (default 4)."),
        size: Optional[str] = typer.Option(None, help="Training crop HxW (default 256x1024, the paper's)."),
        preset: Optional[str] = typer.Option(None, help="paper (pix2pix unet_256) or small (CPU-sized)."),
        seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
        resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint."),
        config: Optional[Path] = typer.Option(None, help="JSON or TOML file of settings (see depthda/train/config.py)."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N (default: CUDA when present)."),
        num_workers: Optional[int] = typer.Option(None, help="Data loader processes per GPU (default 4)."),
        checkpoint_every: Optional[int] = typer.Option(None, help="Steps between checkpoints (default 500)."),
        val_every: Optional[int] = typer.Option(None, help="Steps between validations (default 500)."),
        critic_steps: Optional[int] = typer.Option(None, help="Critic updates per generator step (default 5, WGAN-GP)."),
        l1_weight: Optional[float] = typer.Option(None, help="λ in λ·L1 + (1−λ)·adversarial (default 0.99, the paper's)."),
        ema_decay: Optional[float] = typer.Option(None, help="Export a moving average of the weights with this decay, e.g. 0.999 (default 0: off, as the paper)."),
        stop_at: Optional[int] = typer.Option(None, help="Checkpoint and exit at this step (time-limited jobs); --resume continues."),
        no_amp: bool = typer.Option(False, "--no-amp", help="Disable mixed precision on CUDA."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ):
        """Stage 1: learn RGB -> depth on synthetic data (U-Net, L1 + WGAN-GP). Works under torchrun."""
        from depthda.train.config import Stage1Config, load_config_file, make_config
        from depthda.train.engine import Trainer
        from depthda.train.depth_task import DepthTask

        file_values = load_config_file(config) if config else {}
        cfg = make_config(Stage1Config, file_values, {
            **_common(out, steps, batch_size, size, preset, seed, device, num_workers, checkpoint_every, val_every, no_amp, stop_at),
            "data_root": str(data_root) if data_root else None, "critic_steps": critic_steps, "l1_weight": l1_weight,
            "ema_decay": ema_decay})
        if not cfg.data_root:
            raise DepthdaError("--data-root is required (a SYNTHIA folder or the output of `depthda synth`)")
        if out is None and "out" not in file_values:
            raise DepthdaError("--out is required")
        summary = Trainer(DepthTask(cfg), cfg, resume=resume, progress=not no_progress).run()
        _report(cfg, summary)

    @app.command("train-stage2")
    def train_stage2(
        real: Optional[list[Path]] = typer.Option(None, help="Real frames: a KITTI raw root, a folder of images or a video; repeatable."),
        synthetic: Optional[Path] = typer.Option(None, help="Synthetic frames: a SYNTHIA root, `depthda synth` output or an image folder."),
        out: Optional[Path] = typer.Option(None, help="Run folder."),
        steps: Optional[int] = typer.Option(None, help="Steps in total (default 10000)."),
        batch_size: Optional[int] = typer.Option(None, help="Per-process batch size (default 1, CycleGAN's)."),
        size: Optional[str] = typer.Option(None, help="Training crop HxW (default 256x1024)."),
        preset: Optional[str] = typer.Option(None, help="paper (CycleGAN resnet_9blocks) or small."),
        seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
        resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint."),
        config: Optional[Path] = typer.Option(None, help="JSON or TOML file of settings."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N."),
        num_workers: Optional[int] = typer.Option(None, help="Data loader processes per GPU (default 4)."),
        checkpoint_every: Optional[int] = typer.Option(None, help="Steps between checkpoints (default 500)."),
        val_every: Optional[int] = typer.Option(None, help="Steps between style-distance checks (default 500)."),
        include_eigen_test: bool = typer.Option(False, "--include-eigen-test", help="Also train on the Eigen test drives (not recommended)."),
        stop_at: Optional[int] = typer.Option(None, help="Checkpoint and exit at this step (time-limited jobs); --resume continues."),
        no_amp: bool = typer.Option(False, "--no-amp", help="Disable mixed precision on CUDA."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ):
        """Stage 2: learn to restyle real frames as synthetic ones (CycleGAN, unpaired). Works under torchrun."""
        from depthda.train.config import Stage2Config, load_config_file, make_config
        from depthda.train.engine import Trainer
        from depthda.train.style_task import StyleTask

        file_values = load_config_file(config) if config else {}
        cfg = make_config(Stage2Config, file_values, {
            **_common(out, steps, batch_size, size, preset, seed, device, num_workers, checkpoint_every, val_every, no_amp, stop_at),
            "real": [str(r) for r in real] if real else None, "synthetic": str(synthetic) if synthetic else None,
            "exclude_eigen_test": False if include_eigen_test else None})
        if not cfg.real or not cfg.synthetic:
            raise DepthdaError("--real and --synthetic are both required")
        if out is None and "out" not in file_values:
            raise DepthdaError("--out is required")
        task = StyleTask(cfg)
        summary = Trainer(task, cfg, resume=resume, progress=not no_progress).run()
        _report(cfg, summary)
        rep = getattr(task, "last_report", None)
        if rep is not None:
            from depthda.train.style_distance import format_report
            typer.echo(format_report(rep))


def _report(cfg, summary: dict) -> None:
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
