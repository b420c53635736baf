"""Training from an exported depth model (--init-from) and the gradient-matching term (--grad-weight)."""

import json

import pytest
import torch

from depthda.cli import run
from depthda.train.losses import gradient_matching
from train_fixtures import depth_args as args
from train_fixtures import make_synthia

# Whole training runs (the quick loop leaves them out; CI runs them).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthia(tmp_path_factory):
    return make_synthia(tmp_path_factory.mktemp("synthia"))


def scalars(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


def test_gradient_matching_judges_edges_not_offsets():
    target = torch.zeros(1, 1, 32, 32)
    target[..., 8:24, 8:24] = 1.0  # a box in front of a wall
    valid = torch.ones_like(target)
    assert gradient_matching(target + 0.3, target, valid).item() == pytest.approx(0.0, abs=1e-7)
    blurred = torch.nn.functional.avg_pool2d(target, 5, 1, 2)
    missed = torch.zeros_like(target)
    assert gradient_matching(blurred, target, valid) > 0
    assert gradient_matching(missed, target, valid) > gradient_matching(blurred, target, valid)
    # pixels without ground truth (and their neighbours' differences) do not count
    hidden = valid.clone()
    hidden[..., 6:26, 6:26] = 0
    assert gradient_matching(missed, target, hidden).item() == pytest.approx(0.0, abs=1e-7)


def test_init_from_starts_where_the_exported_model_ended(synthia, tmp_path):
    first, second, scratch = tmp_path / "first", tmp_path / "second", tmp_path / "scratch"
    assert run(args(synthia, first, 40, "--l1-weight", "1")) == 0
    assert run(args(synthia, scratch, 2, "--l1-weight", "1")) == 0
    assert run(args(synthia, second, 2, "--l1-weight", "1", "--init-from", str(first))) == 0
    trained, fresh, resumed = scalars(first, "loss/l1"), scalars(scratch, "loss/l1"), scalars(second, "loss/l1")
    assert trained[-1] < 0.6 * fresh[0]
    assert resumed[0] < 0.5 * (trained[-1] + fresh[0])  # the first step already has the trained weights
    cfg = json.loads((second / "config.json").read_text())
    assert cfg["init_from"] == str(first)
    assert cfg["training"] == "stage1 L1"  # λ = 1 trains no critic, so the record must not claim one


def test_init_from_refuses_another_network(synthia, tmp_path, capsys):
    first = tmp_path / "first"
    assert run(args(synthia, first, 2)) == 0
    cfg = json.loads((first / "config.json").read_text())
    cfg["depth_param"]["max_depth"] = 50.0
    (first / "config.json").write_text(json.dumps(cfg))
    assert run(args(synthia, tmp_path / "second", 2, "--init-from", str(first))) == 1
    err = capsys.readouterr().err
    assert "init-from" in err and len(err.strip().splitlines()) == 1
    assert run(args(synthia, tmp_path / "third", 2, "--init-from", str(tmp_path / "nothing"))) == 1
    assert not (tmp_path / "third").exists() or not any((tmp_path / "third").iterdir())


def test_grad_weight_trains_and_is_recorded(synthia, tmp_path):
    out = tmp_path / "run"
    assert run(args(synthia, out, 4, "--grad-weight", "0.5")) == 0
    assert len(scalars(out, "loss/gradient_matching")) > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["grad_weight"] == 0.5 and cfg["training"] == "stage1 L1 + WGAN-GP + gradient matching"
