"""Data-parallel training (torchrun, 2 gloo processes on CPU) keeps one model, for both tasks.

(a) At every checkpoint every rank holds the same networks, buffers, optimiser and scaler states
(everything in Task.state_dict() but the per-rank image pools), and it is what rank 0 saves.
(b) A run stopped with --stop-at and resumed ends where the straight run ends.

To see every rank's state, the runs are launched through this file (`__main__` below) rather than
`-m depthda`: it wraps the tasks' public `state_dict` (the Task protocol's), which every rank calls
once per checkpoint for the checkpoint's content, so that each rank also dumps what it returned to
a folder, then runs the CLI's entry point. Nothing in the package changes for the test; the
wrapper only reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from depthda.models.weights import load_exported
from train_fixtures import depth_args, make_synthia, style_args

# Whole training runs (the quick loop leaves them out; CI runs them).
pytestmark = pytest.mark.slow

STEPS, STOP = 4, 2


def torchrun(argv: list[str], dumps: Path) -> None:
    """`depthda <argv>` in 2 gloo processes on CPU; each rank dumps its state at every checkpoint."""
    # This file runs as a script in each rank and imports train_fixtures beside it; Python puts a
    # script's folder on sys.path only without PYTHONSAFEPATH (which CI sets), so say it outright.
    here = str(Path(__file__).resolve().parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(dumps), *argv, "--device", "cpu"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


def assert_same(a, b, where: str = "") -> None:
    """Nested dicts/lists/tuples of tensors and plain values, exactly equal."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


def tensors(state, prefix: str = ""):
    """Every tensor of a nested state, by path."""
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return {prefix: state} if isinstance(state, torch.Tensor) else {}
    return {k: v for key, sub in items for k, v in tensors(sub, f"{prefix}/{key}").items()}


@pytest.fixture(scope="module")
def synthia(tmp_path_factory):
    return make_synthia(tmp_path_factory.mktemp("synthia"), count=8)


@pytest.fixture(scope="module", params=["depth", "style"])
def task(request, synthia, test_data, tmp_path_factory):
    """Builds the command line of a small DDP run of one task and runs it straight to STEPS."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "depth":
        def argv(out, *extra):
            # Every step both networks learn: the critic and the generator's adversarial term.
            return depth_args(synthia, out, STEPS, "--critic-steps", "2", "--l1-weight", "0.5", *extra)
    else:
        # A pool of one image is full after the first step, so from then on each rank's pool draws
        # and stores: a resume that gave rank 1 rank 0's pool would show in the weights.
        config = root / "pool.json"
        config.write_text(json.dumps({"pool_size": 1}))

        def argv(out, *extra):
            return style_args([test_data / "paper_examples"], synthia, out, STEPS, "--config", str(config), *extra)
    straight = root / "straight"
    (root / "dumps").mkdir()
    torchrun(argv(straight, "--checkpoint-every", "1"), root / "dumps")
    return argv, root


def test_every_rank_holds_rank_0s_networks_and_optimisers(task):
    _, root = task
    dumps = root / "dumps"
    final = torch.load(root / "straight" / "checkpoint.pt", weights_only=True)
    for step in range(1, STEPS + 1):
        rank0, rank1 = (torch.load(dumps / f"rank{r}_step{step}.pt", weights_only=True) for r in (0, 1))
        assert_same(rank0["common"], rank1["common"], f"step {step}")
        # The image pools (style task) are each rank's own: different data, different fakes.
        for name in rank0["per_rank"]:
            assert not torch.equal(rank0["per_rank"][name]["images"], rank1["per_rank"][name]["images"])
    saved = {k: v for k, v in final["task"].items() if k not in rank0["per_rank"]}
    assert_same(saved, rank0["common"], "checkpoint")
    # Rank 1's own state is in the checkpoint too, for an exact resume.
    assert_same(final.get("rank_task", [{}])[0], rank1["per_rank"], "rank_task")
    assert len(final["rng"]) == 2 and final["step"] == STEPS
    assert json.loads((root / "straight" / "train_summary.json").read_text())["world_size"] == 2
    load_exported(root / "straight")


def test_stopped_and_resumed_run_ends_where_the_straight_run_ends(task):
    argv, root = task
    split = root / "split"
    (root / "split_dumps").mkdir()
    torchrun(argv(split, "--stop-at", str(STOP)), root / "split_dumps")
    assert torch.load(split / "checkpoint.pt", weights_only=True)["step"] == STOP
    torchrun(argv(split, "--resume"), root / "split_dumps")
    a, b = load_file(str(root / "straight" / "model.safetensors")), load_file(str(split / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    # Every network and optimiser state, not only the exported one.
    straight_state = tensors(torch.load(root / "straight" / "checkpoint.pt", weights_only=True)["task"])
    split_state = tensors(torch.load(split / "checkpoint.pt", weights_only=True)["task"])
    assert straight_state.keys() == split_state.keys()
    for k, v in straight_state.items():
        assert torch.allclose(v.float(), split_state[k].float(), atol=1e-5), k


if __name__ == "__main__":
    # One torchrun process: dump this rank's task state at every checkpoint, then run the CLI as
    # `python -m depthda <argv>` does.
    import itertools

    from depthda.cli import main
    from depthda.train.depth_task import DepthTask
    from depthda.train.style_task import StyleTask

    dumps, sys.argv = Path(sys.argv[1]), [sys.argv[0], *sys.argv[2:]]
    checkpoints = itertools.count(1)  # with --checkpoint-every 1 from step 0: the step

    def dumping(state_dict):
        def state_dict_and_dump(self):
            state = state_dict(self)
            mine = {"common": {k: v for k, v in state.items() if k not in self.per_rank_state},
                    "per_rank": {k: state[k] for k in self.per_rank_state}}
            torch.save(mine, dumps / f"rank{os.environ['RANK']}_step{next(checkpoints)}.pt")
            return state
        return state_dict_and_dump

    for task_class in (DepthTask, StyleTask):
        task_class.state_dict = dumping(task_class.state_dict)
    main()
