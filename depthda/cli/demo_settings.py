"""What `depthda demo` configures, checked before Gradio and torch are imported (each takes seconds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from depthda.errors import DepthdaError
from depthda.infer.checks import model_folders


@dataclass(frozen=True)
class DemoSettings:
    """The model folder, the video length limit and the port, checked when made."""
    checkpoint: Path | None = None
    max_frames: int = 150
    device: str = "cpu"
    port: int = 7860

    def __post_init__(self):
        if self.max_frames < 1:
            raise DepthdaError("--max-frames must be at least 1")
        if not 1 <= self.port <= 65535:
            raise DepthdaError(f"--port must be from 1 to 65535, got {self.port}")
        model_folders(self.checkpoint, None, None, use_style=True)
