"""Shared test fixtures: paths to the real data shipped in data/ and tests/data/."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REPO_DATA = REPO / "data"
# Real material only the tests need (paper example frames, one raw velodyne depth map); see its README.md.
TEST_DATA = REPO / "tests" / "data"

# Two cores are shared by the whole suite; more threads only adds contention.
torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Path:
    """ONNX graphs the tests make go to one temporary folder (never ~/.cache or beside the shipped
    model), shared by the session so each model and size is exported once; CLI subprocesses inherit it."""
    path = tmp_path_factory.mktemp("onnx-cache")
    saved = os.environ.get("DEPTHDA_CACHE")
    os.environ["DEPTHDA_CACHE"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("DEPTHDA_CACHE", None)
    else:
        os.environ["DEPTHDA_CACHE"] = saved


@pytest.fixture(scope="session")
def repo_data() -> Path:
    return REPO_DATA


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA


# ---------------------------------------------------------------- inference tests
PIPELINE_SIZE = (64, 128)  # a small working size keeps every inference test fast


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to `n` for a block, then restored."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def one_thread():
    # With both cores busy elsewhere, a 2-thread OpenMP forward spins on barriers and can run many
    # times slower than a 1-thread one; the test networks are tiny, one thread is plenty.
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A pipeline checkpoint of randomly initialised small stages."""
    from depthda.models.random_pipeline import init_checkpoint
    return init_checkpoint(tmp_path_factory.mktemp("ckpt"), size=PIPELINE_SIZE)


@pytest.fixture(scope="module")
def pipe(ckpt):
    from depthda.infer.pipeline import DepthPipeline
    return DepthPipeline.from_checkpoint(ckpt, device="cpu")
