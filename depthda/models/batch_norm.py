"""How the depth network's batch norm normalises at inference: a choice recorded in config.json.

"running" (default): the running statistics gathered in training, as PyTorch's eval mode does.
"per_image": each image's own statistics, which is what the paper's authors' released inference
does (batch norm left in training mode, one image per batch); the learned scale and shift stay.
Per-image statistics adapt to a new domain's brightness and contrast at the price of depending on
the image's content. Implemented as instance norm with batch norm's affine parameters, so a batch
of several images gives each the result it would get alone.
"""

from __future__ import annotations

from torch import nn

BATCH_NORM_MODES = ("running", "per_image")


def per_image_batch_norm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d of `model` (in place) by per-image normalisation with its affine."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                norm = nn.InstanceNorm2d(child.num_features, eps=child.eps, affine=child.affine,
                                         track_running_stats=False)
                if child.affine:
                    norm.weight.data.copy_(child.weight.data)
                    norm.bias.data.copy_(child.bias.data)
                setattr(parent, name, norm)
    return model
