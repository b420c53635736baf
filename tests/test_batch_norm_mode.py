"""The depth network's batch-norm mode at inference, recorded in its config.json: running
statistics (default) or each image's own, as the paper's authors' released inference does."""

import json
import shutil

import pytest
import torch
from torch import nn

from depthda.errors import DepthdaError
from depthda.infer.pipeline import DepthPipeline
from depthda.models.weights import load_exported


def with_batch_norm(tmp_path, ckpt, mode: str):
    """A copy of the checkpoint whose depth config asks for batch-norm mode `mode`."""
    dst = tmp_path / "ckpt"
    shutil.copytree(ckpt, dst)
    path = dst / "depth" / "config.json"
    config = json.loads(path.read_text())
    config["batch_norm"] = mode
    path.write_text(json.dumps(config))
    return dst


@pytest.fixture
def per_image_ckpt(tmp_path, ckpt):
    return with_batch_norm(tmp_path, ckpt, "per_image")


@pytest.mark.slow
def test_per_image_mode_is_batch_norm_in_training_mode_on_one_image(per_image_ckpt, ckpt):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 128) * 2 - 1
    reference, _ = load_exported(ckpt / "depth")       # the same weights, batch norm as the authors run it
    assert any(isinstance(m, nn.BatchNorm2d) for m in reference.modules())
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
    pipe = DepthPipeline.from_checkpoint(per_image_ckpt, device="cpu", use_style=False)
    with torch.no_grad():
        together = pipe.depth(x.contiguous(memory_format=torch.channels_last))
        for i in range(2):
            alone = reference(x[i:i + 1])
            assert torch.allclose(together[i:i + 1], alone, atol=1e-4)  # per image, whatever else is in the batch
        running = DepthPipeline.from_checkpoint(ckpt, device="cpu", use_style=False).depth(x)
    assert (running - together).abs().max() > 1e-3  # the modes differ


def test_unknown_batch_norm_mode_is_refused(tmp_path, ckpt):
    dst = with_batch_norm(tmp_path, ckpt, "sometimes")
    with pytest.raises(DepthdaError, match="batch_norm must be one of running, per_image"):
        DepthPipeline.from_checkpoint(dst, device="cpu")
