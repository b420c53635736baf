"""History of generated images for the discriminators (Shrivastava et al. 2017, as in CycleGAN).

The discriminator sees, per image, either the newest fake or — with probability 0.5 once the pool
is full — a stored older one (which the new fake then replaces). Training the discriminator on a
history damps the oscillation between generator and discriminator.

All randomness comes from one CPU torch.Generator, and `state_dict()` holds the stored images and
that generator's state, so a resumed run draws exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import torch

# CycleGAN's default --pool_size.
DEFAULT_POOL_SIZE = 50


class ImagePool:
    def __init__(self, size: int = DEFAULT_POOL_SIZE, generator: torch.Generator | None = None):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = int(size)
        # A fixed default seed keeps runs reproducible when the caller passes no generator.
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        if self.generator.device.type != "cpu":
            raise ValueError("ImagePool needs a CPU torch.Generator (its state is checkpointed)")
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """B×C×H×W fakes in, B×C×H×W images for the discriminator out (detached)."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.images and images.shape[1:] != self.images[0].shape:
            raise ValueError(f"image shape {tuple(images.shape[1:])} differs from the pooled "
                             f"{tuple(self.images[0].shape)}")
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) < 0.5:
                slot = int(torch.randint(self.size, (), generator=self.generator))
                old = self.images[slot].to(image.device, image.dtype)
                self.images[slot] = image.clone()
                out.append(old)
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        images = (torch.stack([im.cpu() for im in self.images]) if self.images
                  else torch.empty(0))
        return {"size": self.size, "images": images, "generator_state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"checkpoint pool size {int(state['size'])} differs from {self.size}")
        images = state["images"]
        if len(images) > self.size:
            raise ValueError(f"checkpoint holds {len(images)} images, more than the pool size {self.size}")
        # Stored on the CPU; `query` moves an old image to the device of the batch it joins.
        self.images = [im.clone() for im in images] if images.numel() else []
        self.generator.set_state(state["generator_state"].clone())
