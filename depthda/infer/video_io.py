"""Video in and out, and the overlapped runner that keeps every core busy on a video.

Reading: OpenCV (FFmpeg backend), frames as H×W×3 uint8 RGB.
Writing: H.264 (yuv420p, the format every common player opens) through the ffmpeg binary bundled
with the `imageio-ffmpeg` package, raw frames piped to it; VP9 for .webm. Without that package,
cv2.VideoWriter's MPEG-4 part 2 ('mp4v'), which fewer players open. yuv420p needs even sides, so
an odd width or height is padded by one replicated row/column.

`run_overlapped` runs a source thread (decode), the caller's model function on the calling
thread, and a chain of worker threads (colour-mapping, encoding), linked by bounded queues so
memory stays flat and the slowest stage sets the pace. An exception in any stage stops all of
them and reaches the caller as a DepthdaError; every thread is joined before it returns.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from depthda.errors import DepthdaError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
# When the CPU also runs the networks every core a codec takes is one the model loses, so CPU runs
# decode and encode on one thread each with x264's ultrafast preset: 3.4 instead of 12 ms of CPU
# per 960×540 depth frame (veryfast), for files about twice as large (`depthda bench`).
CPU_DECODER = {"threads": 1}
CPU_ENCODER = {"preset": "ultrafast", "threads": 1}
# Containers with a frame index: a decode that stops short of the indexed count means a damaged file.
_INDEXED = (".mp4", ".mov", ".avi")


def is_video_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


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
    try:
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
                # veryfast: ~3× less encoding CPU than the default preset for a slightly larger file.
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
        message = _last_line(self._log.read().decode("utf-8", "replace"))
        if "No space left" in message:
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


# ---------------------------------------------------------------------------- overlapped runner

_END = object()


class _Run:
    def __init__(self):
        self.stop = threading.Event()
        self.error: tuple[str, BaseException] | None = None
        self.busy: dict[str, float] = {}
        self.lock = threading.Lock()

    def fail(self, stage: str, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = (stage, exc)
        self.stop.set()

    def put(self, q: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                pass
        return _END

    def timed(self, stage: str, fn, *args):
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.busy[stage] = self.busy.get(stage, 0.0) + time.perf_counter() - t


def run_overlapped(source: Iterable, model: Callable, workers: Sequence[tuple[str, Callable]],
                   *, source_name: str = "decode", model_name: str = "model", queue_size: int = 4) -> dict[str, float]:
    """Run `source` → `model` → workers[0] → workers[1] ... with one thread per stage.

    `source` is iterated on its own thread, `model` runs on the calling thread (CUDA and most
    inference libraries prefer one owner thread), each worker on its own thread; a worker's
    return value feeds the next worker. Returns the seconds each stage spent working.
    """
    run = _Run()
    q_src = queue.Queue(maxsize=queue_size)                               # source → model
    q_in = [queue.Queue(maxsize=queue_size) for _ in workers]             # → worker k

    def source_loop():
        it = iter(source)
        try:
            while not run.stop.is_set():
                try:
                    item = run.timed(source_name, next, it)
                except StopIteration:
                    run.put(q_src, _END)
                    break
                if not run.put(q_src, item):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            run.fail(source_name, exc)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def worker_loop(k: int, name: str, fn: Callable):
        out_q = q_in[k + 1] if k + 1 < len(workers) else None
        try:
            while True:
                item = run.get(q_in[k])
                if item is _END:
                    break
                out = run.timed(name, fn, item)
                if out_q is not None and not run.put(out_q, out):
                    return
            if out_q is not None:
                run.put(out_q, _END)
        except BaseException as exc:  # noqa: BLE001
            run.fail(name, exc)

    threads = [threading.Thread(target=source_loop, name=f"depthda-{source_name}", daemon=True)]
    threads += [threading.Thread(target=worker_loop, args=(k, name, fn), name=f"depthda-{name}", daemon=True)
                for k, (name, fn) in enumerate(workers)]
    for t in threads:
        t.start()
    try:
        while True:
            item = run.get(q_src)
            if item is _END:
                break
            out = run.timed(model_name, model, item)
            if workers and not run.put(q_in[0], out):
                break
        if workers:
            run.put(q_in[0], _END)
    except BaseException as exc:  # noqa: BLE001
        run.fail(model_name, exc)
    finally:
        # On success the stages drain and end by themselves; on failure `stop` is already set.
        for t in threads:
            t.join()
    if run.error is not None:
        stage, exc = run.error
        if isinstance(exc, (KeyboardInterrupt, DepthdaError)):
            raise exc
        raise DepthdaError(f"{stage} failed: {type(exc).__name__}: {exc}") from exc
    return run.busy
