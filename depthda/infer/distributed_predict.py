"""`depthda predict FOLDER` split across the processes of a torchrun launch (one per GPU).

    torchrun --nproc_per_node N -m depthda predict FOLDER -o OUT [--depth-format npy]

writes exactly the files one process writes, byte for byte. Each process (rank) predicts a
contiguous share of the folder's sorted listing on its own device (cuda:LOCAL_RANK with nccl, or
the CPU with gloo), and OUT still appears whole or not at all:

1. Rank 0 checks the request, lists the folder and opens the staging folders that will replace
   OUT (and OUT_depth; depthda.utils.fsio.atomic_dir); the others take its plan, so every rank
   splits the same listing, and a bad request is one error, from rank 0.
2. Rank 0 writes its share into its staging folders, every other rank into staging folders of
   its own beside them. Each rank removes only what it created, so a rank stopped by an error or
   Ctrl-C never races another rank's cleanup.
3. The ranks exchange how their shares went. If one failed, every rank drops its staging and
   rank 0 raises the failure of the lowest failing rank (the earliest frames, where one process
   would have stopped).
4. Rank 0 moves the other ranks' files into its staging folders, checks that every image's files
   are there and renames the folders into place; then it tells the others, which keep their
   staging (holding files rank 0 may still be moving) until then.

Ctrl-C (torchrun forwards it) and the SIGTERM with which torchrun stops the others when a process
dies make every rank remove its staging, as Ctrl-C does in one process (_Staging); only a killed
process leaves its own, hidden and swept by the next run writing beside OUT.

Only rank 0 reports. On the other ranks a failed run raises ReportedByRankZero, which the CLI
ends quietly with exit 0: a rank exiting 1 makes torchrun stop the others at once (SIGTERM), so
rank 0 could be killed before it has cleaned up and printed the error. torchrun's exit status
is rank 0's.

On CPU every process runs the networks exactly as one process would (the same engine,
FrameParallel's workers and threads per worker), because the bits may depend on it: kernels
split their sums by thread count. So N processes on one CPU share its cores, and
torchrun buys speed with GPUs, not on a CPU. On CUDA, identical bits also need cuDNN to pick the
same kernels for the same batches, which the whole-batch shares (split_frames) provide.

A single image has nothing to split: rank 0 predicts it, the other ranks return at once. A video
is refused with one error line: the temporal filter takes its frames one after the other.
Every rank must see the same files (one machine, or a shared file system).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from depthda.errors import DepthdaError
from depthda.infer.checks import (PredictOptions, Request, check_request, check_staged, folder_output_names, input_kind,
                                  planned_outputs)
from depthda.infer.local_predict import GPU_BATCH, PredictResult, open_runner, predict_into_folders, predict_local
from depthda.utils.device import pick_device
from depthda.utils.distributed import DistInfo, ReportedByRankZero
from depthda.utils.fsio import _tmp_prefix, atomic_dir, signals_deferred
from depthda.utils.images import is_video_file

# At step 3 a rank that is done waits for the slowest one, which may legitimately take far longer
# than torch's default timeout of 30 minutes (a big folder whose image sizes differ by share). A
# rank that dies does not keep the others waiting: its connections close, and torchrun stops the
# launch when a process fails.
_WAIT_FOR_SLOWEST = timedelta(days=7)


def torchrun_info() -> DistInfo:
    """This process's place in the launch, from the variables torchrun sets."""
    if "RANK" not in os.environ:
        raise DepthdaError(f"WORLD_SIZE is {os.environ.get('WORLD_SIZE')} but RANK is not set: start the "
                           "processes with torchrun")
    return DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))


def predict_distributed(inp: Path, out: Path, o: PredictOptions) -> PredictResult:
    """predict_path in one process of a torchrun launch; see the module docstring."""
    info = torchrun_info()
    if not inp.is_dir():
        return _nothing_to_split(inp, out, o, info)
    if o.cloud is not None and o.cloud.format:
        _checked_alike(info, _refuse_cloud_folder)
    device = _checked_alike(info, lambda: _rank_device(o, info))
    with _process_group(device) as group:
        return _predict_folder(inp, out, dataclasses.replace(o, device=str(device)), info, group)


def _nothing_to_split(inp: Path, out: Path, o: PredictOptions, info: DistInfo) -> PredictResult:
    if info.is_main:
        if input_kind(inp) == "video":
            raise DepthdaError(f"{inp} is a video: the temporal filter takes its frames one after the other, "
                               "so it is not split across processes; run it without torchrun")
        return predict_local(inp, out, o)
    if is_video_file(inp):
        raise ReportedByRankZero(f"{inp} is a video, which is not split across processes")
    return PredictResult("image", out, 0, rank=info.rank)


def _refuse_cloud_folder() -> None:
    raise DepthdaError("a folder's point clouds are written by one process: run it without torchrun")


def _checked_alike(info: DistInfo, check: Callable):
    """`check()`, which every rank makes alike before the ranks can talk: its error is raised on
    rank 0, and as ReportedByRankZero on the others (one error line, not one per rank)."""
    try:
        return check()
    except DepthdaError as exc:
        if info.is_main:
            raise
        raise ReportedByRankZero(str(exc)) from exc


def _rank_device(o: PredictOptions, info: DistInfo) -> torch.device:
    """This rank's device: cuda:LOCAL_RANK for a run on CUDA (--device auto or cuda), else the CPU."""
    if o.pipeline is not None:
        return o.pipeline.device
    device = pick_device(o.device)
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise DepthdaError(f"--device {o.device} names one GPU, but under torchrun each process uses "
                           "cuda:LOCAL_RANK: give --device cuda (or auto)")
    if info.local_rank >= torch.cuda.device_count():
        raise DepthdaError(f"this machine has {torch.cuda.device_count()} GPUs but torchrun started a process with "
                           f"LOCAL_RANK {info.local_rank}: give --nproc_per_node {torch.cuda.device_count()} at most")
    return torch.device("cuda", info.local_rank)


@contextlib.contextmanager
def _process_group(device: torch.device):
    """Join the launch's process group (unless the caller already has) for the block; yields the
    group the ranks coordinate through.

    Coordination only passes small Python objects between the ranks: gloo carries them on the CPU
    whatever the device, and raises when a peer's connection closes. On CUDA the default group
    is nccl (for whatever else runs in the process) and a gloo group is made beside it.
    """
    joined = not dist.is_initialized()
    if joined:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=_WAIT_FOR_SLOWEST)
    group = None
    try:
        if dist.get_backend() != "gloo":
            group = dist.new_group(backend="gloo", timeout=_WAIT_FOR_SLOWEST)
        yield group
    finally:
        if joined:
            dist.destroy_process_group()
        elif group is not None:
            dist.destroy_process_group(group)


# ---------------------------------------------------------------------------- the folder run

@dataclass
class _Plan:
    request: Request
    shares: list[list[Path]]      # each rank's images, in rank order


def split_frames(count: int, ranks: int, batch: int) -> list[range]:
    """Contiguous shares of `count` frames for `ranks` ranks, as even as whole batches allow.

    Whole batches: each rank then forms the batches one process would (for images of one size),
    so a GPU computes every image in the same company, bit for bit. Contiguous: files that map to
    one output name (a.jpg, a.png) are written in listing order, as by one process.
    """
    batches = -(-count // batch)
    starts = [min(-(-r * batches // ranks) * batch, count) for r in range(ranks + 1)]
    return [range(starts[r], starts[r + 1]) for r in range(ranks)]


def _predict_folder(inp: Path, out: Path, o: PredictOptions, info: DistInfo, group) -> PredictResult:
    targets = planned_outputs("folder", inp, out, o.depth_format)[1]  # OUT[, OUT_depth]
    plan = roots = None
    busy, started = {}, None
    with _Staging() as staging:
        # Step 1. Rank 0 opens its staging before the others open theirs: atomic_dir first sweeps
        # the output's folder for temporaries of processes that are gone, and it can only tell
        # from a process id on its own machine.
        with _Attempt() as step:
            if info.is_main:
                plan, roots = _plan(inp, out, o, info, staging)
        plan, failure = _broadcast((plan, step.failure), group)
        if failure is not None:
            raise failure if info.is_main else ReportedByRankZero(str(failure))
        # Step 2.
        with _Attempt() as step:
            if not info.is_main:
                roots = [staging.enter_context(_own_staging(target)) for target in targets]
            busy, started = _predict_share(inp, plan, roots, o, info)
        # Step 3.
        reports = _all_gather((step.failure, roots), info, group)
        failure = next((f for f, _ in reports if f is not None), None)
        # Step 4.
        if failure is None:
            with _Attempt() as step:
                if info.is_main:
                    _publish(inp, plan, [r for _, r in reports], o.depth_format, staging)
            failure = _broadcast(step.failure, group)
        if failure is not None:
            raise failure if info.is_main else ReportedByRankZero(str(failure))
    return PredictResult("folder", out, len(plan.request.images), skipped=plan.request.skipped,
                         depth_output=targets[1] if o.depth_format else None,
                         seconds=time.perf_counter() - started if started is not None else 0.0,
                         stage_seconds=busy, rank=info.rank)


class _Staging(contextlib.ExitStack):
    """A rank's staging folders (rank 0's atomic_dir contexts, or _own_staging).

    Ctrl-C (SIGINT, which torchrun forwards to every process) and SIGTERM (how torchrun stops the
    other processes when one fails; the CLI turns it into KeyboardInterrupt, depthda.cli.run)
    remove the folders as on Ctrl-C in one process. While they are being removed or renamed into
    place, the signals wait until that is done (depthda.utils.fsio.signals_deferred): torchrun's
    SIGTERM typically comes just then, as the survivors of a failed process give up.
    """

    def __exit__(self, *exc) -> bool:
        with signals_deferred():
            return super().__exit__(*exc)


def _plan(inp: Path, out: Path, o: PredictOptions, info: DistInfo,
          staging: _Staging) -> tuple[_Plan, list[Path]]:
    """Rank 0's step 1: check, list and split; open the staging folders that will replace the outputs."""
    request = check_request(inp, out, o)
    # Whole batches of the size the runs use (open_runner; on CPU every frame runs on its own).
    on_cuda = (o.pipeline.device if o.pipeline is not None else torch.device(o.device)).type == "cuda"
    batch = o.batch_size or (GPU_BATCH if on_cuda else 1)
    shares = [request.images[r.start:r.stop] for r in split_frames(len(request.images), info.world_size, batch)]
    roots = [staging.enter_context(atomic_dir(target))
             for target in planned_outputs("folder", inp, out, o.depth_format)[1]]
    return _Plan(request, shares), roots


@contextlib.contextmanager
def _own_staging(target: Path):
    """A folder beside `target` for a rank's share, removed on leaving whatever happened. Named as
    depthda.utils.fsio names temporaries (hidden, with this process's id), so that one left by a
    killed process is swept as stale by the next run writing there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        with signals_deferred():  # no Ctrl-C between creating the folder and knowing its name
            tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), dir=target.parent))
        yield tmp
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _predict_share(inp: Path, plan: _Plan, roots: list[Path], o: PredictOptions,
                   info: DistInfo) -> tuple[dict[str, float], float | None]:
    """Step 2: this rank's images into its staging folders; (seconds each stage was busy, start time)."""
    share = plan.shares[info.rank]
    if not share:
        return {}, None  # no model to load
    # One progress bar, rank 0's: several on one terminal would overwrite each other.
    o = dataclasses.replace(o, progress=o.progress and info.is_main)
    with open_runner(o, plan.request.focal_px) as opts:
        started = time.perf_counter()
        return predict_into_folders(inp, share, roots, **opts), started


def _publish(inp: Path, plan: _Plan, roots_by_rank: list[list[Path]], depth_format: str | None,
             staging: _Staging) -> None:
    """Rank 0's step 4: every file into rank 0's staging folders, each checked, then those renamed into place."""
    # Which rank holds each output file: that of the last image in the listing with its name
    # (a.jpg and a.png both give a.png), as one process writing in listing order leaves it.
    holder: dict[tuple[int, Path], int] = {}
    for rank, share in enumerate(plan.shares):
        for image in share:
            for k, name in enumerate(folder_output_names(inp, image, depth_format)):
                holder[k, name] = rank
    mine = roots_by_rank[0]
    for (k, name), rank in holder.items():
        source = roots_by_rank[rank][k] / name
        if not source.is_file():
            raise DepthdaError(f"process {rank} of the launch reported its share done, but did not write {name}")
        if rank != 0:
            (mine[k] / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, mine[k] / name)
    check_staged(mine, len(plan.request.images))  # the rule of one process: all there, nothing else
    staging.close()  # atomic_dir renames rank 0's staging folders into place


# ---------------------------------------------------------------------------- talking between ranks

class _Attempt:
    """A block whose failure is kept, to be handed to the other ranks, instead of raised.

    Ctrl-C (KeyboardInterrupt) is not kept: it stops this rank at once, and the others learn of it
    when its connections close.
    """

    def __init__(self):
        self.failure: Exception | None = None

    def __enter__(self) -> "_Attempt":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None or not issubclass(kind, Exception):
            return False
        self.failure = _portable(exc)
        return True


def _portable(exc: Exception) -> Exception:
    """`exc` if it can travel to another rank as it is (a user error, a file-system error: rank 0
    then reports it exactly as one process would), else a one-line DepthdaError naming it."""
    if isinstance(exc, (DepthdaError, OSError)):
        with contextlib.suppress(Exception):
            pickle.loads(pickle.dumps(exc))
            return exc
    return DepthdaError(f"{type(exc).__name__}: {exc}")


def _broadcast(value, group):
    """Rank 0's `value`, on every rank."""
    box = [value]
    with _in_contact():
        dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def _all_gather(value, info: DistInfo, group) -> list:
    """Every rank's `value`, in rank order, on every rank."""
    values = [None] * info.world_size
    with _in_contact():
        dist.all_gather_object(values, value, group=group)
    return values


@contextlib.contextmanager
def _in_contact():
    try:
        yield
    except RuntimeError as exc:  # torch.distributed's errors (DistError and its kind) are RuntimeErrors
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DepthdaError(f"lost contact with the other processes of the launch (did one stop?): {first_line}") from exc
