"""Shared test fixtures: paths to the real data shipped in data/ and beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REPO_DATA = REPO / "data"
# CI clones the repo with ../shared beside it; real material the repo does not ship lives there.
SHARED_DATA = REPO.parent / "shared" / "data"

# Two cores are shared by the whole suite; more threads only adds contention.
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def repo_data() -> Path:
    return REPO_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test material expected at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA
