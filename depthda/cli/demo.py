"""`depthda demo`: the local web app (depthda/cli/demo_app.py), behind the optional `demo` extra."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from depthda.errors import DepthdaError


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        host: str = typer.Option("127.0.0.1", help="Address to serve on (0.0.0.0 exposes it to the network)."),
        port: int = typer.Option(7860, help="Port to serve on."),
        checkpoint: Optional[Path] = typer.Option(None, help="Pipeline folder with style/ and depth/ (default: checkpoints/default)."),
        max_frames: int = typer.Option(150, help="Video tab: frames of a clip turned into depth (the rest are left out, with a message)."),
    ) -> None:
        """Serve a web page to try depthda on pictures and clips, with a 3D view of the points.

        Everything runs on this machine, with no network: no analytics, no share link, nothing
        fetched from outside. Needs the demo extra: pip install 'depthda[demo]'. Ctrl-C stops it.
        """
        from depthda.cli.demo_settings import DemoSettings

        settings = DemoSettings(checkpoint=checkpoint, max_frames=max_frames, port=port)
        try:  # after the checks: Gradio takes seconds to import
            import gradio  # noqa: F401  (the optional demo extra)
        except ImportError:
            raise DepthdaError("the demo needs Gradio: pip install 'depthda[demo]'") from None
        from depthda.cli.demo_app import serve

        serve(host, port, settings, on_ready=lambda url: typer.echo(f"depthda demo: serving on {url} (Ctrl-C stops)"))
