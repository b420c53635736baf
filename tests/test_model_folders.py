"""Model folders are checked before anything is built: hostile or broken configs and weights are
refused in one line, without allocating what they ask for."""

import inspect
import json
import resource
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from depthda.cli import run
from depthda.errors import DepthdaError
from depthda.models import ARCHITECTURES
from depthda.models.validate import ARG_BOUNDS
from depthda.models.weights import load_exported

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "dashcam_3s.mp4"


@pytest.fixture
def model_copy(tmp_path, ckpt):
    dst = tmp_path / "ckpt"
    shutil.copytree(ckpt, dst)
    return dst


def edit_config(folder: Path, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if key.startswith("arg_"):
            config["arch_args"][key[4:]] = value
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_bounds_cover_every_argument_of_every_architecture():
    assert set(ARG_BOUNDS) == set(ARCHITECTURES)
    for arch, cls in ARCHITECTURES.items():
        params = set(inspect.signature(cls.__init__).parameters) - {"self"}
        assert params == set(ARG_BOUNDS[arch]), arch


@pytest.mark.parametrize("changes, message", [
    ({"arg_base": 10**9}, "arch_args.base must be a whole number from 1 to 1024"),
    ({"arg_base": -4}, "arch_args.base must be a whole number"),
    ({"arg_levels": 10**6}, "arch_args.levels must be a whole number from 2 to 10"),
    ({"arg_levels": 1e6}, "arch_args.levels must be a whole number"),
    ({"arg_upsample": "pixelshuffle"}, "arch_args.upsample must be one of transpose, bilinear"),
    ({"arg_surprise": 1}, "unknown unet argument 'surprise'"),
    ({"arch": "transformer"}, "unknown architecture 'transformer'"),
    ({"focal_px": "abc"}, "focal_px must be a positive number"),
    ({"focal_px": -3.0}, "focal_px must be a positive number"),
    ({"size": [0, 0]}, "size must be [height, width]"),
    ({"size": [100, 128]}, "is not a multiple of this unet's stride"),
    ({"depth_param": {"kind": "log", "min_depth": 5, "max_depth": 1}}, "bad depth_param"),
    ({"size": [16384, 16384]}, "size must be [height, width] in pixels, 1 to 4096"),
    ({"input_range": "-1..1"}, "input_range must be [low, high]"),
    ({"input_range": [1, -1]}, "input_range must be [low, high]"),
    ({"output_range": ["a", "b"]}, "output_range must be [low, high]"),
])
def test_hostile_depth_configs_are_refused_in_one_line(model_copy, changes, message):
    edit_config(model_copy / "depth", **changes)
    before = peak_rss_mb()
    with pytest.raises(DepthdaError) as err:
        load_exported(model_copy / "depth")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert peak_rss_mb() - before < 200  # nothing of what the config asked for was allocated


def test_hostile_style_config_is_refused(model_copy):
    edit_config(model_copy / "style", arg_n_blocks=10**8)
    with pytest.raises(DepthdaError, match="arch_args.n_blocks must be a whole number from 0 to 64"):
        load_exported(model_copy / "style")


def test_config_that_does_not_match_the_weights_is_refused_from_the_header(model_copy):
    edit_config(model_copy / "depth", arg_base=64)
    with pytest.raises(DepthdaError, match="do not fit the architecture in its config.json: .* shape mismatches"):
        load_exported(model_copy / "depth")


def test_non_finite_weights_are_refused(model_copy):
    weights = model_copy / "depth" / "model.safetensors"
    state = load_file(str(weights))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    save_file(state, str(weights))
    with pytest.raises(DepthdaError, match=f"not finite .*{name}"):
        load_exported(model_copy / "depth")


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int64, torch.bool])
def test_integer_and_boolean_weights_are_refused(model_copy, dtype):
    weights = model_copy / "depth" / "model.safetensors"
    state = load_file(str(weights))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].to(dtype)
    save_file(state, str(weights))
    with pytest.raises(DepthdaError, match=f"must be floating point, but {name} is"):
        load_exported(model_copy / "depth")


def test_a_deeply_nested_config_is_one_line(model_copy):
    (model_copy / "depth" / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DepthdaError, match="nested too deeply"):
        load_exported(model_copy / "depth")


def test_cli_refuses_a_broken_model_with_one_line_and_writes_nothing(model_copy, tmp_path, capsys):
    edit_config(model_copy / "depth", arg_levels=10**6)
    out = tmp_path / "o.mp4"
    assert run(["predict", str(SAMPLE), "-o", str(out), "--checkpoint", str(model_copy), "--frames", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "arch_args.levels" in err[0]
    assert not out.exists() and not any(p.name.startswith(".o.mp4") for p in tmp_path.iterdir())


def test_the_shipped_model_passes_the_checks():
    for part in ("style", "depth"):
        model, config = load_exported(REPO / "checkpoints" / "default" / part)
        assert config["kind"] == part
