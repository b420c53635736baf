"""Broken inputs to training: each is one `depthda: error: ...` line on stderr, exit code 1, no
traceback, and the run folder's files are left exactly as they were.

stderr is captured at the file-descriptor level (capfd), so OpenCV's own log lines and anything a
DataLoader worker process prints count too.
"""

import os
import shutil

import cv2
import numpy as np
import pytest
import torch

from depthda.cli import run
from depthda.data.synthia_dataset import SynthiaDataset
from train_fixtures import depth_args, make_synthia, style_args

# Whole training runs (the quick loop leaves them out; CI runs them).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthia(tmp_path_factory):
    return make_synthia(tmp_path_factory.mktemp("synthia"))


@pytest.fixture(scope="module")
def depth_run(synthia, tmp_path_factory):
    """A finished 2-step depth run (stage 1); tests copy it before breaking anything."""
    out = tmp_path_factory.mktemp("depth") / "run"
    assert run(depth_args(synthia, out, 2)) == 0
    return out


@pytest.fixture(scope="module")
def style_run(synthia, test_data, tmp_path_factory):
    """A finished 1-step style run (stage 2)."""
    out = tmp_path_factory.mktemp("style") / "run"
    assert run(style_args([test_data / "paper_examples"], synthia, out, 1)) == 0
    return out


def files(folder):
    """Every file under `folder` (TensorBoard logs excepted) by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "tb" not in p.relative_to(folder).parts}


def copy_run(run_folder, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run_folder, out)
    return out


def one_error_line(capfd) -> str:
    captured = capfd.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("depthda: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def refused_untouched(argv, out, capfd, expected: str, keep=None) -> None:
    """Running `argv` exits 1 with one error line containing `expected` and leaves the files
    `keep` picks from `out` (all of them by default) byte-identical."""
    keep = keep or (lambda names: names)
    capfd.readouterr()
    before = files(out)
    before = {k: before[k] for k in keep(before)}
    assert run(argv) == 1
    line = one_error_line(capfd)
    assert expected in line, line
    after = files(out)
    assert {k: after.get(k) for k in before} == before


# ------------------------------------------------------------ --resume with a broken checkpoint
def saved(out) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=True)


class RunsCode:
    """Unpickling it runs a shell command: a checkpoint must never be loaded that way."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


BROKEN_CHECKPOINTS = {
    "empty": (lambda path: path.write_bytes(b""), "the file is empty"),
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[:-100]),
                  "corrupt or incompatible checkpoint"),
    "not a checkpoint": (lambda path: path.write_bytes(b"not a checkpoint"), "corrupt or incompatible checkpoint"),
    "not a dict": (lambda path: torch.save([1, 2, 3], path), "not a depthda training checkpoint: it holds a list"),
    "no task": (lambda path: torch.save({k: v for k, v in saved(path.parent).items() if k != "task"}, path),
                "not a depthda training checkpoint: it has no 'task' entry"),
    "no step": (lambda path: torch.save({k: v for k, v in saved(path.parent).items() if k != "step"}, path),
                "it has no 'step' entry"),
    "no sample count": (lambda path: torch.save({k: v for k, v in saved(path.parent).items() if k != "samples_drawn"},
                                                path), "it has no 'samples_drawn' entry"),
    "bad torch RNG": (lambda path: torch.save({**saved(path.parent), "rng": [
                          {**saved(path.parent)["rng"][0], "torch": torch.zeros(3, dtype=torch.uint8)}]}, path),
                      "its random-number state is damaged"),
    "bad numpy RNG": (lambda path: torch.save({**saved(path.parent), "rng": [
                          {**saved(path.parent)["rng"][0], "numpy": ["MT19937", 5]}]}, path),
                      "its random-number state is damaged"),
    "networks of another size": (lambda path: torch.save({**saved(path.parent), "task": {
                                     **saved(path.parent)["task"], "critic": {"net.0.weight": torch.zeros(2)}}}, path),
                                 "its saved networks and optimisers do not fit this run"),
}


@pytest.mark.parametrize("name", BROKEN_CHECKPOINTS)
def test_broken_checkpoint_is_refused_and_the_run_folder_kept(name, depth_run, synthia, tmp_path, capfd):
    out = copy_run(depth_run, tmp_path)
    breaks, expected = BROKEN_CHECKPOINTS[name]
    breaks(out / "checkpoint.pt")
    refused_untouched(depth_args(synthia, out, 4, "--resume"), out, capfd, expected)


def test_checkpoint_that_would_run_code_is_refused_unrun(depth_run, synthia, tmp_path, capfd):
    out = copy_run(depth_run, tmp_path)
    marker = tmp_path / "code-ran"
    torch.save({**saved(out), "task": RunsCode(marker)}, out / "checkpoint.pt")
    refused_untouched(depth_args(synthia, out, 4, "--resume"), out, capfd,
                      "refused by the weights-only loader (Trying to load unsupported GLOBAL")
    assert not marker.exists()


def test_missing_checkpoint_is_refused(depth_run, synthia, tmp_path, capfd):
    out = copy_run(depth_run, tmp_path)
    (out / "checkpoint.pt").unlink()
    refused_untouched(depth_args(synthia, out, 4, "--resume"), out, capfd, "no checkpoint to resume from")


def test_checkpoint_of_the_other_stage_is_refused(depth_run, style_run, synthia, test_data, tmp_path, capfd):
    depth = copy_run(depth_run, tmp_path / "a")
    refused_untouched(style_args([test_data / "paper_examples"], synthia, depth, 4, "--resume"), depth, capfd,
                      "it was trained with stage=stage1, this run asks for stage=stage2")
    style = copy_run(style_run, tmp_path / "b")
    refused_untouched(depth_args(synthia, style, 4, "--resume"), style, capfd,
                      "it was trained with stage=stage2, this run asks for stage=stage1")


# ------------------------------------------------------------ a bad file found mid-run
def break_eight_bit(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(path), (img // 256).astype(np.uint8))


def break_truncated(path):
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("workers", ["2", "0"])
@pytest.mark.parametrize("breaks, expected", [(break_eight_bit, "8-bit depth in {}: SYNTHIA depth is 16-bit"),
                                              (break_truncated, "cannot decode depth image (corrupt or not an image): {}")])
def test_bad_training_file_met_by_a_loader_process_is_its_own_line(workers, breaks, expected, depth_run, synthia,
                                                                   tmp_path, capfd, monkeypatch):
    from depthda.train.depth_task import DepthTask

    data = tmp_path / "data"
    shutil.copytree(synthia, data)
    # A training file (validation files are read in the main process before training starts),
    # broken once the data set has been opened and checked: the file changes under a running job.
    bad = SynthiaDataset(data, split="train").pairs[3][1]
    build = DepthTask.build

    def build_then_break(self, *args):
        build(self, *args)
        breaks(bad)

    monkeypatch.setattr(DepthTask, "build", build_then_break)
    out = copy_run(depth_run, tmp_path)
    # The resumed run reads every training file before its first checkpoint, at the last step.
    argv = [*depth_args(data, out, 20, "--resume"), "--num-workers", workers]
    refused_untouched(argv, out, capfd, expected.format(bad),
                      keep=lambda names: [n for n in names if n != "train_config.json"])
    assert saved(out)["step"] == 2
