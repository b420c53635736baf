"""Full training checkpoints: models, optimisers, scaler, step and every RNG state.

The entries: "step"; "task" (Task.state_dict() of rank 0); "rng" (each rank's RNG states, by
rank); "compat" (Task.compat()); "config"; "best" (the best validation so far, or None);
"samples_drawn" (how many samples each rank has taken from its data stream, where a resumed run's
data continues); and under torchrun, when the task keeps per-rank state, "rank_task" (rank r's
Task.per_rank_state entries at index r - 1). `load_checkpoint` checks these before anything uses them.

Written with torch.save to a temporary file and renamed, so a crash mid-write leaves the previous
checkpoint intact. RNG states are stored as tensors and plain lists so the file loads with
`weights_only=True` (no arbitrary unpickling even of our own files).
"""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from depthda.errors import DepthdaError
from depthda.utils.fsio import atomic_path

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _to_lists(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda"):
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_to_tuples(state["python"]))


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, (tuple, list)) else x


def save_checkpoint(path: str | Path, state: dict) -> None:
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except RuntimeError as exc:  # torch's zip writer reports a short write (full disk) as "unexpected pos"
        raise DepthdaError(f"could not write the checkpoint {path} ({describe(exc)}; is the disk full?); "
                           "the previous checkpoint is intact") from None


# What loading a malformed state raises: load_state_dict of a network, optimiser or pool, and the
# RNG setters. A checkpoint is the user's file, so these are their error, not a bug of ours.
STATE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError)


def describe(exc: BaseException) -> str:
    """An exception in one line: the first line of its message, or its type when it has none."""
    if isinstance(exc, KeyError) and exc.args:
        return f"no entry {exc.args[0]!r}"  # str(KeyError) is only the quoted key
    lines = [line.strip() for line in str(exc).strip().splitlines()]
    if not lines:
        return type(exc).__name__
    text = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]  # "Error(s) in loading state_dict for X:"
    return text if len(text) <= 160 else text[:159] + "…"


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint at `path`, refused in one line unless it is a readable depthda checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise DepthdaError(f"no checkpoint to resume from: {path} does not exist")
    if path.stat().st_size == 0:
        raise DepthdaError(f"corrupt checkpoint {path}: the file is empty")
    try:
        with warnings.catch_warnings():  # e.g. about a foreign file's pickle protocol: the error says enough
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise DepthdaError(f"corrupt or incompatible checkpoint {path}: {_unreadable(exc)}") from None
    _check_layout(path, state)
    return state


def _unreadable(exc: Exception) -> str:
    if isinstance(exc, pickle.UnpicklingError):
        # The weights-only loader met something other than tensors and plain data (code to run, or
        # junk). Its message opens with advice to load the file unsafely; the reason comes later.
        lines = [line.strip() for line in str(exc).splitlines()]
        reason = next((line for line in lines if line.startswith(("Trying to load", "Unsupported"))), None)
        return "refused by the weights-only loader" + (f" ({reason.rstrip('.')})" if reason else "")
    return describe(exc).split(". ")[0]  # miniz's first sentence is the reason; the rest is boilerplate


def _check_layout(path: Path, state) -> None:
    """The entries the Trainer reads before handing the rest to the task, with their types."""
    def refuse(why: str):
        raise DepthdaError(f"{path} is not a depthda training checkpoint: {why}")

    if not isinstance(state, dict):
        refuse(f"it holds a {type(state).__name__}, not a dict")
    for key, kind in (("step", int), ("task", dict), ("rng", list), ("compat", dict), ("samples_drawn", int)):
        if key not in state:
            refuse(f"it has no {key!r} entry")
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            refuse(f"its {key!r} entry is a {type(state[key]).__name__}, not a {kind.__name__}")
    if state["step"] < 0:
        refuse(f"its step is {state['step']}")
    if not state["rng"] or not all(isinstance(r, dict) for r in state["rng"]):
        refuse("its 'rng' entry is not a list of random-number states")
    best = state.get("best")
    if best is not None and not (isinstance(best, dict) and isinstance(best.get("score"), (int, float))
                                 and isinstance(best.get("step"), int)):
        refuse("its 'best' entry has no numeric score and step")
    if state["samples_drawn"] < 0:
        refuse(f"its 'samples_drawn' entry is {state['samples_drawn']}, not a count")
    own = state.get("rank_task", [])
    if not isinstance(own, list) or not all(isinstance(r, dict) for r in own):
        refuse("its 'rank_task' entry is not a list of task states")
    if own and len(own) != len(state["rng"]) - 1:
        refuse(f"it has the per-rank state of {len(own) + 1} processes and random-number states of {len(state['rng'])}")
