"""Checks on a model folder before anything is built from it.

A config.json is user input: a shared or corrupted one can ask for a 10⁹-filter network, a
10⁶-level U-Net or a zero-sized working resolution. Every value that shapes a network is bounded
here, the tensor shapes the config implies are compared with the safetensors header (read
without loading a weight, the network built on the "meta" device, which allocates nothing), and
the weights must be finite. Each failure is one DepthdaError line naming the file and the field.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from depthda.errors import DepthdaError
from depthda.models import ARCHITECTURES, build_model
from depthda.models.batch_norm import BATCH_NORM_MODES
from depthda.models.configs import resize_policy
from depthda.models.depth_param import DepthParam

# Per architecture: its constructor's arguments and their bounds (depthda/models/arg_bounds.py).
ARG_BOUNDS: dict[str, dict[str, tuple]] = {arch: cls.ARG_BOUNDS for arch, cls in ARCHITECTURES.items()}
MAX_SIDE = 4096  # pixels: a training resolution beyond this is a typo, not a plan
# Weights are stored as floats (batch norm's step counter as int64); other integer or boolean
# tensors are not a trained network's.
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def _fail(source: str, message: str) -> DepthdaError:
    return DepthdaError(f"{source}: {message}")


def _check_value(source: str, name: str, value, bound: tuple) -> None:
    if bound[0] is bool:
        if not isinstance(value, bool):
            raise _fail(source, f"{name} must be true or false, got {value!r}")
    elif bound[0] is int:
        _, lo, hi = bound
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _fail(source, f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    elif value not in bound:
        raise _fail(source, f"{name} must be one of {', '.join(map(str, bound))}, got {value!r}")


def stride(config: dict) -> int:
    """What the training size (and any input) must be a multiple of: the network's own stride (1
    for a network without one). Built on the meta device: nothing is allocated."""
    with torch.device("meta"):
        return getattr(build_model(config), "stride", 1)


def check_config(config, source: str) -> dict:
    """Bounds on everything in config.json that shapes a network or its output; returns it."""
    if not isinstance(config, dict):
        raise _fail(source, "not a JSON object")
    arch = config.get("arch")
    if arch not in ARG_BOUNDS:
        raise _fail(source, f"unknown architecture {arch!r}; known: {', '.join(sorted(ARG_BOUNDS))}")
    args = config.get("arch_args", {})
    if not isinstance(args, dict):
        raise _fail(source, "arch_args must be a JSON object")
    for name, value in args.items():
        if name not in ARG_BOUNDS[arch]:
            raise _fail(source, f"unknown {arch} argument {name!r}")
        _check_value(source, f"arch_args.{name}", value, ARG_BOUNDS[arch][name])
    if "size" in config:
        size = config["size"]
        if (not isinstance(size, list) or len(size) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_SIDE for s in size)):
            raise _fail(source, f"size must be [height, width] in pixels, 1 to {MAX_SIDE}, got {size!r}")
        if any(s % stride(config) for s in size):
            raise _fail(source, f"size {size[0]}x{size[1]} is not a multiple of this {arch}'s stride {stride(config)}")
    for key in ("input_range", "output_range"):
        if key in config:
            pair = config[key]
            if (not isinstance(pair, list) or len(pair) != 2 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair)
                    or not pair[0] < pair[1]):
                raise _fail(source, f"{key} must be [low, high], two finite numbers with low < high, got {pair!r}")
    if config.get("focal_px") is not None:
        focal = config["focal_px"]
        if isinstance(focal, bool) or not isinstance(focal, (int, float)) or not (math.isfinite(focal) and focal > 0):
            raise _fail(source, f"focal_px must be a positive number of pixels (or null), got {focal!r}")
    if config.get("batch_norm") is not None and config["batch_norm"] not in BATCH_NORM_MODES:
        raise _fail(source, f"batch_norm must be one of {', '.join(BATCH_NORM_MODES)}, got {config['batch_norm']!r}")
    if config.get("kind") == "depth" or "resize" in config:
        try:
            resize_policy(config)
        except ValueError as exc:
            raise _fail(source, str(exc)) from None
    if "depth_param" in config:
        try:
            DepthParam.from_dict(config["depth_param"])
        except (TypeError, ValueError) as exc:
            raise _fail(source, f"bad depth_param {config['depth_param']!r}: {exc}") from None
    return config


def expected_shapes(model_on_meta: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model_on_meta.state_dict().items()}


def check_weights_header(weights: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """The safetensors header must list exactly the expected tensors with the expected shapes."""
    try:
        with safe_open(str(weights), framework="pt") as handle:
            found = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
            dtypes = {k: handle.get_slice(k).get_dtype() for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise DepthdaError(f"corrupt weights file {weights}: {exc}") from None
    odd = next((k for k, d in dtypes.items() if d not in FLOAT_DTYPES
                and not (k.endswith("num_batches_tracked") and d == "I64")), None)
    if odd is not None:
        raise DepthdaError(f"weights in {weights} must be floating point, but {odd} is {dtypes[odd]}")
    problem = shape_mismatch(expected, found)
    if problem:
        raise DepthdaError(f"weights in {weights} do not fit the architecture in its config.json: {problem}")


def shape_mismatch(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str | None:
    """One line on how a weights file's tensors differ from a model's, or None if they fit."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [k for k in expected if k in found and found[k] != expected[k]]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: file {found[k]} vs model {expected[k]})")
    if missing:
        parts.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    return "; ".join(parts) or None


def check_finite(state: dict[str, torch.Tensor], weights: Path) -> None:
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise DepthdaError(f"weights in {weights} are not finite (NaN or inf in {name})")
