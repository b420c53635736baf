"""Every training setting is checked where it is defined (depthda.train.config.RULES), from flags,
JSON or TOML alike: each hostile value is one `depthda: error:` line naming the field, before
anything is built (issue 24)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from depthda.cli import run
from depthda.train.config import RULES, DepthConfig, StyleConfig

BAD_INT = [-1, "3", 2.5, True, 10**20, [1], {"a": 1}]
BAD_NUM = [float("nan"), float("inf"), float("-inf"), "0.5", True, [0.5], -1, 1e300]
BAD_PAIR = [0.5, [0.5], [0.5, 0.5, 0.5], ["a", "b"], [float("nan"), 0.5], [1.5, -0.5], "0.5,0.5"]
BAD_STR = [5, [], {"a": 1}, True]
BAD = {"int": BAD_INT, "num": BAD_NUM, "pair": BAD_PAIR, "str": BAD_STR, "bool": ["yes", 1, [True]],
       "strs": ["frames/", [1], {"a": 1}]}
# Named choices: any other text is refused too.
CHOICES = {"preset": "huge", "init": "zeros", "view": "tilt", "resize": "squash", "depth_param": "cubic"}


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_every_field_has_a_rule():
    assert set(_fields(DepthConfig)) | set(_fields(StyleConfig)) == set(RULES)


def _cases():
    for cls, command in ((DepthConfig, "train-stage1"), (StyleConfig, "train-stage2")):
        for name in _fields(cls):
            if command == "train-stage2" and name in _fields(DepthConfig):
                continue  # the shared fields run once, through stage 1
            values = BAD[RULES[name].kind] + ([CHOICES[name]] if name in CHOICES else [])
            yield pytest.param(command, name, values, id=f"{command}-{name}")


BASE = {"train-stage1": {"data_root": "unused"}, "train-stage2": {"real": ["unused"], "synthetic": "unused"}}


def _one_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error: ") and all(n in err[0] for n in needles), err


@pytest.mark.parametrize("command, name, values", list(_cases()))
def test_hostile_values_in_a_config_file_are_one_line_naming_the_field(tmp_path, capsys, command, name, values):
    for value in values:
        if name == "size" and isinstance(value, str):
            continue  # the --size flag's text form, parsed by the CLI, is covered below
        path = tmp_path / "c.json"
        path.write_text(json.dumps({**BASE[command], "out": str(tmp_path / "run"), name: value}))
        assert run([command, "--config", str(path)]) == 1, (name, value)
        _one_line(capsys, name)
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, value, field", [
    ("--critic-steps", "0", "critic_steps"), ("--critic-steps", "-1", "critic_steps"),
    ("--checkpoint-every", "0", "checkpoint_every"), ("--l1-weight", "nan", "l1_weight"),
    ("--l1-weight", "2", "l1_weight"), ("--l1-weight", "-1", "l1_weight"), ("--grad-weight", "inf", "grad_weight"),
    ("--num-workers", "-1", "num_workers"), ("--steps", "0", "steps"), ("--batch-size", "0", "batch_size"),
    ("--size", "100000x100000", "size"), ("--ema-decay", "1", "ema_decay"), ("--seed", "-1", "seed"),
    ("--preset", "huge", "preset"), ("--steps", "1000000000000000000", "steps"),
])
def test_hostile_flags_are_one_line_naming_the_field(tmp_path, capsys, flag, value, field):
    assert run(["train-stage1", "--data-root", "unused", "--out", str(tmp_path / "run"), flag, value]) == 1
    _one_line(capsys, field)
    assert not (tmp_path / "run").exists()


def test_toml_non_finite_and_a_deeply_nested_file_are_one_line(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text('data_root = "unused"\nout = "run"\nlr_g = nan\n')
    assert run(["train-stage1", "--config", str(toml)]) == 1
    _one_line(capsys, "lr_g")
    nested = tmp_path / "deep.json"
    nested.write_text('{"steps": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert run(["train-stage1", "--config", str(nested)]) == 1
    _one_line(capsys, "nested too deeply")


def test_a_flag_overrides_the_config_file_which_overrides_the_defaults(tmp_path):
    from train_fixtures import depth_args, make_synthia

    synthia = make_synthia(tmp_path / "synthia", count=4)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"steps": 5, "seed": 7, "l1_weight": 1.0, "batch_size": 3}))
    out = tmp_path / "run"
    assert run([*depth_args(synthia, out, 1, "--config", str(path)), "--no-amp"]) == 0
    used = json.loads((out / "train_config.json").read_text())
    default = DepthConfig()
    assert (used["steps"], used["batch_size"], used["amp"]) == (1, 2, False)  # flags
    assert (used["seed"], used["l1_weight"]) == (7, 1.0)                      # the file
    assert (used["critic_steps"], used["lr_g"]) == (default.critic_steps, default.lr_g) == (5, 2e-4)
