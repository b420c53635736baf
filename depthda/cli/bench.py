"""`depthda bench`: pipeline vs naive frame-by-frame inference on one video (fps, stage times, FLOPs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        video: Optional[Path] = typer.Argument(None, help="Video to run on (default: data/samples/dashcam_3s.mp4)."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON."),
        frames: int = typer.Option(75, help="Use the first N frames."),
        checkpoint: Optional[Path] = typer.Option(None, help="Pipeline folder (default: checkpoints/default)."),
        random_weights: bool = typer.Option(False, "--random-weights", help="Bench randomly initialised small presets (speed does not depend on weight values)."),
        device: str = typer.Option("cpu", help="cpu (the naive baseline is a CPU loop)."),
        batch_size: Optional[int] = typer.Option(None, help="Frames per model call (default: one per model worker)."),
        workers: Optional[int] = typer.Option(None, help="Frames run in parallel by the model stage (default min(cores, 2))."),
        rounds: int = typer.Option(2, help="Interleaved naive/pipeline rounds; the best of each is kept."),
        no_ablation: bool = typer.Option(False, "--no-ablation", help="Skip the per-optimisation model timings."),
    ) -> None:
        """Measure fps of the overlapped pipeline against a naive loop, in one run on the same frames."""
        # Imported when the command runs: `depthda --help` does not wait for torch.
        from depthda.bench.report import format_result
        from depthda.bench.run import run_bench

        result = run_bench(video, frames=frames, checkpoint=checkpoint, device=device, batch_size=batch_size,
                           workers=workers, json_path=json_out, ablation=not no_ablation,
                           random_weights=random_weights, rounds=rounds,
                           log=lambda message: typer.echo(message, err=True))
        typer.echo(format_result(result))
        if json_out is not None:
            typer.echo(f"wrote {json_out}")
