"""The paper-faithful training options (on by default for --preset paper): whole-frame views,
a fresh batch for every critic step (WGAN-GP's Algorithm 1), pix2pix/CycleGAN's N(0, 0.02)
initialisation; and the inference resize policy a run records in its config.json."""

import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from depthda.cli import run
from depthda.errors import DepthdaError
from depthda.infer.pipeline import DepthPipeline
from depthda.models import build_model, preset_args
from depthda.models.init import init_normal
from depthda.models.patchgan import CRITIC_PRESETS, build_critic
from depthda.train.config import DepthConfig, StyleConfig
from depthda.train.depth_task import DepthTask
from depthda.train.distributed import DistInfo
from depthda.train.engine import Trainer
from depthda.train.style_task import StyleTask
from train_fixtures import depth_args, make_synthia


@pytest.fixture(scope="module")
def synthia(tmp_path_factory):
    return make_synthia(tmp_path_factory.mktemp("synthia"))


def config_file(tmp_path, **values):
    path = tmp_path / f"config_{len(list(tmp_path.glob('config_*')))}.json"
    path.write_text(json.dumps(values))
    return str(path)


# ------------------------------------------------------------ configuration
def test_paper_preset_turns_everything_on_and_values_are_checked(tmp_path, synthia, capsys):
    paper = DepthConfig(preset="paper")
    assert (paper.view, paper.fresh_critic_batches, paper.init, paper.resize) == ("whole", True, "normal", "stretch")
    assert StyleConfig(preset="paper").init == "normal"
    assert DepthConfig(preset="small").resize == "keep_aspect"
    chosen = DepthConfig(preset="paper", view="crop", fresh_critic_batches=False, init="default", resize="keep_aspect")
    assert (chosen.view, chosen.fresh_critic_batches, chosen.init, chosen.resize) == ("crop", False, "default", "keep_aspect")
    for field, value, message in [("view", "tiles", "view must be one of crop, whole"),
                                  ("init", "xavier", "init must be one of normal, default"),
                                  ("resize", "squash", "resize must be one of keep_aspect, stretch"),
                                  ("fresh_critic_batches", "yes", "fresh_critic_batches must be true or false")]:
        with pytest.raises(DepthdaError, match=message):
            DepthConfig(**{field: value})
    assert run(depth_args(synthia, tmp_path / "run", 2, "--config", config_file(tmp_path, view="tiles"))) == 1
    err = capsys.readouterr().err
    assert "view must be one of crop, whole" in err and err.count("\n") == 1


# ------------------------------------------------------------ fresh critic batches
class _Recorded(Dataset):
    """The real training set, recording the RGB sum of every item the loader takes, in order."""

    def __init__(self, dataset):
        self.dataset, self.sums = dataset, []

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        item = self.dataset[index]
        self.sums.append(float(item["rgb"].double().sum()))
        return item


@pytest.mark.slow
@pytest.mark.parametrize("fresh", [True, False])
def test_each_critic_step_takes_its_own_batch_and_the_generator_another(synthia, tmp_path, fresh):
    steps, critic_steps, batch = 3, 3, 2
    cfg = DepthConfig(data_root=str(synthia), out=str(tmp_path / "run"), steps=steps, batch_size=batch,
                      size=(64, 192), preset="small", num_workers=0, critic_steps=critic_steps, l1_weight=0.5,
                      fresh_critic_batches=fresh, val_every=0, image_every=0, checkpoint_every=100)
    task = DepthTask(cfg)
    data = _Recorded(task.train_set)
    task.train_dataset = lambda: data
    seen = []  # the RGB sum of every batch the critic scores, in call order
    build = task.build

    def build_and_watch(*args):
        build(*args)
        task.critic.register_forward_pre_hook(lambda m, inputs: seen.append(float(inputs[0].detach()[:, :3].double().sum())))

    task.build = build_and_watch
    Trainer(task, cfg, progress=False).run()

    per_step = critic_steps + 1 if fresh else 1
    assert len(data.sums) == steps * per_step * batch  # data drawn: (n_critic + 1) batches per step
    batches = [sum(data.sums[i:i + batch]) for i in range(0, len(data.sums), batch)]
    expected = []
    for s in range(steps):
        mine = batches[s * per_step:(s + 1) * per_step]
        for j in range(critic_steps):  # real, fake, gradient penalty: each on critic step j's batch
            expected += [mine[j if fresh else 0]] * 3
        expected.append(mine[-1])  # the generator's adversarial term: its own batch
    assert seen == pytest.approx(expected, rel=1e-5)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["samples_drawn"] == steps * per_step * batch


def weights(folder):
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def task_state(folder) -> dict[str, torch.Tensor]:
    """Every tensor of a run's checkpointed task state (networks, optimisers, scalers), by path."""
    def flat(state, prefix=""):
        if isinstance(state, torch.Tensor):
            return {prefix: state}
        items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, (list, tuple)) else ()
        out = {}
        for key, sub in items:
            out.update(flat(sub, f"{prefix}/{key}"))
        return out
    return flat(torch.load(folder / "checkpoint.pt", weights_only=True)["task"])


def bit_identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("fresh", [True, False], ids=["fresh-critic-batches", "shared-critic-batch"])
def test_a_stopped_and_resumed_run_ends_bit_identical_to_the_straight_run(synthia, tmp_path, fresh):
    cfg = config_file(tmp_path, view="whole", fresh_critic_batches=fresh, init="normal")

    def args(out, *extra):
        return depth_args(synthia, out, 6, "--config", cfg, "--critic-steps", "2", "--l1-weight", "0.5", *extra)

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(args(straight)) == 0
    assert run(args(split, "--stop-at", "3")) == 0
    batches_per_step = 3 if fresh else 1
    assert torch.load(split / "checkpoint.pt", weights_only=True)["samples_drawn"] == 3 * batches_per_step * 2
    assert run(args(split, "--resume")) == 0
    assert bit_identical(weights(straight), weights(split))
    assert bit_identical(task_state(straight), task_state(split))
    # Resumed one batch off in the data stream, the run ends elsewhere: the comparisons above can fail.
    wrong = tmp_path / "wrong"
    assert run(args(wrong, "--stop-at", "3")) == 0
    state = torch.load(wrong / "checkpoint.pt", weights_only=True)
    state["samples_drawn"] -= 2
    torch.save(state, wrong / "checkpoint.pt")
    assert run(args(wrong, "--resume")) == 0
    assert not same_weights(weights(straight), weights(wrong))


# ------------------------------------------------------------ initialisation
def layers(net: nn.Module):
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.affine]
    return convs, norms


def farthest_from_normal(convs) -> float:
    """The largest |std − 0.02| of a layer's weights (layers of ≥ 256 weights: a steady estimate)."""
    return max(abs(float(m.weight.detach().std()) - 0.02) for m in convs if m.weight.numel() >= 256)


def assert_normal_init(net: nn.Module, expect_norms: bool) -> None:
    convs, norms = layers(net)
    assert farthest_from_normal(convs) < 0.004
    w = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(w.mean())) < 0.001
    assert all(m.bias is None or not m.bias.detach().any() for m in convs)
    assert bool(norms) == expect_norms
    if norms:
        g = torch.cat([m.weight.detach().flatten() for m in norms])
        assert abs(float(g.mean()) - 1) < 0.005 and 0.015 < float(g.std()) < 0.025
        assert not any(m.bias.detach().any() for m in norms)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["paper", "small"])
def test_normal_init_statistics_of_every_network(preset):
    torch.manual_seed(0)
    nets = {"unet": (build_model({"arch": "unet", "arch_args": preset_args("unet", preset)}), True),
            "critic": (build_critic(**CRITIC_PRESETS[preset]), False),
            "resnet_generator": (build_model({"arch": "resnet_generator",
                                              "arch_args": preset_args("resnet_generator", preset)}), False),
            "patchgan": (build_model({"arch": "patchgan", "arch_args": preset_args("patchgan", preset)}), False)}
    for name, (net, has_affine_norms) in nets.items():
        # PyTorch's own initialisation is not this one: the check below can fail.
        assert farthest_from_normal(layers(net)[0]) > 0.01, name
        assert_normal_init(init_normal(net), has_affine_norms)


def test_tasks_initialise_their_networks_as_configured(synthia, test_data, tmp_path):
    common = dict(out=str(tmp_path / "unused"), batch_size=2, size=(64, 192), preset="small")
    for init in ("normal", "default"):
        torch.manual_seed(0)
        depth = DepthTask(DepthConfig(data_root=str(synthia), init=init, **common))
        depth.build(torch.device("cpu"), DistInfo(), None)
        style = StyleTask(StyleConfig(real=[str(test_data / "paper_examples")], synthetic=str(synthia),
                                      init=init, **common))
        style.build(torch.device("cpu"), DistInfo(), None)
        nets = [(depth.generator, True), (depth.critic, False), (style.g_ab, False), (style.g_ba, False),
                (style.d_a, False), (style.d_b, False)]
        for net, has_affine_norms in nets:
            if init == "normal":
                assert_normal_init(net, has_affine_norms)
            else:
                assert farthest_from_normal(layers(net)[0]) > 0.01


# ------------------------------------------------------------ the resize policy a run records
@pytest.mark.slow
def test_a_run_records_its_resize_policy_and_inference_uses_it(synthia, tmp_path):
    default, stretched = tmp_path / "default", tmp_path / "stretched"
    assert run(depth_args(synthia, default, 1)) == 0
    assert json.loads((default / "config.json").read_text())["resize"] == "keep_aspect"  # the small preset's
    assert run(depth_args(synthia, stretched, 1, "--config", config_file(tmp_path, resize="stretch"))) == 0
    assert json.loads((stretched / "config.json").read_text())["resize"] == "stretch"
    pipe = DepthPipeline.from_checkpoint(depth=stretched, use_style=False, device="cpu")
    assert pipe.resize_policy == "stretch" and pipe.working_size(375, 1242) == (64, 192, 64, 192)
