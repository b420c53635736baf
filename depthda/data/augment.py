"""Training-time augmentation: RGB + depth pairs for the depth network, RGB alone for style
transfer (`resize_crop`), and the conversion of the result into network input (`to_tensor`).

Two views of a frame for the depth network (`augment_pair(view=...)`): "crop" resizes it, aspect
kept, to cover the training size at a random zoom and takes a random crop; "whole" resizes the
whole frame straight to the training size (the aspect ratio follows the training size, as the
authors' training and released inference do), with `resize_to`, the resize inference uses too.

Geometry (resize, crop, flip) is applied identically to both images; photometric jitter touches
the RGB only. Depth is always resampled with centre-aligned nearest neighbour so every output
depth value is one of the input values: interpolating across an object boundary would invent
depths that exist nowhere in the scene, and would smear the 0 (= invalid) pixels into their
neighbours.

All randomness comes from the numpy Generator passed in, so the caller decides reproducibility
(SynthiaDataset seeds one per (seed, epoch, index)). Draw order is fixed — zoom, crop y, crop x,
flip, jitter — so switching jitter off leaves the geometry of a given seed unchanged.

Not torchvision.transforms.v2: it has no area filter, and training must shrink images the way
inference does (cv2 INTER_AREA, utils.images.resize_interpolation); its uint8 colour jitter is
slower than this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from depthda.utils.images import resize_interpolation

if TYPE_CHECKING:
    import torch

# Random zoom on top of the cover scale: up to 15 % extra, the range asked of stage 1.
MAX_ZOOM = 1.15
# monodepth2's colour augmentation: brightness/contrast/saturation ±0.2, hue ±0.1, applied to
# half of the training samples. Gamma 0.8–1.2 is monodepth's (Godard et al. 2017) range.
JITTER_P = 0.5
BRIGHTNESS = 0.2
CONTRAST = 0.2
SATURATION = 0.2
HUE = 0.1
GAMMA = (0.8, 1.2)


def cover_scale(height: int, width: int, size: tuple[int, int]) -> float:
    """Smallest uniform scale at which a height×width image covers `size` = (H, W)."""
    return max(size[0] / height, size[1] / width)


def resize_to(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image resized to `size` = (H, W), aspect not kept, with area averaging along an axis that
    shrinks and bilinear along one that grows.

    When both axes shrink or both grow (any keep-aspect resize, and every stretch of a camera frame
    to a similar shape) this is one cv2.resize, exactly what the loaders always did. When one axis
    shrinks and the other grows, cv2 has no such filter (one cv2.resize treats both axes with one
    rule), so the two axes are resized one after the other, the shrinking one first.
    """
    h, w = img.shape[:2]
    out_h, out_w = int(size[0]), int(size[1])
    if (h, w) == (out_h, out_w):
        return img
    iy, ix = resize_interpolation(h, out_h), resize_interpolation(w, out_w)
    if iy == ix or h == out_h or w == out_w:
        return cv2.resize(img, (out_w, out_h), interpolation=ix if w != out_w else iy)
    if out_h < h:
        return cv2.resize(cv2.resize(img, (w, out_h), interpolation=iy), (out_w, out_h), interpolation=ix)
    return cv2.resize(cv2.resize(img, (out_w, h), interpolation=ix), (out_w, out_h), interpolation=iy)


def _output_size(rgb: np.ndarray, depth: np.ndarray | None, size: tuple[int, int]) -> tuple[int, int]:
    """`size` as ints, checked positive, and the depth (if any) checked to match the RGB."""
    out_h, out_w = int(size[0]), int(size[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if depth is not None and depth.shape[:2] != rgb.shape[:2]:
        raise ValueError(f"rgb {rgb.shape[:2]} and depth {depth.shape[:2]} sizes differ")
    return out_h, out_w


def whole_view(rgb: np.ndarray, depth: np.ndarray | None, size: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """The whole frame resized straight to `size` = (H, W) (RGB with `resize_to`, depth with
    centre-aligned nearest neighbour). Returns (rgb, depth, horizontal scale W / width): the
    focal length in pixels at the new width is the old one times that scale, as for a crop."""
    out_h, out_w = _output_size(rgb, depth, size)
    h, w = rgb.shape[:2]
    rgb = resize_to(rgb, (out_h, out_w))
    if depth is not None and depth.shape[:2] != (out_h, out_w):
        depth = cv2.resize(depth, (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT)
    return np.ascontiguousarray(rgb), depth, out_w / w


def resize_crop(rgb: np.ndarray, size: tuple[int, int], rng: np.random.Generator | None, train: bool = True,
                max_zoom: float = MAX_ZOOM, depth: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Resize (aspect kept) so the image (and its depth, if given) covers `size` = (H, W), then crop.

    Training: scale = cover scale × U[1, max_zoom], random crop. Otherwise: cover scale, centre
    crop, `rng` unused. Returns (rgb H×W×3, depth H×W or None, horizontal scale actually applied)
    — the scale is what the focal length must be multiplied by (cropping does not change it).
    """
    out_h, out_w = _output_size(rgb, depth, size)
    h, w = rgb.shape[:2]
    scale = cover_scale(h, w, (out_h, out_w))
    if train:
        scale *= float(rng.uniform(1.0, max_zoom))
    # max() guards against rounding a covering size just below the target.
    new_h, new_w = max(out_h, round(h * scale)), max(out_w, round(w * scale))
    if (new_h, new_w) != (h, w):
        rgb = cv2.resize(rgb, (new_w, new_h), interpolation=resize_interpolation(w, new_w))
        if depth is not None:
            # NEAREST_EXACT samples pixel centres like the RGB resamplers do; plain INTER_NEAREST
            # is shifted by up to half a source pixel relative to them.
            depth = cv2.resize(depth, (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT)
    if train:
        y0 = int(rng.integers(0, new_h - out_h + 1))
        x0 = int(rng.integers(0, new_w - out_w + 1))
    else:
        y0, x0 = (new_h - out_h) // 2, (new_w - out_w) // 2
    rgb = np.ascontiguousarray(rgb[y0:y0 + out_h, x0:x0 + out_w])
    if depth is not None:
        depth = np.ascontiguousarray(depth[y0:y0 + out_h, x0:x0 + out_w])
    return rgb, depth, new_w / w


def paired_resize_crop(rgb: np.ndarray, depth: np.ndarray, size: tuple[int, int],
                       rng: np.random.Generator | None, train: bool = True,
                       max_zoom: float = MAX_ZOOM) -> tuple[np.ndarray, np.ndarray, float]:
    """`resize_crop` of an RGB/depth pair with one geometry; see there."""
    return resize_crop(rgb, size, rng, train, max_zoom, depth=depth)


def paired_hflip(rgb: np.ndarray, depth: np.ndarray, rng: np.random.Generator,
                 p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Mirror both images left-right with probability p."""
    if rng.random() < p:
        return np.ascontiguousarray(rgb[:, ::-1]), np.ascontiguousarray(depth[:, ::-1])
    return rgb, depth


def color_jitter(rgb: np.ndarray, rng: np.random.Generator, brightness: float = BRIGHTNESS,
                 contrast: float = CONTRAST, saturation: float = SATURATION, hue: float = HUE,
                 gamma: tuple[float, float] = GAMMA) -> np.ndarray:
    """Random brightness, contrast, saturation, hue shift and gamma on an H×W×3 uint8 RGB image.

    Factors are drawn uniformly from [1-x, 1+x]; hue is a shift of ±`hue` of the colour circle.
    """
    b = rng.uniform(1 - brightness, 1 + brightness)
    c = rng.uniform(1 - contrast, 1 + contrast)
    s = rng.uniform(1 - saturation, 1 + saturation)
    hue_shift = rng.uniform(-hue, hue)
    g = rng.uniform(*gamma)

    img = rgb.astype(np.float32) / 255.0
    img = np.clip(img * b, 0.0, 1.0)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    img = np.clip((img - gray.mean()) * c + gray.mean(), 0.0, 1.0)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]
    img = np.clip((img - gray) * s + gray, 0.0, 1.0)
    if hue_shift:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)  # float input: H in degrees [0, 360)
        hsv[:, :, 0] = np.mod(hsv[:, :, 0] + 360.0 * hue_shift, 360.0)
        img = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)
    img = np.power(img, g)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


VIEWS = ("crop", "whole")


def augment_pair(rgb: np.ndarray, depth: np.ndarray, size: tuple[int, int],
                 rng: np.random.Generator | None, train: bool = True, jitter: bool = True,
                 jitter_p: float = JITTER_P, view: str = "crop") -> tuple[np.ndarray, np.ndarray, float]:
    """The full pipeline: the view (`paired_resize_crop` or `whole_view`), then (training only)
    flip and RGB jitter.

    Returns (rgb uint8 H×W×3, depth H×W, horizontal scale) like `paired_resize_crop`.
    """
    if view == "whole":
        rgb, depth, scale = whole_view(rgb, depth, size)
    elif view == "crop":
        rgb, depth, scale = paired_resize_crop(rgb, depth, size, rng, train=train)
    else:
        raise ValueError(f"unknown view {view!r}; choose from {', '.join(VIEWS)}")
    if train:
        rgb, depth = paired_hflip(rgb, depth, rng)
        if jitter and rng.random() < jitter_p:
            rgb = color_jitter(rgb, rng)
    return rgb, depth, scale


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float32 in [-1, 1], the networks' input (see depthda.models.normalize).

    Divides by 127.5 where normalize.rgb_to_tensor multiplies by 1 / 127.5: the two differ in the
    last bit for 111 of the 256 values, and training inputs stay exactly what they have been.
    """
    import torch  # here, so the data commands check their arguments before torch's import

    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
