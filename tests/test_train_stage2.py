import pytest
import torch
from safetensors.torch import load_file

from depthda.cli import run
from depthda.models.weights import load_exported
from train_fixtures import make_synthia
from train_fixtures import style_args as args

# Whole training runs (the quick loop leaves them out; CI runs them).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthia(tmp_path_factory):
    return make_synthia(tmp_path_factory.mktemp("synthia"), count=6)


def test_trains_on_real_frames_resumes_exactly_and_exports(repo_data, test_data, synthia, tmp_path, capsys):
    real = [test_data / "paper_examples", repo_data / "samples" / "dashcam_3s.mp4"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(args(real, synthia, straight, 4)) == 0
    out = capsys.readouterr().out
    assert "style distance to synthetic: untranslated" in out
    assert run(args(real, synthia, split, 4, "--stop-at", "2")) == 0
    assert run(args(real, synthia, split, 4, "--resume")) == 0
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(split / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bit for bit
    state = torch.load(split / "checkpoint.pt", weights_only=True)
    assert {"g_ba", "d_a", "d_b", "pool_a", "pool_b"} <= set(state["task"])
    g, cfg = load_exported(straight)
    assert cfg["kind"] == "style" and cfg["direction"] == "real->synthetic"
    y = g(torch.rand(1, 3, 64, 192) * 2 - 1)
    assert y.shape == (1, 3, 64, 192) and torch.isfinite(y).all()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(straight / "tb"))
    acc.Reload()
    for tag in ("loss/cycle", "loss/d_a", "loss/d_b", "loss/identity", "val/ratio"):
        assert tag in acc.Tags()["scalars"], tag
        assert all(torch.isfinite(torch.tensor(e.value)) for e in acc.Scalars(tag))
    assert "images/real_to_synthetic_to_real" in acc.Tags()["images"]


def test_bad_domains_are_one_line_errors(test_data, synthia, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(args([empty], synthia, tmp_path / "r1", 1)) == 1
    assert str(empty) in capsys.readouterr().err
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.png").write_bytes((test_data / "paper_examples" / "1.png").read_bytes())
    assert run(args([one], synthia, tmp_path / "r2", 1)) == 1
    assert "at least 2" in capsys.readouterr().err
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (junk / "y.jpg").write_bytes(b"")
    assert run(args([junk], synthia, tmp_path / "r3", 1)) == 1
    err = capsys.readouterr().err
    assert "unreadable" in err and err.count("\n") == 1
    assert run(args([test_data / "paper_examples"], tmp_path / "nope", tmp_path / "r4", 1)) == 1
    assert not (tmp_path / "r4" / "checkpoint.pt").exists()
