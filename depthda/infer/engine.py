"""Which library runs the networks: ONNX Runtime on a CPU, torch on CUDA (`--engine auto`).

ONNX Runtime runs DepthPipeline's numpy path (run_prepared: prepare → networks → finish, what
predict, eval, bench and `pipe(rgb_array)` use) on the CPU; the tensor path (`pipe(tensor)`,
tracing, export) stays torch. Resizing, padding, finishing and the temporal filter are the same
numpy/OpenCV code under either engine, so only the networks' arithmetic differs (by centimetres at
most, where depth is far; `depthda bench` reports the largest difference over a clip).

The graph. One ONNX graph per model and padded working size: B×Hp×Wp×3 uint8 (a prepared batch,
as it comes) → B×Hp×Wp metres (cropped to the frame's hn×wn outside: several working sizes pad
to one size), i.e. DepthPipeline.networks traced by torch.onnx (the export that
`depthda export --format onnx` uses, trace_onnx). It is made on the first frame of that size,
checked against torch on a real frame (the shipped sample clip's first, resized; largest
difference at most AGREEMENT_M, else the model runs on torch with one warning line), and written
atomically to a cache file named by a hash of the weights and configs, the working size and
depthda's version, so it is made once per model and size and never stale. The graph's own sha256
is written beside it and checked on every load: a graph whose bytes changed on disk can still
load and give wrong depth, so it is made again.

Where the cache lives (cache_dir): $DEPTHDA_CACHE if set; else beside the model (`onnx/` in the
pipeline folder, or in the depth run's folder for --style/--depth runs) when that folder is
writable and is not the model shipped with depthda; else $XDG_CACHE_HOME/depthda/onnx (default
~/.cache/depthda/onnx). The shipped model is never written beside: its folder is the source
checkout or site-packages, which a run must not change. With `--engine onnxruntime` a cache
folder that cannot be written (a file, read-only, full) is an error; with `auto` the model then
runs on torch, with one warning line.

Threads. A session runs with `threads` intra-op threads (FrameParallel's threads per worker: one
on a two-core machine, where two workers each run a whole frame) and no spinning, since the
decode, colour and encode stages share the same cores; ONNX Runtime sessions take concurrent
runs from several threads, so one session serves all workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

import depthda
from depthda.errors import DepthdaError, DepthdaWarning
from depthda.infer.checks import ENGINES
from depthda.paths import default_checkpoint, sample_video
from depthda.utils.fsio import atomic_path, write_text_atomic

AGREEMENT_M = 0.01     # an exported graph must agree with torch to 1 cm on the check frame
ONNX_OPSET = 17


class EngineWarning(DepthdaWarning):
    """A model fell back from ONNX Runtime to torch."""


def resolve_engine(engine: str, device: torch.device) -> str:
    """`auto` → onnxruntime on a CPU, torch on CUDA; an explicit choice must fit the device."""
    if engine not in ENGINES:
        raise DepthdaError(f"unknown engine {engine!r} (use {', '.join(ENGINES)})")
    if engine == "auto":
        return "onnxruntime" if device.type == "cpu" else "torch"
    if engine == "onnxruntime" and device.type != "cpu":
        raise DepthdaError(f"--engine onnxruntime runs on the CPU, not {device}: give --device cpu or --engine torch")
    return engine


def versions() -> dict[str, str]:
    """The engines' versions, for reports."""
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}


# ---------------------------------------------------------------------------- export

def trace_onnx(module: nn.Module, example: torch.Tensor, path: Path, dynamic_batch: bool = True) -> None:
    """Trace `module` on `example` into an ONNX file `image` → `depth` (batch size free)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints: the size is fixed by design
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["image"], output_names=["depth"],
                          dynamic_axes={"image": {0: "batch"}, "depth": {0: "batch"}} if dynamic_batch else None)


class _Networks(nn.Module):
    """A prepared batch (B×Hp×Wp×3 uint8) → B×Hp×Wp metres, as DepthPipeline.networks computes it,
    padding included: inputs of several working sizes pad to the same size, and each crops its own."""

    def __init__(self, pipe):
        super().__init__()
        self.pipe = pipe

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.pipe.networks(image.permute(0, 3, 1, 2), image.shape[1], image.shape[2])


def check_frame(hp: int, wp: int) -> np.ndarray:
    """1×hp×wp×3 uint8: the shipped clip's first frame resized to the padded working size (a real
    street scene: the agreement is checked on what the model sees), else a fixed random pattern."""
    frame = None
    try:
        cap = cv2.VideoCapture(str(sample_video()))
        ok, bgr = cap.read()
        cap.release()
        if ok:
            frame = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (wp, hp), interpolation=cv2.INTER_AREA)
    except DepthdaError:
        pass
    if frame is None:
        frame = np.random.default_rng(0).integers(0, 256, (hp, wp, 3), dtype=np.uint8)
    return np.ascontiguousarray(frame[None])


# ---------------------------------------------------------------------------- cache

def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "depthda" / "onnx"


def cache_dir(model_dir: Path | None) -> Path:
    """Where a model's graphs are kept (module docstring)."""
    if os.environ.get("DEPTHDA_CACHE"):
        return Path(os.environ["DEPTHDA_CACHE"])
    if model_dir is not None and model_dir.is_dir() and os.access(model_dir, os.W_OK):
        try:
            shipped = model_dir.resolve() == default_checkpoint().resolve()
        except DepthdaError:
            shipped = False
        if not shipped:
            return model_dir / "onnx"
    return user_cache_dir()


def check_cache_dir(folder: Path) -> None:
    """The cache folder exists or can be made, and graphs can be written into it."""
    if folder.exists() and not folder.is_dir():
        raise DepthdaError(f"cannot keep ONNX Runtime's graphs in {folder}: it is a file, not a folder; set "
                           "$DEPTHDA_CACHE to a writable folder, or give --engine torch")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".depthda-probe-")
        probe.close()
    except OSError as exc:
        raise _cache_error(folder, exc) from None


def _cache_error(folder: Path, exc: OSError) -> DepthdaError:
    return DepthdaError(f"cannot keep ONNX Runtime's graphs in {folder}: {exc.strerror or exc}; set "
                        "$DEPTHDA_CACHE to a writable folder, or give --engine torch")


# A cached graph is used only if its bytes still have the sha256 recorded beside it when it was
# made and checked: a graph corrupted on disk can still load, and would give wrong depth.
def _digest_path(graph: Path) -> Path:
    return graph.with_name(graph.name + ".sha256")


def _digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _recorded_digest(graph: Path) -> str | None:
    try:
        return _digest_path(graph).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def weights_hash(pipe) -> str:
    """sha256 of both networks' weights and configs (what decides the graph besides its size)."""
    h = hashlib.sha256()
    for name, net, config in (("style", pipe.style, pipe.style_config), ("depth", pipe.depth, pipe.depth_config)):
        h.update(name.encode())
        if net is None:
            continue
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
        for key, tensor in sorted(net.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------- sessions

class OrtNetworks:
    """The networks of one DepthPipeline on ONNX Runtime: a session per padded working size and
    thread count, made (exported, checked, cached) on first use; None where that failed and the
    pipeline runs torch instead."""

    def __init__(self, pipe, model_dir: Path | None = None, required: bool = False):
        """`required`: ONNX Runtime was asked for by name (--engine onnxruntime), so a cache that
        cannot be written is an error; otherwise (auto) the model then runs on torch, with a warning."""
        import onnxruntime  # a core dependency; imported here so the torch engine does not need it loaded

        self._ort = onnxruntime
        self.pipe = pipe
        self.dir = cache_dir(model_dir)
        self.required = required
        if required:
            check_cache_dir(self.dir)
        self._hash: str | None = None
        self._sessions: dict[tuple[int, int, int], object] = {}
        self._lock = threading.Lock()
        self.max_abs_diff: dict[tuple[int, int], float] = {}   # check-frame |Δ| (m) of graphs made here

    def graph_path(self, hp: int, wp: int) -> Path:
        if self._hash is None:
            self._hash = weights_hash(self.pipe)
        style = "" if self.pipe.style is not None else "-nostyle"
        return self.dir / f"{self._hash[:24]}{style}-{hp}x{wp}-depthda{depthda.__version__}.onnx"

    def session(self, hp: int, wp: int, threads: int):
        """The session for this size and thread count, or None (the model runs on torch)."""
        key = (hp, wp, threads)
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = self._open(hp, wp, threads)
            return self._sessions[key]

    def _options(self, threads: int):
        so = self._ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads must not spin on cores that decoding, colouring and encoding need.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3  # errors only: its optimiser's notes are not the user's business
        return so

    def _load(self, path: Path, threads: int):
        return self._ort.InferenceSession(str(path), self._options(threads), providers=["CPUExecutionProvider"])

    def _open(self, hp: int, wp: int, threads: int):
        path = self.graph_path(hp, wp)
        if path.is_file() and _digest_file(path) == _recorded_digest(path):
            try:
                return self._load(path, threads)
            except Exception:  # noqa: BLE001 - an unreadable cache file is made again below
                pass
        try:
            return self._export(path, hp, wp, threads)
        except OSError as exc:
            if self.required:  # the file system said no (a file where the folder goes, a full disk)
                raise _cache_error(self.dir, exc) from None
            return self._fall_back(hp, wp, exc)
        except Exception as exc:  # noqa: BLE001 - any failure to export means: run on torch
            return self._fall_back(hp, wp, exc)

    def _fall_back(self, hp: int, wp: int, exc: Exception) -> None:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warnings.warn(EngineWarning(f"this model does not run on ONNX Runtime at {hp}x{wp} ({reason}); "
                                    "running it with torch"), stacklevel=3)
        return None

    def _export(self, path: Path, hp: int, wp: int, threads: int):
        frame = check_frame(hp, wp)
        graph = _Networks(self.pipe).eval()
        with torch.inference_mode():
            reference = graph(torch.from_numpy(frame)).float().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            trace_onnx(graph, torch.from_numpy(frame), tmp)
            got = self._load(tmp, threads).run(None, {"image": frame})[0]
            if got.shape != reference.shape:
                raise DepthdaError(f"the graph returns shape {got.shape}, torch {reference.shape}")
            diff = float(np.abs(got - reference).max())
            if not diff <= AGREEMENT_M:
                raise DepthdaError(f"the graph differs from torch by {diff:.3g} m on a sample frame")
            digest = _digest_file(tmp)
        write_text_atomic(_digest_path(path), digest + "\n")  # after the graph: a graph without it is made again
        self.max_abs_diff[(hp, wp)] = diff
        return self._load(path, threads)

    def run(self, batch: np.ndarray, hn: int, wn: int, threads: int) -> np.ndarray | None:
        """B×Hp×Wp×3 uint8 → B×hn×wn metres (unscaled), or None if this size runs on torch."""
        session = self.session(batch.shape[1], batch.shape[2], threads)
        if session is None:
            return None
        return np.ascontiguousarray(session.run(None, {"image": np.ascontiguousarray(batch)})[0][:, :hn, :wn])
