import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from depthda.cli import run
from depthda.models.weights import load_exported
from train_fixtures import depth_args as args
from train_fixtures import make_synthia

# Whole training runs (the quick loop leaves them out; CI runs them).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthia(tmp_path_factory):
    return make_synthia(tmp_path_factory.mktemp("synthia"))


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_overfits_tiny_synthia(synthia, tmp_path):
    out = tmp_path / "run"
    assert run(args(synthia, out, 40, "--l1-weight", "0.99", "--critic-steps", "1")) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    l1 = [e.value for e in acc.Scalars("loss/l1")]
    assert l1[-1] < 0.6 * l1[0], l1
    for tag in ("wgan/wasserstein", "wgan/gradient_penalty", "lr/generator", "time/data_wait_ms", "time/compute_ms"):
        assert tag in acc.Tags()["scalars"]
    assert "images/rgb_gt_pred" in acc.Tags()["images"]
    model, cfg = load_exported(out)
    assert cfg["kind"] == "depth" and cfg["size"] == [64, 192] and cfg["depth_param"]["kind"] == "log"
    assert cfg["focal_px"] > 0 and cfg["preset"] == "small" and cfg["step"] == 40
    assert (out / "best" / "model.safetensors").is_file()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["images_per_s"] > 0 and 0 <= summary["data_wait_fraction"] < 1


def test_resume_is_exact(synthia, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(args(synthia, straight, 6)) == 0
    assert run(args(synthia, split, 6, "--stop-at", "3")) == 0
    assert torch.load(split / "checkpoint.pt", weights_only=True)["step"] == 3
    assert run(args(synthia, split, 6, "--resume")) == 0
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    # A fresh run of 3 steps differs: the comparison above can fail.
    assert run(args(synthia, tmp_path / "three", 3)) == 0
    c = weights(tmp_path / "three")
    assert any(not torch.allclose(a[k].float(), c[k].float(), atol=1e-5) for k in a)


def test_bad_inputs_are_one_line_errors(synthia, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(args(tmp_path / "missing", out, 2)) == 1
    assert "SYNTHIA" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run(args(tmp_path / "empty", out, 2)) == 1
    err = capsys.readouterr().err
    assert "RGB" in err and err.count("\n") == 1
    assert run(["train-stage1", "--data-root", str(synthia), "--out", str(out), "--size", "60x190",
                "--preset", "small", "--steps", "1", "--no-progress"]) == 1
    assert "stride 32" in capsys.readouterr().err
    assert run(args(synthia, out, 2, "--resume")) == 1
    assert "no checkpoint" in capsys.readouterr().err
    assert run(args(synthia, out, 2)) == 0
    before = (out / "checkpoint.pt").read_bytes(), (out / "model.safetensors").read_bytes()
    assert run(args(synthia, out, 2)) == 1                      # refuses to overwrite a run
    assert "--resume" in capsys.readouterr().err
    assert run([*args(synthia, out, 4, "--resume"), "--size", "64x224"]) == 1
    assert "cannot resume" in capsys.readouterr().err
    assert ((out / "checkpoint.pt").read_bytes(), (out / "model.safetensors").read_bytes()) == before
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert run(args(synthia, out, 4, "--resume")) == 1
    assert "corrupt" in capsys.readouterr().err


def test_eight_bit_depth_is_refused(synthia, tmp_path, capsys):
    import cv2
    bad = tmp_path / "bad"
    shutil.copytree(synthia, bad)
    first = sorted((bad / "Depth" / "Depth").glob("*.png"))[0]
    img = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(first), (img // 256).astype(np.uint8))
    # The bad file may land in either split; reading it must fail with one clear line, not a traceback.
    code = run(args(bad, tmp_path / "run", 12))
    assert code == 1
    assert "8-bit" in capsys.readouterr().err


def test_ema_is_the_moving_average_of_the_steps_and_is_exported(synthia, tmp_path):
    from depthda.train.config import DepthConfig
    from depthda.train.distributed import DistInfo
    from depthda.train.depth_task import DepthTask

    decay = 0.6
    cfg = DepthConfig(data_root=str(synthia), out=str(tmp_path / "unused"), batch_size=2, size=(64, 192),
                       preset="small", critic_steps=1, ema_decay=decay, fresh_critic_batches=False)
    torch.manual_seed(0)
    task = DepthTask(cfg)
    task.build(torch.device("cpu"), DistInfo(), None)
    loader = torch.utils.data.DataLoader(task.train_dataset(), batch_size=2)
    expected = None
    for step, batch in zip(range(3), loader):
        task.train_step([batch], step)
        now = {k: v.detach().clone() for k, v in task.generator.state_dict().items() if v.is_floating_point()}
        expected = now if expected is None else {k: decay * expected[k] + (1 - decay) * now[k] for k in now}
    averaged = task.export_model().state_dict()
    raw = task.generator.state_dict()
    assert any(not torch.equal(averaged[k], raw[k]) for k in expected)
    for k, v in expected.items():
        assert torch.allclose(averaged[k], v, atol=1e-6), k


def test_ema_run_resumes_exactly_and_exports_the_average(synthia, tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(args(synthia, straight, 6, "--ema-decay", "0.9")) == 0
    assert run(args(synthia, split, 6, "--ema-decay", "0.9", "--stop-at", "3")) == 0
    assert run(args(synthia, split, 6, "--ema-decay", "0.9", "--resume")) == 0
    a, b = weights(straight), weights(split)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    raw = torch.load(straight / "checkpoint.pt", weights_only=True)["task"]["generator"]
    assert any(not torch.allclose(a[k].float(), raw[k].float()) for k in a)
    assert json.loads((straight / "config.json").read_text())["ema_decay"] == 0.9
    assert run(args(synthia, tmp_path / "bad", 2, "--ema-decay", "1.0")) == 1
    assert "ema_decay must be a finite number in [0, 1)" in capsys.readouterr().err
    # Resuming an averaged run without the average would silently export raw weights: refused.
    before = (straight / "model.safetensors").read_bytes()
    assert run(args(synthia, straight, 8, "--resume")) == 1
    assert "--ema-decay" in capsys.readouterr().err
    assert (straight / "model.safetensors").read_bytes() == before
