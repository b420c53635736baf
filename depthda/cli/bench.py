"""`depthda bench`: pipeline vs naive frame-by-frame inference on one video (fps, stage times, FLOPs),
and `depthda bench data`: samples/s of one training data-loader worker.

`bench` is a group whose default command is `video`: `depthda bench [VIDEO] [OPTIONS]` still runs
the inference bench, `depthda bench video ...` names it, `depthda bench data ...` runs the other.
(A video file called "data" in the current folder is then reached as ./data.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from depthda.cli.predict import ENGINE_HELP, Engine


class _DefaultVideoGroup(TyperGroup):
    """Runs `video` when the first word is not one of the group's commands (or --help)."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["video", *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(cls=_DefaultVideoGroup, rich_markup_mode=None,
                        help="Speed measurements: `depthda bench [video] [VIDEO]` (inference, the default) and "
                             "`depthda bench data` (training data loading).")


@bench_app.command("video")
def bench(
    video: Optional[Path] = typer.Argument(None, help="Video to run on (default: data/samples/dashcam_3s.mp4)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON."),
    frames: int = typer.Option(75, help="Use the first N frames."),
    checkpoint: Optional[Path] = typer.Option(None, help="Pipeline folder (default: checkpoints/default)."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Bench randomly initialised small presets (speed does not depend on weight values)."),
    device: str = typer.Option("cpu", help="cpu (the naive baseline is a CPU loop)."),
    engine: Engine = typer.Option(Engine.auto, help=f"The pipeline's engine (the other one gets a row too). {ENGINE_HELP}"),
    batch_size: Optional[int] = typer.Option(None, help="Frames per model call (default: one per model worker)."),
    workers: Optional[int] = typer.Option(None, help="Frames run in parallel by the model stage (default min(cores, 2))."),
    rounds: int = typer.Option(3, help="Interleaved naive/pipeline/filtered rounds, the order rotating each round; "
                                       "the best of each is kept."),
    no_ablation: bool = typer.Option(False, "--no-ablation", help="Skip the model timings per engine and thread count."),
) -> None:
    """Measure fps of the overlapped pipeline against a naive loop, in one run on the same frames."""
    from depthda.bench.checks import check_bench

    check_bench(video, frames=frames, checkpoint=checkpoint, device=device, batch_size=batch_size, workers=workers,
                threads=None, rounds=rounds, random_weights=random_weights, json_path=json_out)
    # Imported after the checks: a bad run is refused without waiting for torch.
    from depthda.bench.report import format_result
    from depthda.bench.run import run_bench

    result = run_bench(video, frames=frames, checkpoint=checkpoint, device=device, engine=engine.value, batch_size=batch_size,
                       workers=workers, json_path=json_out, ablation=not no_ablation,
                       random_weights=random_weights, rounds=rounds,
                       log=lambda message: typer.echo(message, err=True))
    typer.echo(format_result(result))
    if json_out is not None:
        typer.echo(f"wrote {json_out}")


@bench_app.command("data")
def bench_data(
    data_root: Optional[Path] = typer.Option(None, help="SYNTHIA root to take frames from (default: render a few "
                                                          "streets at 760x1280 in SYNTHIA's exact format)."),
    size: str = typer.Option("256x1024", help="Training size HEIGHTxWIDTH."),
    view: str = typer.Option("whole", help="Training view: whole (both presets' default) or crop."),
    samples: int = typer.Option(48, help="Samples timed per variant and round."),
    frames: int = typer.Option(4, help="Frames rendered, or taken from --data-root (spread over it)."),
    rounds: int = typer.Option(3, help="Interleaved rounds over the variants; the best of each is kept."),
    frame_size: str = typer.Option("760x1280", help="Size of the rendered frames (without --data-root)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON."),
) -> None:
    """Samples/s of one data-loader worker (one thread) for each way of loading SYNTHIA, per stage."""
    from depthda.bench.checks import check_data_bench
    from depthda.utils.size import parse_size

    check_data_bench(data_root, size=parse_size(size), view=view, samples=samples, frames=frames, rounds=rounds,
                     json_path=json_out)
    parse_size(frame_size)
    from depthda.bench.data_loading import format_data_result, run_data_bench  # torch: after the checks

    result = run_data_bench(data_root, size=parse_size(size), view=view, samples=samples, frames=frames,
                            rounds=rounds, frame_size=parse_size(frame_size), json_path=json_out,
                            log=lambda message: typer.echo(message, err=True))
    typer.echo(format_data_result(result))
    if json_out is not None:
        typer.echo(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
