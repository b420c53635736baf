"""The depth task (the paper's stage 1): a U-Net learns RGB -> depth on synthetic data with L1 +
WGAN-GP (Atapour-Abarghouei & Breckon 2018).

Per generator step the critic takes `critic_steps` updates. With `fresh_critic_batches` (WGAN-GP's
Algorithm 1, Gulrajani et al. 2017) each critic update draws its own batch, real depth against the
current generator's depth for that batch, and the generator step then takes one more: the task
asks the Trainer for critic_steps + 1 batches per step (`batches_per_step`). Without it, one batch
serves all: the generator's output does not change between the critic's updates, so it is
computed once and they differ only in the gradient penalty's random interpolates. The generator
then minimises λ·L1 + (1 − λ)·(−critic score) on valid pixels, in the network's log-depth space
(λ = l1_weight). The losses are in depthda/train/losses.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Dataset

from depthda.errors import DepthdaError
from depthda.eval.metrics import compute_depth_metrics, mean_metrics
from depthda.models import build_model, preset_args
from depthda.models.configs import depth_model_config
from depthda.models.depth_param import DepthParam
from depthda.models.effnet_unet import load_imagenet_encoder
from depthda.models.init import apply_init
from depthda.models.patchgan import CRITIC_PRESETS, build_critic
from depthda.train.config import DepthConfig
from depthda.train.distributed import DistInfo, average_gradients, unwrap, wrap_ddp
from depthda.train.losses import critic_score, gradient_matching, gradient_penalty, masked_l1, set_requires_grad
from depthda.train.visuals import colour_encoded_depth, rgb01, rows_grid
from depthda.utils.device import autocast


class DepthTask:
    """The depth task as engine.Task: networks `generator` (the U-Net, `generator_ddp` its DDP
    wrapper) and `critic` (never wrapped: see distributed.average_gradients)."""

    name = "stage1"
    per_rank_state = ()

    def __init__(self, cfg: DepthConfig):
        from depthda.data.synthia_dataset import SynthiaDataset  # validates the data root before any model is built
        if cfg.init_from and not (Path(cfg.init_from) / "model.safetensors").is_file():
            raise DepthdaError(f"--init-from: no exported model (model.safetensors) in {cfg.init_from}")
        self.cfg = cfg
        self.param = DepthParam(kind=cfg.depth_param, max_depth=cfg.max_depth)
        # Depth from here on is the cap (SYNTHIA's far field and sky): no metric depth to learn or judge.
        self.capped_from = cfg.max_depth * 0.999
        self.train_set = SynthiaDataset(cfg.data_root, split="train", size=tuple(cfg.size), augment=True,
                                        max_depth=cfg.max_depth, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                        view=cfg.view)
        # Validated in the training view's geometry (whole frames, or centre crops of crops' scale).
        self.val_set = SynthiaDataset(cfg.data_root, split="val", size=tuple(cfg.size), augment=False,
                                      max_depth=cfg.max_depth, val_fraction=cfg.val_fraction, view=cfg.view)
        self.adversarial = cfg.l1_weight < 1  # λ = 1: plain L1, no critic trained or consulted
        self.fresh_critic_batches = cfg.fresh_critic_batches and self.adversarial and cfg.critic_steps > 0
        self.batches_per_step = cfg.critic_steps + 1 if self.fresh_critic_batches else 1
        # The focal length of an un-zoomed training view: the one camera the exported model speaks for.
        self.focal_px = float(self.val_set[0]["focal_px"])
        self._generator_config = {"arch": cfg.arch, "arch_args": preset_args(cfg.arch, cfg.preset)}
        build_model(self._generator_config).check_size(*cfg.size)  # fail on a bad size before any work

    # ------------------------------------------------------------ set-up
    def build(self, device: torch.device, dist: DistInfo, amp_dtype) -> None:
        cfg = self.cfg
        self.device, self.dist, self.amp_dtype = device, dist, amp_dtype
        self.generator = apply_init(build_model(self._generator_config), cfg.init).to(device)  # after the trainer seeds
        if cfg.init_from:
            self._load_init(cfg.init_from)
        elif cfg.arch == "effnet_unet":  # its encoder starts from ImageNet, after apply_init touched it
            load_imagenet_encoder(self.generator)
        critic = build_critic(**CRITIC_PRESETS.get(cfg.preset, CRITIC_PRESETS["paper"]))
        self.critic = apply_init(critic, cfg.init).to(device)
        if dist.enabled and device.type == "cuda":  # batch statistics over all GPUs (gloo has no SyncBatchNorm)
            self.generator = nn.SyncBatchNorm.convert_sync_batchnorm(self.generator)
        self.generator_ddp = wrap_ddp(self.generator, dist, device)
        # Buffers (batch-norm statistics) are averaged too, so the average is a complete model.
        self.ema = (AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
                    if cfg.ema_decay > 0 else None)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas_g))
        self.opt_c = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_c, betas=tuple(cfg.betas_c))
        fp16 = amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler(device.type, enabled=fp16)
        self.scaler_c = torch.amp.GradScaler(device.type, enabled=fp16)

    def _load_init(self, folder: str) -> None:
        """Start the generator from an exported depth model of the same architecture and output."""
        from depthda.models.weights import load_exported

        model, config = load_exported(folder, "cpu")
        mine = {"arch": self._generator_config["arch"], "arch_args": self._generator_config["arch_args"],
                "depth_param": self.param.to_dict()}
        theirs = {k: config.get(k) for k in mine}
        if theirs != json.loads(json.dumps(mine)):
            raise DepthdaError(f"--init-from {folder}: its network ({theirs}) is not the one this run trains ({mine})")
        self.generator.load_state_dict(model.state_dict())

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "critic": self.critic, **({"ema": self.ema} if self.ema is not None else {})}

    def train_dataset(self) -> Dataset:
        return self.train_set

    def val_batches(self) -> list:
        n = min(len(self.val_set), self.cfg.val_batches * self.cfg.batch_size)
        items = [self.val_set[i] for i in range(n)]
        return [{k: torch.stack([it[k] for it in items[i:i + self.cfg.batch_size]]) for k in ("rgb", "depth")}
                for i in range(0, n, self.cfg.batch_size)]

    # ------------------------------------------------------------ training
    def _inputs(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rgb, target in the network's depth space, valid-pixel mask) of a batch."""
        rgb, depth = batch["rgb"], batch["depth"]
        # A crop zoomed by z looks like the scene seen from z times nearer through the nominal camera,
        # so its depth target is scaled by 1/z; the network then learns one metric camera.
        far = depth >= self.capped_from  # stays at the cap
        depth = torch.where(far, depth, depth * (self.focal_px / batch["focal_px"]).view(-1, 1, 1, 1))
        return rgb, self.param.encode(depth), (depth > 0).float()

    def train_step(self, batches: list, step: int) -> dict[str, float]:
        """`batches`: batches_per_step batches; the last is the generator's, those before it (fresh
        critic batches) one per critic update."""
        cfg = self.cfg
        if len(batches) != self.batches_per_step:
            raise ValueError(f"a step takes {self.batches_per_step} batches, got {len(batches)}")
        self.generator_ddp.train()
        # Without fresh batches the critic's are the generator's own, repeated: one batch serves all.
        critic_batches = batches[:-1] or batches[-1:] * cfg.critic_steps
        step_data = _StepData(self, generator_batch=batches[-1])
        critic_logs = {}
        if self.adversarial:
            for c_batch in critic_batches:
                critic_logs = self._critic_update(*step_data.critic_inputs(c_batch))  # the last update's are logged
        rgb, target, valid, fake = step_data.generator_inputs()
        l1 = masked_l1(fake, target, valid)
        loss_g = cfg.l1_weight * l1
        logs = {"loss/l1": l1.item()}
        if cfg.grad_weight > 0:
            grad = gradient_matching(fake, target, valid)
            loss_g = loss_g + cfg.grad_weight * grad
            logs["loss/gradient_matching"] = grad.item()
        if self.adversarial:
            set_requires_grad([self.critic], False)
            with autocast(self.device, self.amp_dtype):
                g_adv = -critic_score(self.critic, rgb, fake).float().mean()
            set_requires_grad([self.critic], True)
            loss_g = loss_g + (1 - cfg.l1_weight) * g_adv
            logs.update({"loss/g_adv": g_adv.item(), **critic_logs})
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss_g).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        if self.ema is not None:
            self.ema.update_parameters(self.generator)
        logs.update({"loss/generator": loss_g.item(), "lr/generator": self.opt_g.param_groups[0]["lr"],
                     "lr/critic": self.opt_c.param_groups[0]["lr"]})
        return logs

    def _critic_update(self, rgb: torch.Tensor, target: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """One WGAN-GP critic update: real depth against the generator's; its scalars."""
        with autocast(self.device, self.amp_dtype):
            w_real = critic_score(self.critic, rgb, target).float().mean()
            w_fake = critic_score(self.critic, rgb, fake.detach()).float().mean()
        gp = gradient_penalty(self.critic, rgb, target, fake)
        loss_c = w_fake - w_real + self.cfg.gp_weight * gp
        self.opt_c.zero_grad(set_to_none=True)
        self.scaler_c.scale(loss_c).backward()
        # The critic is not DDP-wrapped: DDP's reducer does not support the double backward of the
        # gradient penalty. Averaging its gradients over the ranks here is what DDP would do; with
        # the same starting weights (the Trainer broadcasts rank 0's) and the same averaged
        # gradients, every rank's critic and its Adam state stay equal.
        average_gradients(self.critic, self.dist)
        self.scaler_c.step(self.opt_c)
        self.scaler_c.update()
        return {"loss/critic": loss_c.item(), "wgan/wasserstein": (w_real - w_fake).item(),
                "wgan/gradient_penalty": gp.item()}

    # ------------------------------------------------------------ validation and images
    @property
    def inference_generator(self) -> nn.Module:
        """The weights that are validated and exported: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.generator

    @torch.no_grad()
    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        net = self.inference_generator
        net.eval()
        with autocast(self.device, self.amp_dtype):
            out = net(rgb.to(self.device))
        return self.param.decode(out.float())

    def validate(self, batches: list) -> dict[str, float]:
        per_image = []
        for b in batches:
            pred = self.predict(b["rgb"]).cpu().numpy()[:, 0]
            gt = b["depth"].numpy()[:, 0]
            for p, g in zip(pred, gt):
                mask = (g > 0) & (g < self.capped_from)
                if mask.sum() >= 10:
                    per_image.append(compute_depth_metrics(g[mask], np.clip(p[mask], 1e-3, self.cfg.max_depth)))
        if not per_image:
            return {"score": float("inf")}
        m = mean_metrics(per_image)
        return {**m, "score": m["abs_rel"]}

    def images(self, batch) -> dict[str, torch.Tensor]:
        rgb = batch["rgb"][:4]
        pred = self.param.encode(self.predict(rgb))
        gt = self.param.encode(batch["depth"][:4].to(self.device))
        return {"images/rgb_gt_pred": rows_grid([rgb01(rgb), colour_encoded_depth(gt), colour_encoded_depth(pred)])}

    def final_report(self) -> None:
        return None  # the best validation is in the trainer's summary already

    # ------------------------------------------------------------ state and export
    def state_dict(self) -> dict:
        state = {"generator": unwrap(self.generator).state_dict(), "critic": self.critic.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_c": self.opt_c.state_dict(),
                 "scaler_g": self.scaler_g.state_dict(), "scaler_c": self.scaler_c.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        unwrap(self.generator).load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_c.load_state_dict(state["opt_c"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_c.load_state_dict(state["scaler_c"])
        if "ema" in state and self.ema is None:
            # Resuming without it would silently export raw weights and drop the average for good.
            raise DepthdaError("this run keeps a moving average of the weights: resume it with --ema-decay")
        if self.ema is not None:
            if "ema" in state:
                self.ema.load_state_dict(state["ema"])
            else:  # a run saved without an average starts one at the resumed weights
                self.ema.module.load_state_dict(state["generator"])

    def compat(self) -> dict:
        return {"stage": self.name, "preset": self.cfg.preset, "size": list(self.cfg.size),
                "depth_param": self.param.to_dict(),
                # A unet run records no arch (its checkpoints never did), so they all still resume.
                **({"arch": self.cfg.arch} if self.cfg.arch != "unet" else {})}

    def export_model(self) -> nn.Module:
        return unwrap(self.inference_generator)

    def loss_description(self) -> str:
        terms = ["L1"]
        if self.adversarial:
            terms.append("WGAN-GP")
        if self.cfg.grad_weight > 0:
            terms.append("gradient matching")
        return "stage1 " + " + ".join(terms)

    def export_config(self) -> dict:
        h, w = self.cfg.size
        return depth_model_config(self.cfg.preset, (h, w), self.param, focal_px=self.focal_px, resize=self.cfg.resize,
                                  arch=self.cfg.arch,
                                  train_data=str(Path(self.cfg.data_root)),
                                  training=self.loss_description(),
                                  l1_weight=self.cfg.l1_weight,
                                  **({"grad_weight": self.cfg.grad_weight} if self.cfg.grad_weight > 0 else {}),
                                  **({"init_from": str(self.cfg.init_from)} if self.cfg.init_from else {}),
                                  **({"ema_decay": self.cfg.ema_decay} if self.cfg.ema_decay > 0 else {}))


class _StepData:
    """The inputs of one training step, each computed once, when first needed.

    The generator's output on its own batch is computed with gradients (it trains on it); on a
    critic batch of its own, the current generator's output, without. So a critic that repeats the
    generator's batch uses that one output for every update, computed before the first, while
    fresh critic batches each get their own, just before their update, and the generator's comes
    after the last: the order in which the networks draw random numbers (dropout, the penalty's
    interpolates) and update batch statistics is that of WGAN-GP's Algorithm 1.
    """

    def __init__(self, task: DepthTask, generator_batch: dict):
        self.task, self.generator_batch = task, generator_batch
        self.fake = None

    def critic_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rgb, target, fake) of a critic update on `batch`."""
        if batch is self.generator_batch:
            rgb, target, _, fake = self.generator_inputs()
            return rgb, target, fake
        task = self.task
        rgb, target, _ = task._inputs(batch)
        with torch.no_grad(), autocast(task.device, task.amp_dtype):
            return rgb, target, task.generator(rgb).float()  # the current generator on this batch

    def generator_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rgb, target, valid, fake) of the generator's batch."""
        if self.fake is None:
            task = self.task
            self.rgb, self.target, self.valid = task._inputs(self.generator_batch)
            with autocast(task.device, task.amp_dtype):
                fake = task.generator_ddp(self.rgb)
            self.fake = fake.float()
        return self.rgb, self.target, self.valid, self.fake
