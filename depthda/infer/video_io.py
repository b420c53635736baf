"""Video in and out.

Reading: OpenCV (FFmpeg backend), frames as H×W×3 uint8 RGB.
Writing: H.264 (yuv420p, the format every common player opens) through the ffmpeg binary bundled
with the `imageio-ffmpeg` package, raw frames piped to it; VP9 for .webm. Without that package,
cv2.VideoWriter's MPEG-4 part 2 ('mp4v'), which fewer players open. yuv420p needs even sides, so
an odd width or height is padded by one replicated row/column.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from depthda.errors import DepthdaError
from depthda.utils.images import VIDEO_SUFFIXES

# When the CPU also runs the networks every core a codec takes is one the model loses, so CPU runs
# decode and encode on one thread each with x264's ultrafast preset: a fraction of veryfast's
# encoding CPU per frame, for larger files (`depthda bench` shows the encode stage's time).
CPU_DECODER = {"threads": 1}
CPU_ENCODER = {"preset": "ultrafast", "threads": 1}
# Containers with a frame index: a decode that stops short of the indexed count means a damaged file.
_INDEXED = (".mp4", ".mov", ".avi")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int  # as the container reports it; 0 if unknown


class VideoReader:
    """Iterate a video's frames as RGB uint8; clear errors for missing, empty, corrupt or truncated files."""

    def __init__(self, path: str | Path, max_frames: int | None = None, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise DepthdaError(f"video not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise DepthdaError(f"video file is empty: {self.path}")
        self.max_frames = max_frames
        cap = None
        if threads:  # a thread count needs the FFmpeg backend; any other backend reads it untuned
            cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, int(threads)])
            if not cap.isOpened():
                cap.release()
                cap = None
        if cap is None:
            cap = cv2.VideoCapture(str(self.path))
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok or first is None:
            cap.release()
            raise DepthdaError(f"cannot decode video (corrupt, truncated or unsupported): {self.path}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        # Frame size from the decoded frame: it already includes any rotation the player would apply.
        self.info = VideoInfo(first.shape[1], first.shape[0], fps if fps and fps > 0 else 25.0, max(count, 0))
        self._cap, self._first = cap, first
        self.frames_read = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        cap, frame = self._cap, self._first
        if cap is None:
            raise RuntimeError("a VideoReader can be iterated once")
        self._cap = self._first = None
        try:
            while frame is not None:
                if self.max_frames is not None and self.frames_read >= self.max_frames:
                    return
                self.frames_read += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                ok, frame = cap.read()
                frame = frame if ok else None
        finally:
            cap.release()
        expected = self.info.frame_count
        if self.path.suffix.lower() in _INDEXED and expected and self.frames_read < expected - 2:
            raise DepthdaError(f"video ended after {self.frames_read} of {expected} frames "
                               f"(truncated or corrupt): {self.path}")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = self._first = None


def even_size(width: int, height: int) -> tuple[int, int]:
    return width + width % 2, height + height % 2


def _pad_even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return cv2.copyMakeBorder(frame, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)


def _ffmpeg_exe() -> str | None:
    try:  # imported here: imageio-ffmpeg is optional (without it, cv2's writer)
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


class VideoWriter:
    """Write RGB uint8 frames of one size to `path` (suffix picks the container).

    Use as a context manager: leaving the block normally finishes the file and checks it (the
    encoder's exit status, and that the file opens with every frame written); leaving it by an
    exception (Ctrl-C included) stops the encoder at once, so the caller can delete the file.
    ffmpeg runs in its own session: a terminal's Ctrl-C reaches depthda, which decides what the
    encoder does, rather than killing the encoder behind its back.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, *, crf: int = 20,
                 preset: str = "veryfast", threads: int | None = None, use_ffmpeg: bool | None = None):
        self.path = Path(path)
        self.size = even_size(width, height)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise DepthdaError(f"video output must end in one of {', '.join(VIDEO_SUFFIXES)}: {self.path}")
        exe = _ffmpeg_exe() if use_ffmpeg is not False else None
        if use_ffmpeg and exe is None:
            raise DepthdaError("the ffmpeg encoder needs the imageio-ffmpeg package")
        self.backend = "ffmpeg" if exe else "cv2"
        self._proc = self._cv = self._log = None
        self.frames_written = 0
        if exe:
            if suffix == ".webm":
                codec = ["-c:v", "libvpx-vp9", "-crf", str(crf + 12), "-b:v", "0", "-deadline", "realtime",
                         "-cpu-used", "8"]
            else:
                # veryfast: much less encoding CPU than the default preset for a slightly larger file.
                codec = ["-c:v", "libx264", "-crf", str(crf), "-preset", preset]
            if threads:
                codec += ["-threads", str(int(threads))]
            if suffix in (".mp4", ".mov"):
                codec += ["-movflags", "+faststart"]
            w, h = self.size
            cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:.6g}", "-i", "pipe:0",
                   "-an", *codec, "-pix_fmt", "yuv420p", str(self.path)]
            # ffmpeg's messages go to a file: a pipe nobody reads could fill up and stall it.
            self._log = tempfile.TemporaryFile()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                          start_new_session=True)
        else:
            fourcc = cv2.VideoWriter_fourcc(*("VP80" if suffix == ".webm" else "mp4v"))
            self._cv = cv2.VideoWriter(str(self.path), fourcc, fps, self.size)
            if not self._cv.isOpened():
                raise DepthdaError(f"cannot open a video writer for {self.path}")

    def _encoder_error(self) -> str:
        self._log.seek(0)
        log = self._log.read().decode("utf-8", "replace")
        message = _last_line(log)
        if "No space left" in log:  # ffmpeg's last line is then often only "Conversion failed!"
            return f"no space left on device while writing {self.path}"
        return f"video encoder failed for {self.path}: {message}"

    def write(self, rgb: np.ndarray) -> None:
        frame = _pad_even(rgb)
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the video's {self.size}")
        if self._proc is not None:
            try:
                self._proc.stdin.write(np.ascontiguousarray(frame).data)
            except (BrokenPipeError, OSError):
                self._proc.wait()
                raise DepthdaError(self._encoder_error()) from None
        else:
            self._cv.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file (waits for the encoder) and check that it holds every frame written."""
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                proc.stdin.close()
            except OSError:
                pass
            if proc.wait() != 0:
                raise DepthdaError(self._encoder_error())
            self._log.close()
        elif self._cv is not None:
            self._cv.release()
            self._cv = None
        else:
            return
        self._verify()

    def _verify(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
        finally:
            cap.release()
        if count < 0:
            raise DepthdaError(f"the finished video does not open: {self.path}")
        if self.path.suffix.lower() in _INDEXED and count != self.frames_written:
            raise DepthdaError(f"the finished video holds {count} of {self.frames_written} frames: {self.path}")

    def abort(self) -> None:
        """Stop the encoder without finishing the file (the caller deletes it)."""
        if self._proc is not None:
            proc, self._proc = self._proc, None
            proc.kill()
            proc.wait()
            with contextlib.suppress(OSError):
                proc.stdin.close()
            self._log.close()
        if self._cv is not None:
            self._cv.release()
            self._cv = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

