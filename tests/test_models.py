import json

import pytest
import torch

from depthda.errors import DepthdaError
from depthda.models import build_model, count_parameters, preset_args
from depthda.models.depth_param import DepthParam
from depthda.models.patchgan import build_critic
from depthda.models.weights import load_exported, save_exported
from depthda.train.losses import critic_score, gradient_penalty


def unet_config(preset="small"):
    return {"arch": "unet", "arch_args": preset_args("unet", preset)}


def test_unet_shapes_and_stride_message():
    m = build_model(unet_config()).eval()
    out = m(torch.zeros(2, 3, 64, 128))
    assert out.shape == (2, 1, 64, 128)
    assert out.abs().max() <= 1
    with pytest.raises(DepthdaError, match="multiple of this U-Net's stride 32"):
        m(torch.zeros(1, 3, 100, 128))


def test_paper_preset_is_pix2pix_unet_256():
    m = build_model(unet_config("paper"))
    assert m.levels == 8 and m.stride == 256
    assert m.downs[0].block[0].out_channels == 64
    assert 50e6 < count_parameters(m) < 60e6   # pix2pix unet_256 has 54.4M parameters
    assert 1e6 < count_parameters(build_model(unet_config("small"))) < 6e6


def test_resnet_generator_and_patchgan():
    g = build_model({"arch": "resnet_generator", "arch_args": preset_args("resnet_generator", "paper")})
    assert sum(isinstance(x, torch.nn.Module) and x.__class__.__name__ == "ResidualBlock" for x in g.net) == 9
    small = build_model({"arch": "resnet_generator", "arch_args": preset_args("resnet_generator", "small")}).eval()
    y = small(torch.rand(1, 3, 32, 48) * 2 - 1)
    assert y.shape == (1, 3, 32, 48) and y.abs().max() <= 1
    d = build_model({"arch": "patchgan", "arch_args": preset_args("patchgan", "paper")})
    # 70×70 receptive field: a 70-pixel input gives a single-patch map region.
    assert d(torch.zeros(1, 3, 70, 70)).shape[-1] >= 1


def test_depth_param_round_trip():
    p = DepthParam()
    d = torch.tensor([0.5, 1.0, 7.3, 42.0, 80.0])
    assert torch.allclose(p.decode(p.encode(d)), d, rtol=1e-5)
    assert p.encode(torch.tensor([1000.0])).item() == pytest.approx(1.0)
    lin = DepthParam(kind="linear")
    assert torch.allclose(lin.decode(lin.encode(d)), d, rtol=1e-5)


def test_gradient_penalty_is_zero_for_unit_gradient_and_positive_otherwise():
    torch.manual_seed(0)
    critic = build_critic(base=8, n_layers=2)
    rgb, real, fake = torch.randn(2, 3, 32, 32), torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32)
    gp = gradient_penalty(critic, rgb, real, fake)
    assert gp.item() > 0 and gp.requires_grad
    gp.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())
    assert critic_score(critic, rgb, real).shape == (2,)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) for m in critic.modules())


def test_export_round_trip_and_mismatch(tmp_path):
    m = build_model(unet_config())
    cfg = unet_config()
    save_exported(tmp_path / "run", m, cfg)
    loaded, cfg2 = load_exported(tmp_path / "run")
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(loaded(x), m.eval()(x))
    assert cfg2 == cfg
    bad = dict(cfg, arch_args=dict(cfg["arch_args"], base=16))
    (tmp_path / "run" / "config.json").write_text(json.dumps(bad))
    with pytest.raises(DepthdaError, match="do not fit the architecture.*shape mismatch"):
        load_exported(tmp_path / "run")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(DepthdaError, match="corrupt weights file .*model.safetensors"):
        load_exported(tmp_path / "run")
    with pytest.raises(DepthdaError, match="model folder not found"):
        load_exported(tmp_path / "nope")


def test_depth_head_runs_in_fp32_under_autocast():
    """Under bf16 autocast the U-Net's last conv and tanh still run in fp32 (issue: bf16 quantises
    the tanh log-depth head into ~1 % depth steps far away)."""
    from depthda.models.unet import UNet

    torch.manual_seed(0)
    net = UNet(base=8, levels=3, upsample="bilinear", dropout=False).eval()
    x = torch.rand(1, 3, 32, 64) * 2 - 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
        inner = net.downs[0](x)
    assert inner.dtype == torch.bfloat16          # autocast is on for the body...
    assert y.dtype == torch.float32               # ...but the head's output is fp32
    assert (y.to(torch.bfloat16).float() != y).any()  # values finer than bf16 can hold
    with torch.no_grad():
        plain = net(x)
    assert (y - plain).abs().max() < 0.05         # same network, only the body's rounding differs
