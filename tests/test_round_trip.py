"""`depthda data round-trip`: synthetic frames through a style run's two generators and back, depth unchanged."""

import cv2
import numpy as np
import pytest
import torch

from depthda.cli import run
from depthda.models import build_model
from depthda.models.weights import load_exported
from train_fixtures import depth_args, make_synthia, style_args


@pytest.fixture(scope="module")
def synthia(tmp_path_factory):
    return make_synthia(tmp_path_factory.mktemp("synthia"), count=6)


@pytest.fixture(scope="module")
def style_run(tmp_path_factory, test_data, synthia):
    out = tmp_path_factory.mktemp("style") / "run"
    assert run(style_args([test_data / "paper_examples"], synthia, out, 2)) == 0
    return out


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_frames_are_the_runs_generators_round_trip_and_depth_is_the_sources(synthia, style_run, tmp_path):
    before = _files(synthia)
    out = tmp_path / "rt"
    assert run(["data", "round-trip", str(synthia), "--style", str(style_run), "--out", str(out), "--every", "2",
                "--no-progress"]) == 0
    assert _files(synthia) == before
    rgb = sorted((synthia / "RGB").glob("*.png"))[::2]
    assert sorted(p.name for p in (out / "RGB").glob("*.png")) == [p.name for p in rgb]
    for p in rgb:
        assert (out / "Depth" / "Depth" / p.name).read_bytes() == (synthia / "Depth" / "Depth" / p.name).read_bytes()
    (synthia / "intrinsics.json").write_text('{"fx": 100.0, "width": 192}')  # a synth set's, carried over
    try:
        assert run(["data", "round-trip", str(synthia), "--style", str(style_run), "--out", str(out), "--every", "2",
                    "--no-progress", "--overwrite"]) == 0
    finally:
        (synthia / "intrinsics.json").unlink()
    assert (out / "intrinsics.json").read_text() == '{"fx": 100.0, "width": 192}'

    # Each frame is what inference's exported generator makes of the run's other generator's output.
    g_ab, config = load_exported(style_run)
    g_ba = build_model(config)
    g_ba.load_state_dict(torch.load(style_run / "checkpoint.pt", weights_only=True)["task"]["g_ba"])
    src = cv2.imread(str(rgb[0]))[:, :, ::-1]
    x = torch.from_numpy(src.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y = g_ab.eval()(g_ba.eval()(x))[0].permute(1, 2, 0).numpy()
    expected = ((y + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    written = cv2.imread(str(out / "RGB" / rgb[0].name))[:, :, ::-1]
    assert np.abs(written.astype(int) - expected).max() <= 1
    assert np.abs(written.astype(int) - src).mean() > 1  # the frame did change

    # The copy is a training root as it stands.
    assert run(depth_args(out, tmp_path / "depth", 1)) == 0


def test_bad_plans_are_one_line_and_touch_nothing(synthia, style_run, tmp_path, capsys):
    before = _files(synthia)
    cases = {
        "exported style folder": ["--style", str(tmp_path / "exported")],
        "output inside the source": ["--out", str(synthia / "rt")],
        "every 0": ["--every", "0"],
    }
    exported = tmp_path / "exported"
    exported.mkdir()
    for name in ("model.safetensors", "config.json"):
        (exported / name).write_bytes((style_run / name).read_bytes())
    for name, change in cases.items():
        argv = {"--style": str(style_run), "--out": str(tmp_path / "out"), "--every": "1", **dict([change])}
        code = run(["data", "round-trip", str(synthia), *[a for kv in argv.items() for a in kv], "--no-progress"])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("depthda: error:") and err.count("\n") == 1, (name, err)
        assert not (tmp_path / "out").exists(), name
    assert _files(synthia) == before

    # A folder holding the user's files is not replaced, with or without --overwrite.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for extra in ([], ["--overwrite"]):
        assert run(["data", "round-trip", str(synthia), "--style", str(style_run), "--out", str(mine),
                    "--no-progress", *extra]) == 1
        assert (mine / "notes.txt").read_text() == "keep"
    # An earlier round trip is replaced with --overwrite.
    out = tmp_path / "again"
    args = ["data", "round-trip", str(synthia), "--style", str(style_run), "--out", str(out), "--no-progress"]
    assert run(args) == 0 and run(args) == 1 and run([*args, "--overwrite"]) == 0
    assert len(list((out / "RGB").glob("*.png"))) == 6
