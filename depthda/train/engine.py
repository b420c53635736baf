"""The training loop both tasks share.

The depth and style tasks are each a `Task`: it builds its networks and optimisers, takes one
optimisation step on a batch, validates, and says which generator to export. The Trainer does the
rest identically for both: torchrun/DDP, reproducible data order, mixed precision, atomic
checkpoints with every RNG state (so `--resume` continues exactly), the exported
`model.safetensors` + `config.json`, the best weights by validation, TensorBoard, and a progress
bar that separates waiting for data from computing.

Under torchrun every rank holds the same networks and optimiser states at every step boundary
(rank 0's: see `Task.networks`), while data, random numbers and the state a task names in
`Task.per_rank_state` are each rank's own; a checkpoint holds the shared state once and the
per-rank state of every rank, so a resumed run continues as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from functools import partial
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from depthda.errors import DepthdaError
from depthda.models.weights import save_exported
from depthda.train.checkpoint import (CHECKPOINT_NAME, STATE_ERRORS, describe, load_checkpoint, rng_state,
                                      save_checkpoint, set_rng_state)
from depthda.train.config import TrainConfig, config_to_dict
from depthda.train.distributed import (DistInfo, barrier, broadcast_from_main, gather_to_main, init_distributed,
                                       shutdown_distributed)
from depthda.train.sampler import FailedSample, StreamDataset, StreamSampler, collate
from depthda.utils.device import autocast_dtype
from depthda.utils.fsio import exclusive_lock, write_text_atomic
from depthda.utils.memory import check_fits
from depthda.utils.outputs import check_outputs, files_under


class Task(Protocol):
    """What a task gives the Trainer. Batches are the train dataset's items collated and moved to
    the device; validation runs on the main process only."""

    name: str
    """Label of the progress bar ("stage1", "stage2": the paper's names, as in the CLI commands)."""

    per_rank_state: tuple[str, ...]
    """Entries of `state_dict()` each torchrun process keeps for itself (the style task's image
    pools of its own fakes); the checkpoint holds them for every rank. Everything else in
    `state_dict()` is identical on all ranks."""

    batches_per_step: int
    """Batches each `train_step` takes from the data stream (the depth task with fresh critic
    batches: critic_steps + 1)."""

    def build(self, device: torch.device, dist: DistInfo, amp_dtype: torch.dtype | None) -> None:
        """Create networks, optimisers and scalers on `device`. Called once, after the Trainer has
        seeded every RNG, so initial weights are a function of the seed; `amp_dtype` is the
        autocast dtype (None: fp32)."""
        ...

    def networks(self) -> dict[str, nn.Module]:
        """Every network the task builds, by name, unwrapped (no DDP), moving averages included.

        Under torchrun the Trainer gives every rank rank 0's parameters and buffers after `build`
        (DDP does so for the networks it wraps; a network it cannot wrap would otherwise start
        differently on each rank) and rank 0's buffers after every step (see
        distributed.broadcast_from_main)."""
        ...

    def train_dataset(self) -> Dataset:
        """The training items; the Trainer decides their order (train/sampler.py)."""
        ...

    def val_batches(self) -> list | None:
        """Fixed validation batches (the same every time), or None for no validation."""
        ...

    def train_step(self, batches: list, step: int) -> dict[str, float]:
        """One optimisation step on a list of `batches_per_step` batches, in the data order;
        returns TensorBoard scalars by tag (losses, learning rates)."""
        ...

    def validate(self, batches: list) -> dict[str, float]:
        """Metrics on the validation batches, logged under val/. "score" is required: lower is
        better, and the lowest decides which weights are exported to best/."""
        ...

    def images(self, batch) -> dict[str, torch.Tensor]:
        """TensorBoard image grids (3×H×W in [0, 1]) by tag, of the first validation batch (the
        step's last training batch when there is no validation)."""
        ...

    def state_dict(self) -> dict:
        """Everything `load_state_dict` needs to continue exactly: weights, optimisers, scalers,
        schedules, pools. The Trainer adds the step and the RNG states."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`'s output; called after `build`."""
        ...

    def compat(self) -> dict:
        """The settings a run's checkpoint is only valid for (task, preset, size, ...).

        Stored in every checkpoint. On --resume the Trainer refuses, before changing anything in the
        run folder, when any of these keys has a different value in the checkpoint (a key the
        checkpoint lacks counts as different); settings not listed may change between sessions.
        """
        ...

    def export_model(self) -> nn.Module:
        """The network written to model.safetensors (and best/): the one inference uses."""
        ...

    def export_config(self) -> dict:
        """config.json for the exported network: its architecture plus what inference needs to know."""
        ...

    def final_report(self) -> str | None:
        """Text for the user once training is over (e.g. the last validation in words), or None."""
        ...


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _worker_init(_, cv2_log_level: int):
    cv2.setNumThreads(0)       # each loader worker is one process; OpenCV's own threads would oversubscribe
    # The main process's: a worker started by spawn or forkserver does not inherit it.
    cv2.utils.logging.setLogLevel(cv2_log_level)
    torch.set_num_threads(1)


def _to_device(batch, device):
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return batch


RUN_FILES = (CHECKPOINT_NAME, "model.safetensors", "config.json", "train_config.json", "train_summary.json")
RUN_FOLDERS = ("best", "tb")
# Peak memory of a CPU training step grows by about this much per pixel of a batch (activations
# kept for the backward pass, the critic's too); docs/robustness.md gives the measurement.
TRAIN_BYTES_PER_PIXEL = 1000
LOCK_NAME = "train.lock"  # held (flock) while a run writes the folder; stays as an empty file


def check_run_paths(cfg: TrainConfig, reads=()) -> None:
    """What a run writes into cfg.out may not overwrite what it reads: --init-from's model, the
    training data, `reads` (e.g. the --config file); see depthda.utils.outputs."""
    out = Path(cfg.out)
    data = [getattr(cfg, "data_root", None), getattr(cfg, "synthetic", None), *getattr(cfg, "real", [])]
    check_outputs(reads=[*reads, *files_under(getattr(cfg, "init_from", None))], trees=data,
                  files=[out / name for name in RUN_FILES], folders=[out / name for name in RUN_FOLDERS])


class _Clock:
    """Where a step's time goes: waiting for data or computing (each step's, for the log), and the
    totals of the steps that are counted (the first is not: it starts the loader workers)."""

    def __init__(self, images_per_step: int):
        self.images_per_step = images_per_step
        self.wait_total = self.compute_total = 0.0
        self.images = 0
        self.wait = self.compute = 0.0
        self.t_prev = time.perf_counter()

    def data_ready(self) -> None:
        self.t_data = time.perf_counter()

    def step_done(self, counted: bool) -> None:
        t_done = time.perf_counter()
        self.wait, self.compute = self.t_data - self.t_prev, t_done - self.t_data
        self.t_prev = t_done
        if counted:
            self.wait_total += self.wait
            self.compute_total += self.compute
            self.images += self.images_per_step

    def last_ms(self) -> dict[str, float]:
        return {"time/data_wait_ms": self.wait * 1e3, "time/compute_ms": self.compute * 1e3}

    def summary(self, counted_steps: int) -> dict[str, float]:
        measured = max(1e-9, self.wait_total + self.compute_total)
        return {"images_per_s": self.images / measured,
                "data_wait_fraction": self.wait_total / measured,
                "compute_ms_per_step": 1e3 * self.compute_total / max(1, counted_steps),
                "data_wait_ms_per_step": 1e3 * self.wait_total / max(1, counted_steps)}


class Trainer:
    def __init__(self, task: Task, cfg: TrainConfig, resume: bool = False, progress: bool = True):
        self.task, self.cfg, self.resume, self.progress = task, cfg, resume, progress
        self.out = Path(cfg.out)

    # ---------------------------------------------------------------- set-up
    def _check_run_folder(self) -> dict | None:
        ckpt = self.out / CHECKPOINT_NAME
        if self.resume:
            state = load_checkpoint(ckpt)
            want, have = self.task.compat(), state["compat"]
            diff = {k: v for k, v in want.items() if have.get(k) != v}
            if diff:
                k, new = next(iter(diff.items()))
                old = f"it was trained with {k}={have[k]}" if k in have else f"it does not record its {k}"
                raise DepthdaError(f"cannot resume {ckpt}: {old}, this run asks for {k}={new}")
            if state["step"] >= self.cfg.steps:
                raise DepthdaError(f"{ckpt} is already at step {state['step']}; ask for more --steps to continue")
            return state
        if ckpt.exists():
            raise DepthdaError(f"{self.out} already holds a training run; pass --resume to continue it or choose another --out")
        return None

    def _seed(self, rank: int) -> None:
        seed = self.cfg.seed * 1000 + rank
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)

    # ---------------------------------------------------------------- run
    def run(self) -> dict:
        cfg = self.cfg
        check_run_paths(cfg)
        dist, device = init_distributed(cfg.device)
        try:
            if device.type == "cpu":
                h, w = cfg.size
                check_fits(cfg.batch_size * h * w * TRAIN_BYTES_PER_PIXEL,
                           f"training batches of {cfg.batch_size} at {h}x{w}")
            # Two runs writing one folder would interleave their checkpoints: the second is refused.
            busy = (f"another training is writing to {self.out} (it holds {self.out / LOCK_NAME}); "
                    "wait for it or choose another --out")
            with exclusive_lock(self.out / LOCK_NAME, busy) if dist.is_main else contextlib.nullcontext():
                return self._run(dist, device)
        finally:
            shutdown_distributed()

    def _run(self, dist: DistInfo, device: torch.device) -> dict:
        """The training loop: each step draws its batches and trains on them, then logs, validates
        and checkpoints when due."""
        self.dist, self.device = dist, device
        start = self._start()
        loader = self._loader()
        self.val = self.task.val_batches() if dist.is_main else None
        self._open_outputs(start)
        data = iter(loader)
        # --stop-at: checkpoint and exit there (at least one step on).
        end = min(self.cfg.steps, self.cfg.steps if self.cfg.stop_at is None else max(start + 1, self.cfg.stop_at))
        self.clock = _Clock(self.task.batches_per_step * self.cfg.batch_size * dist.world_size)
        try:
            for step in range(start, end):
                batches = self._draw(data)
                self.clock.data_ready()
                logs = self._step(batches, step)
                self.clock.step_done(counted=step > start)  # the first batch includes starting the loader workers
                done = step + 1
                self._log(logs, done, batches[-1])
                self._validate(done)
                self._maybe_checkpoint(done, end)
        finally:
            self._close_outputs()
        return self._summary(start, end)

    # ---------------------------------------------------------------- the loop's steps
    def _start(self) -> int:
        """Build the task's networks (from the checkpoint with --resume); the step to start at."""
        state = self._check_run_folder()
        self._seed(self.dist.rank)
        self.task.build(self.device, self.dist, autocast_dtype(self.device, self.cfg.amp))
        self.networks = list(self.task.networks().values())
        for net in self.networks:
            broadcast_from_main(net, self.dist)
        # Samples this rank has taken from its data stream: where a resumed run's data continues.
        self.samples_drawn, self.best = 0, None
        if state is None:
            return 0
        self._restore(state)
        self.samples_drawn, self.best = state["samples_drawn"], state.get("best")
        return state["step"]

    def _loader(self) -> DataLoader:
        """Batches in the stream order of train/sampler.py, continuing after `samples_drawn`."""
        cfg, dist = self.cfg, self.dist
        dataset = self.task.train_dataset()
        if len(dataset) < cfg.batch_size:
            raise DepthdaError(f"only {len(dataset)} training samples for a batch size of {cfg.batch_size}")
        return DataLoader(
            StreamDataset(dataset), batch_size=cfg.batch_size,
            sampler=StreamSampler(len(dataset), cfg.seed, self.samples_drawn, dist.rank, dist.world_size),
            # More loader processes than CPUs only adds contention (and a PyTorch warning); the data
            # order and augmentation do not depend on the worker count.
            num_workers=min(cfg.num_workers, usable_cpus()), pin_memory=self.device.type == "cuda", drop_last=True,
            collate_fn=collate, worker_init_fn=partial(_worker_init, cv2_log_level=cv2.utils.logging.getLogLevel()),
            persistent_workers=False,
            # Its own generator: starting an iterator would otherwise draw from the global RNG and
            # shift every later random number of a resumed run.
            generator=torch.Generator().manual_seed(cfg.seed))

    def _open_outputs(self, start: int) -> None:
        """train_config.json, the TensorBoard writer and the progress bar (main process only)."""
        self.writer = self.bar = None
        self.window: dict[str, list[float]] = {}  # each logged value of the steps since the last log
        if not self.dist.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out / "train_config.json", json.dumps(config_to_dict(self.cfg), indent=2) + "\n")
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(self.out / "tb"), purge_step=start if start else None)
        if self.progress:
            from tqdm import tqdm
            self.bar = tqdm(total=self.cfg.steps, initial=start, desc=f"{self.task.name}", unit="step",
                            dynamic_ncols=True, disable=None)

    def _draw(self, data) -> list:
        """The next `batches_per_step` batches of the stream; a sample that failed to load is its error."""
        batches = [next(data) for _ in range(self.task.batches_per_step)]
        for b in batches:
            if isinstance(b, FailedSample):
                raise DepthdaError(b.message)
        self.samples_drawn += len(batches) * self.cfg.batch_size
        return batches

    def _step(self, batches: list, step: int) -> dict[str, float]:
        """One optimisation step; afterwards every rank holds rank 0's buffers."""
        logs = self.task.train_step([_to_device(b, self.device) for b in batches], step)
        for net in self.networks:
            broadcast_from_main(net, self.dist, buffers_only=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return logs

    def _due(self, done: int, every: int) -> bool:
        return bool(every) and (done % every == 0 or done == self.cfg.steps)

    def _log(self, logs: dict[str, float], done: int, batch) -> None:
        """The step's scalars into the window, written as means when due; image grids when due."""
        for k, v in {**logs, **self.clock.last_ms()}.items():
            self.window.setdefault(k, []).append(float(v))
        if self._due(done, self.cfg.log_every):
            if self.writer is not None:
                self._log_window(done)
            self.window = {}  # on every rank, or the other ranks' windows grow without end
        if self.writer is not None and self._due(done, self.cfg.image_every):
            for tag, grid in self.task.images(self.val[0] if self.val else batch).items():
                self.writer.add_image(tag, grid, done)
        if self.bar is not None:
            self.bar.update(1)

    def _validate(self, done: int) -> None:
        """Validation metrics when due; the best weights so far are exported to best/."""
        if not (self.dist.is_main and self.val and self._due(done, self.cfg.val_every)):
            return
        metrics = self.task.validate(self.val)
        for k, v in metrics.items():
            self.writer.add_scalar(f"val/{k}", v, done)
        if self.best is None or metrics["score"] < self.best["score"]:
            self.best = {"step": done, **metrics}
            save_exported(self.out / "best", self.task.export_model(),
                          {**self.task.export_config(), "step": done, "val": metrics})

    def _maybe_checkpoint(self, done: int, end: int) -> None:
        if self._due(done, self.cfg.checkpoint_every) or done == end:
            self._save(done)

    def _close_outputs(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()

    def _summary(self, start: int, end: int) -> dict:
        """Throughput and the best validation, also written to train_summary.json."""
        summary = {"steps": end, "start": start, "world_size": self.dist.world_size,
                   **self.clock.summary(end - start - 1), "best": self.best}
        if self.dist.is_main:
            write_text_atomic(self.out / "train_summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _log_window(self, done: int) -> None:
        """Means of the steps since the last log to TensorBoard, and a summary to the progress bar."""
        window, writer = self.window, self.writer
        for k, v in window.items():
            writer.add_scalar(k, float(np.mean(v)), done)
        wait_ms, compute_ms = sum(window["time/data_wait_ms"]), sum(window["time/compute_ms"])
        ips = self.clock.images_per_step * len(window["time/compute_ms"]) / max(1e-9, (wait_ms + compute_ms) / 1e3)
        writer.add_scalar("time/images_per_s", ips, done)
        if self.bar is not None:
            postfix = {}
            main_loss = next((k for k in window if k.startswith("loss/")), None)
            if main_loss:
                postfix[main_loss.split("/")[-1]] = f"{np.mean(window[main_loss]):.4f}"
            postfix["img/s"] = f"{ips:.1f}"
            postfix["data%"] = f"{100 * wait_ms / max(1e-9, wait_ms + compute_ms):.0f}"
            self.bar.set_postfix(postfix)

    def _restore(self, state: dict) -> None:
        """Load a checkpoint into the built task and this rank's RNGs; any part that does not fit
        is refused in one line (nothing has been written to the run folder yet)."""
        ckpt, dist = self.out / CHECKPOINT_NAME, self.dist
        rngs, own = state["rng"], state.get("rank_task")
        if len(rngs) != dist.world_size:
            raise DepthdaError(f"cannot resume: the checkpoint was written by {len(rngs)} processes, this run has {dist.world_size}")
        task_state = state["task"]
        if own and dist.rank > 0:
            task_state = {**task_state, **own[dist.rank - 1]}
        try:
            self.task.load_state_dict(task_state)
        except STATE_ERRORS as exc:
            raise DepthdaError(f"cannot resume {ckpt}: its saved networks and optimisers do not fit this run "
                               f"({describe(exc)})") from None
        try:
            set_rng_state(rngs[dist.rank])
        except STATE_ERRORS as exc:
            raise DepthdaError(f"cannot resume {ckpt}: its random-number state is damaged ({describe(exc)})") from None

    def _save(self, done: int) -> None:
        dist = self.dist
        task_state = self.task.state_dict()
        ranks = gather_to_main({"rng": rng_state(), "task": {k: task_state[k] for k in self.task.per_rank_state}}, dist)
        if dist.is_main:
            state = {"step": done, "task": task_state, "rng": [r["rng"] for r in ranks], "compat": self.task.compat(),
                     "config": config_to_dict(self.cfg), "best": self.best, "samples_drawn": self.samples_drawn}
            if dist.enabled and self.task.per_rank_state:
                # Rank 0's own entries are in "task" already; rank r's are rank_task[r - 1].
                state["rank_task"] = [r["task"] for r in ranks[1:]]
            save_checkpoint(self.out / CHECKPOINT_NAME, state)
            save_exported(self.out, self.task.export_model(), {**self.task.export_config(), "step": done})
        barrier(dist)
