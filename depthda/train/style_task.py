"""The style task (the paper's stage 2): CycleGAN (Zhu et al. 2017) between real frames (domain A)
and synthetic frames (domain B).

g_ab restyles real frames as synthetic ones; it is what inference puts in front of the depth
network, so it is the exported model. g_ba, both discriminators and the image pools live only in
the full checkpoint. Least-squares GAN losses, cycle and identity terms (depthda/train/losses.py),
Adam with a linear decay over the second half of training, as in CycleGAN's published recipe.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.utils.data import Dataset

from depthda.models import build_model, preset_args
from depthda.models.configs import style_model_config
from depthda.models.image_pool import ImagePool
from depthda.models.init import apply_init
from depthda.train.config import StyleConfig
from depthda.train.distributed import DistInfo, unwrap, wrap_ddp
from depthda.train.losses import cycle_loss, identity_loss, lsgan, lsgan_discriminator, set_requires_grad
from depthda.train.visuals import rgb01, rows_grid
from depthda.utils.device import autocast

# Everything the checkpoint holds, by attribute name (each has state_dict/load_state_dict).
STATE_NAMES = ("g_ab", "g_ba", "d_a", "d_b", "opt_g", "opt_d", "sched_g", "sched_d", "pool_a", "pool_b", "scaler")


class StyleTask:
    """The style task as engine.Task: generators `g_ab` (real -> synthetic) and `g_ba`, discriminators
    `d_a` (judges real frames) and `d_b` (judges synthetic ones); `<name>_ddp` is what the training
    step calls, the network's DDP wrapper under torchrun and the network itself otherwise."""

    name = "stage2"
    # Under torchrun each rank's pools hold the fakes of its own batches, as one process's would.
    per_rank_state = ("pool_a", "pool_b")
    batches_per_step = 1

    def __init__(self, cfg: StyleConfig):
        from depthda.data.unpaired import UnpairedDataset  # validates both domains before any model is built
        self.cfg = cfg
        self.data = UnpairedDataset(cfg.real, cfg.synthetic, size=tuple(cfg.size), seed=cfg.seed, augment=True,
                                    exclude_eigen_test=cfg.exclude_eigen_test)
        self.val_data = self.data.variant(seed=cfg.seed + 1, augment=False)  # shares the decoded images
        self._generator_config = {"arch": "resnet_generator", "arch_args": preset_args("resnet_generator", cfg.preset)}
        build_model(self._generator_config).check_size(*cfg.size)  # fail on a bad size before any work
        self._last_report: dict | None = None

    def build(self, device: torch.device, dist: DistInfo, amp_dtype) -> None:
        cfg = self.cfg
        self.device, self.dist, self.amp_dtype = device, dist, amp_dtype
        disc = {"arch": "patchgan", "arch_args": preset_args("patchgan", cfg.preset)}
        # Built here, after the trainer seeds, so initial weights are a function of --seed.
        self.d_a, self.d_b = (apply_init(build_model(disc), cfg.init).to(device) for _ in range(2))
        self.g_ab, self.g_ba = (apply_init(build_model(self._generator_config), cfg.init).to(device) for _ in range(2))
        self.g_ab_ddp, self.g_ba_ddp = wrap_ddp(self.g_ab, dist, device), wrap_ddp(self.g_ba, dist, device)
        self.d_a_ddp, self.d_b_ddp = wrap_ddp(self.d_a, dist, device), wrap_ddp(self.d_b, dist, device)
        self.opt_g = torch.optim.Adam(itertools.chain(self.g_ab.parameters(), self.g_ba.parameters()), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_d = torch.optim.Adam(itertools.chain(self.d_a.parameters(), self.d_b.parameters()), lr=cfg.lr, betas=tuple(cfg.betas))
        decay_from = int(cfg.steps * cfg.decay_start)
        span = max(1, cfg.steps - decay_from)

        def factor(step: int) -> float:
            return 1.0 - max(0, step - decay_from) / span

        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, factor)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, factor)
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + dist.rank)
        self.pool_a = ImagePool(cfg.pool_size, generator=gen)
        self.pool_b = ImagePool(cfg.pool_size, generator=torch.Generator().manual_seed(cfg.seed * 7919 + 17 + dist.rank))
        fp16 = amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)

    def networks(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    def train_dataset(self) -> Dataset:
        return self.data

    def val_batches(self) -> list:
        n = min(len(self.val_data), max(8, self.cfg.val_batches))
        items = [self.val_data[i] for i in range(n)]
        return [{k: torch.stack([it[k] for it in items]) for k in ("A", "B")}]

    def train_step(self, batches: list, step: int) -> dict[str, float]:
        cfg = self.cfg
        (batch,) = batches
        real_a, real_b = batch["A"], batch["B"]
        for m in (self.g_ab_ddp, self.g_ba_ddp, self.d_a_ddp, self.d_b_ddp):
            m.train()
        # Generators: fool both discriminators, reconstruct through the cycle, keep B unchanged by g_ab.
        set_requires_grad([self.d_a, self.d_b], False)
        with autocast(self.device, self.amp_dtype):
            fake_b, fake_a = self.g_ab_ddp(real_a), self.g_ba_ddp(real_b)
            rec_a, rec_b = self.g_ba_ddp(fake_b), self.g_ab_ddp(fake_a)
            adv = lsgan(self.d_b_ddp(fake_b), True) + lsgan(self.d_a_ddp(fake_a), True)
            cycle = cycle_loss(rec_a, real_a, rec_b, real_b)
            loss_g = adv + cfg.cycle_weight * cycle
            idt = torch.zeros((), device=self.device)
            if cfg.identity_weight > 0:
                idt = identity_loss(self.g_ab_ddp, self.g_ba_ddp, real_a, real_b)
                loss_g = loss_g + cfg.cycle_weight * cfg.identity_weight * idt
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        set_requires_grad([self.d_a, self.d_b], True)
        # Discriminators: real vs a pool of earlier fakes.
        pooled_b = self.pool_b.query(fake_b.detach().float())
        pooled_a = self.pool_a.query(fake_a.detach().float())
        with autocast(self.device, self.amp_dtype):
            loss_d_b = lsgan_discriminator(self.d_b_ddp, real_b, pooled_b)
            loss_d_a = lsgan_discriminator(self.d_a_ddp, real_a, pooled_a)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d_a + loss_d_b).backward()
        self.scaler.step(self.opt_d)
        self.scaler.update()
        logs = {"loss/generator": loss_g.item(), "loss/g_adv": adv.item(), "loss/cycle": cycle.item(),
                "loss/identity": idt.item(), "loss/d_a": loss_d_a.item(), "loss/d_b": loss_d_b.item(),
                "lr/generator": self.opt_g.param_groups[0]["lr"]}
        self.sched_g.step()
        self.sched_d.step()
        return logs

    @torch.no_grad()
    def translate(self, real_a: torch.Tensor) -> torch.Tensor:
        self.g_ab.eval()
        with autocast(self.device, self.amp_dtype):
            return self.g_ab(real_a.to(self.device)).float()

    @torch.no_grad()
    def validate(self, batches: list) -> dict[str, float]:
        from depthda.train.style_distance import translation_report
        b = batches[0]
        rep = translation_report(b["A"], self.translate(b["A"]).cpu(), b["B"])
        self._last_report = rep
        return {"untranslated": rep["untranslated"]["total"], "translated": rep["translated"]["total"],
                "ratio": rep["ratio"], "score": rep["translated"]["total"]}

    @torch.no_grad()
    def images(self, batch) -> dict[str, torch.Tensor]:
        a, b = batch["A"][:4].to(self.device), batch["B"][:4].to(self.device)
        self.g_ab.eval()
        self.g_ba.eval()
        fb = self.g_ab(a)
        fa = self.g_ba(b)
        return {"images/real_to_synthetic_to_real": rows_grid([rgb01(a), rgb01(fb), rgb01(self.g_ba(fb))]),
                "images/synthetic_to_real_to_synthetic": rows_grid([rgb01(b), rgb01(fa), rgb01(self.g_ab(fa))])}

    def final_report(self) -> str | None:
        """The style distance to synthetic frames before and after translation, at the last validation."""
        if self._last_report is None:
            return None
        from depthda.train.style_distance import format_report
        return format_report(self._last_report)

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in STATE_NAMES}

    def load_state_dict(self, state: dict) -> None:
        for name in STATE_NAMES:
            getattr(self, name).load_state_dict(state[name])

    def compat(self) -> dict:
        return {"stage": self.name, "preset": self.cfg.preset, "size": list(self.cfg.size)}

    def export_model(self) -> nn.Module:
        return unwrap(self.g_ab)

    def export_config(self) -> dict:
        return style_model_config(self.cfg.preset, tuple(self.cfg.size), real_data=[str(r) for r in self.cfg.real],
                                  synthetic_data=str(self.cfg.synthetic), training="stage2 CycleGAN (LSGAN)")
