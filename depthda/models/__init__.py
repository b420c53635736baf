"""Network zoo: every architecture depthda can build from a config.json.

`build_model({"arch": ..., "arch_args": {...}})` is the only way weights files are turned back
into modules, so the registry below is the complete list of loadable architectures.
"""

from __future__ import annotations

from torch import nn

from depthda.models.effnet_unet import EFFNET_UNET_PRESETS, EffNetUNet
from depthda.models.patchgan import PATCHGAN_PRESETS, PatchGAN
from depthda.models.resnet_generator import RESNET_PRESETS, ResnetGenerator
from depthda.models.unet import UNET_PRESETS, UNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "effnet_unet": EffNetUNet,
    "resnet_generator": ResnetGenerator,
    "patchgan": PatchGAN,
}

PRESETS: dict[str, dict[str, dict]] = {
    "unet": UNET_PRESETS,
    "effnet_unet": EFFNET_UNET_PRESETS,
    "resnet_generator": RESNET_PRESETS,
    "patchgan": PATCHGAN_PRESETS,
}


def preset_args(arch: str, preset: str) -> dict:
    try:
        return dict(PRESETS[arch][preset])
    except KeyError:
        raise ValueError(f"unknown preset {preset!r} for {arch}; choose from {sorted(PRESETS.get(arch, {}))}") from None


def build_model(config: dict) -> nn.Module:
    arch = config.get("arch")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**config.get("arch_args", {}))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
