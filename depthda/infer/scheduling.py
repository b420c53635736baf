"""Keeping every core busy during inference: threaded stages, and whole frames per CPU core.

`run_overlapped` runs a source thread (decode), the caller's model function on the calling
thread, and a chain of worker threads (colour-mapping, encoding), linked by bounded queues so
memory stays flat and the slowest stage sets the pace. An exception in any stage stops all of
them and reaches the caller as a DepthdaError; every thread is joined before it returns.

`FrameParallel` is the model stage on CPU: it runs the frames of a batch on separate threads,
one core each, instead of splitting every layer across the cores.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
import torch

from depthda.errors import DepthdaError
from depthda.infer.pipeline import DepthPipeline

# ---------------------------------------------------------------------------- overlapped stages

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
        if isinstance(exc, (KeyboardInterrupt, DepthdaError, OSError)):  # OSError: the CLI names a full disk
            raise exc
        raise DepthdaError(f"{stage} failed: {type(exc).__name__}: {exc}") from exc
    return run.busy


# ---------------------------------------------------------------------------- frames per core

class FrameParallel:
    """CPU model stage that runs the frames of a batch on separate threads, one core each.

    Splitting each convolution across cores (PyTorch's default) makes every layer end in a
    barrier; when another process or another pipeline stage holds a core, OpenMP's spinning
    threads wait for the descheduled one, and a multi-thread forward can run several times slower
    than a one-thread one. Whole frames per core need no barrier and, on an idle machine, are as
    fast as the multi-thread forward (bench: model_ablation).

    The same holds for ONNX Runtime (engine "onnxruntime"): each worker's run gets `threads`
    intra-op threads, on the worker's own thread when that is one.

    Use as a context manager: entering sets torch's and OpenCV's thread counts for the run and
    starts the workers; leaving stops them and restores the thread counts.
    """

    def __init__(self, pipe: DepthPipeline, workers: int | None = None, threads_per_worker: int | None = None):
        cores = os.cpu_count() or 1
        self.pipe = pipe
        self.workers = workers or min(cores, 2)
        self.threads = threads_per_worker or max(1, cores // self.workers)
        self._pool: ThreadPoolExecutor | None = None
        self._saved: tuple[int, int] | None = None  # torch's and OpenCV's thread counts, while entered

    def __enter__(self) -> "FrameParallel":
        if self._saved is not None:
            raise RuntimeError("this FrameParallel is already running")
        self._saved = torch.get_num_threads(), cv2.getNumThreads()
        try:
            torch.set_num_threads(self.threads)
            # OpenCV's own thread pool (resizes in prepare/finish) would compete with the model
            # workers for the same cores: one thread each for the run (bench: more frames/s).
            cv2.setNumThreads(1)
            if self.workers > 1:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="depthda-model")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        pool, saved = self._pool, self._saved
        self._pool = self._saved = None  # left (or never entered): nothing to stop or restore twice
        try:
            if pool is not None:
                # After a failure the frames still queued are of no use: drop them.
                pool.shutdown(wait=True, cancel_futures=exc_type is not None)
        finally:
            if saved is not None:
                torch.set_num_threads(saved[0])
                cv2.setNumThreads(saved[1])

    def __call__(self, prepared: np.ndarray, height: int, width: int) -> np.ndarray:
        return self.submit(prepared, height, width).result()

    def submit(self, prepared: np.ndarray, height: int, width: int) -> "PendingDepth":
        """Queue every frame on its own and return at once; `.result()` waits for the batch.

        A video run keeps several batches in flight, so a worker that finishes early takes the
        next frame instead of waiting for its partner at a per-batch barrier (a core lent to
        decoding or encoding then costs one frame's delay, not the whole model stage's pace).
        """
        if self._saved is None:
            raise RuntimeError("FrameParallel runs frames only inside its `with` block")
        if self._pool is None:
            done = Future()
            done.set_result(self.pipe.run_prepared(prepared, height, width, self.threads))
            return PendingDepth([done])
        frames = np.asarray(prepared)
        return PendingDepth([self._pool.submit(self.pipe.run_prepared, frames[i:i + 1], height, width, self.threads)
                             for i in range(len(frames))])


class PendingDepth:
    """Working-size depth of a batch whose frames are still being computed."""

    def __init__(self, parts):
        self._parts = parts

    def result(self) -> np.ndarray:
        try:
            parts = [p.result() for p in self._parts]
        except DepthdaError:
            raise
        except Exception as exc:  # raised on a model worker: name the stage it came from
            raise DepthdaError(f"model failed: {type(exc).__name__}: {exc}") from exc
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
