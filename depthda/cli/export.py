"""`depthda export`: the whole chain (normalise → style → depth → metres) as one ONNX or TorchScript graph."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer


# The choices of --format and --input-type: depthda.infer.checks' EXPORT_FORMATS and EXPORT_INPUT_TYPES, spelled
# out because importing that module here would load torch for `depthda --help`.
Format = Enum("Format", {name: name for name in ("onnx", "torchscript")}, type=str)
InputType = Enum("InputType", {name: name for name in ("uint8", "float")}, type=str)


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        format: Format = typer.Option(..., "--format", help="onnx (needs the 'export' extra) or torchscript."),
        output: Path = typer.Option(..., "--output", "-o", help="Graph file to write."),
        checkpoint: Optional[Path] = typer.Option(None, help="Pipeline folder (default: checkpoints/default)."),
        style: Optional[Path] = typer.Option(None, help="Style training run; with --depth."),
        depth: Optional[Path] = typer.Option(None, help="Depth training run."),
        no_style: bool = typer.Option(False, "--no-style", help="Export the depth network alone."),
        size: Optional[str] = typer.Option(None, help="Fixed input HxW (default: the depth model's training size)."),
        input_type: InputType = typer.Option(InputType.uint8, help="uint8: Bx3xHxW 0..255; float: Bx3xHxW 0..1."),
    ) -> None:
        """Export the pipeline; input `image` Bx3xHxW, output `depth` BxHxW metres; checked against PyTorch."""
        from depthda.infer.checks import check_export

        checked = check_export(format.value, output, checkpoint=checkpoint, style=style, depth=depth, size=size,
                               input_type=input_type.value)
        # Imported after the checks: a bad run is refused without waiting for torch.
        from depthda.infer.export import export_pipeline

        r = export_pipeline(format.value, output, checkpoint=checkpoint, style=style, depth=depth,
                            use_style=not no_style, size=checked, input_type=input_type.value)
        typer.echo(f"wrote {r.path} ({r.format}, input {r.input_type} Bx3x{r.size[0]}x{r.size[1]}); "
                   f"max |export - pytorch| = {r.max_abs_diff:.3g} m")
