"""Exported model folders: `model.safetensors` + `config.json`.

safetensors holds only tensors, so loading a downloaded or shared model never unpickles (and so
never executes) anything; the architecture is rebuilt from the JSON config by the model registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from depthda.errors import DepthdaError
from depthda.models import build_model
from depthda.models.validate import (check_config, check_finite, check_weights_header, expected_shapes,
                                     shape_mismatch)
from depthda.utils.fsio import atomic_path, write_text_atomic

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def save_exported(folder: str | Path, model: nn.Module, config: dict) -> None:
    """Write weights then config, each atomically; a reader sees either the old or the new pair."""
    folder = Path(folder)
    model = getattr(model, "module", model)  # unwrap DDP
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "arch": str(config.get("arch"))})
    write_text_atomic(folder / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise DepthdaError(f"missing model config: {path}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DepthdaError(f"corrupt model config {path}: {exc}") from None
    except RecursionError:
        raise DepthdaError(f"corrupt model config {path}: nested too deeply") from None
    if not isinstance(config, dict) or "arch" not in config:
        raise DepthdaError(f"model config {path} has no 'arch' entry")
    return config


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict with one readable line instead of PyTorch's multi-line report."""
    problem = shape_mismatch(expected_shapes(model), {k: tuple(v.shape) for k, v in state.items()})
    if problem:
        raise DepthdaError(f"weights in {source} do not fit the architecture: {problem}")
    model.load_state_dict(state, strict=True)


def load_exported(folder: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model described by config.json and load its weights; returns it in eval mode.

    The config is checked against bounds and the weights file's header before anything is
    allocated (depthda.models.validate), and the weights must be finite.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DepthdaError(f"model folder not found: {folder}")
    config = check_config(read_config(folder), str(folder / CONFIG_NAME))
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise DepthdaError(f"missing weights file: {weights}")
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            expected = expected_shapes(build_model(config))
    except (TypeError, ValueError) as exc:
        raise DepthdaError(f"cannot build the model described in {folder / CONFIG_NAME}: {exc}") from None
    check_weights_header(weights, expected)
    model = build_model(config)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise DepthdaError(f"corrupt weights file {weights}: {exc}") from None
    check_finite(state, weights)
    load_state_into(model, state, str(weights))
    return model.to(device).eval(), config
