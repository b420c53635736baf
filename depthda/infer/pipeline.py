"""One inference module: RGB in, depth in metres out (style transfer → depth network → metres).

    depth_m = DepthPipeline.from_checkpoint("checkpoints/default")(rgb_uint8_hxwx3)   # H×W float32

A pipeline checkpoint is a folder with `style/` and `depth/`, each an exported model folder
(`model.safetensors` + `config.json`, see depthda.models.weights). `from_checkpoint(style=RUN,
depth=RUN)` assembles one from two training runs instead.

Inputs
    * numpy H×W×3 uint8 RGB (grey/RGBA/16-bit arrays are converted) → numpy H×W float32 metres;
    * torch B×3×H×W, uint8 (0..255) or float (0..1) → torch B×H×W float32 metres.

Working resolution: the depth model's resize policy, config.json "resize" (working_geometry; the
one place predict, bench, export and eval take it from):
    * "stretch": the networks run at the training size H_net×W_net (config["size"]) whatever the
      frame's shape, as the paper's authors feed 1024×256; a frame of another aspect ratio is
      stretched, as the training frames were (DepthConfig.view "whole").
    * "keep_aspect" (also a config.json without the field, written before it existed): the
      training width W_net and the proportional height, so a frame's aspect ratio is kept.
The input is resized there with the filters the training data loaders use (depthda.data.augment.
resize_to: cv2 INTER_AREA along an axis that shrinks, INTER_LINEAR along one that grows; tensor
inputs get the same resize as two matrix products, see resize_matrix), then padded (replicating
the border rows/columns, bottom and right) up to a multiple of lcm(U-Net stride 2**levels, 4 = the
style generator's stride) — never needed under "stretch", whose training size is such a multiple.
Padding is input no training frame had, and it enters every normalisation statistic: at the
paper's stride of 256, a KITTI frame (375×1242) kept at its aspect is 309×1024 and padded to 512
rows (40 % padding), which is why the paper preset stretches. After the networks the padding is
cropped and depth is resized back to the input's resolution bilinearly. Any input size works, down
to 1×1 (tiny images are upsampled); under "keep_aspect" only absurd aspect ratios (working height
> MAX_WORKING_HEIGHT) are refused.

Metric scale. The depth network learned the synthetic training camera's scale; its config holds
that camera's focal length `focal_px` in pixels at W_net. Objects look bigger through a longer
lens, so with the input camera's focal f (pixels, at the input's resolution), depth is multiplied
by (f · W_net / W_input) / focal_px. Without f the input camera is assumed to have the training
camera's field of view (factor 1). Both resize policies scale the width by W_net / W_input (a
stretch changes only the vertical scale), so the factor is the same under either: focal_px is a
horizontal focal length, as the training frames' was.

Speed: on a CPU the networks of the numpy path run on ONNX Runtime by default (engine
"onnxruntime", depthda.infer.engine: the graph is exported once per model and working size,
checked against torch and cached); engine "torch" runs them eagerly in channels_last, oneDNN's
fast layout. Normalisation happens inside the networks (uint8 goes to the device, a quarter of
float's bytes). On CPU, depthda.infer.scheduling.FrameParallel runs whole frames on separate
cores instead of splitting each layer across them. On CUDA: autocast (bf16 where supported, else
fp16) and optional torch.compile (compile_(), for long runs on a GPU). The numpy path and the
tensor path agree up to cv2's fixed-point rounding of enlarged uint8 images (and of the
intermediate uint8 image when a stretch shrinks one axis and enlarges the other), cv2-vs-torch
bilinear upsampling of the result and, with ONNX Runtime, its arithmetic (under 1 cm).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from depthda.errors import DepthdaError
from depthda.infer.checks import check_focal, model_folders
from depthda.infer.engine import OrtNetworks, resolve_engine
from depthda.infer.pointcloud import CloudOptions, Intrinsics, PointCloud, depth_to_cloud
from depthda.infer.temporal import TemporalFilter, TemporalSettings
from depthda.data.augment import resize_to
from depthda.models.batch_norm import per_image_batch_norm
from depthda.models.configs import resize_policy
from depthda.models.depth_param import DepthParam
from depthda.models.normalize import to_signed_unit
from depthda.models.resnet_generator import ResnetGenerator
from depthda.models.weights import load_exported
from depthda.utils.device import autocast, autocast_dtype, pick_device
from depthda.utils.images import resize_interpolation, to_rgb_uint8

# A 1:20 portrait strip at W_net=416 is already 8320 rows; anything taller is a mistake, not a photo.
MAX_WORKING_HEIGHT = 8192


def padding_multiple(depth: nn.Module) -> int:
    """What the working size is padded to a multiple of: the depth network's stride and the style
    generator's (whether or not it runs)."""
    return math.lcm(int(getattr(depth, "stride", 1)), ResnetGenerator.stride)


def working_geometry(depth_config: dict, multiple: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(h, w) the networks see before padding and (h, w) after padding to `multiple`, for a
    height×width input, under the resize policy of a depth model's config.json (module docstring)."""
    net_h, net_w = int(depth_config["size"][0]), int(depth_config["size"][1])
    if resize_policy(depth_config) == "stretch":
        hn, wn = net_h, net_w
    else:
        wn = net_w
        hn = max(1, round(height * wn / width))
        if hn > MAX_WORKING_HEIGHT:
            raise DepthdaError(f"image {height}x{width} is too tall for its width (working size {hn}x{wn})")
    m = multiple
    return hn, wn, -(-hn // m) * m, -(-wn // m) * m


@functools.lru_cache(maxsize=16)
def resize_matrix(size_in: int, size_out: int, interpolation: int) -> torch.Tensor:
    """(size_out × size_in) float32 matrix of cv2.resize along one axis.

    cv2's area and bilinear resizes are linear and separable, so at a fixed size a resize is two
    matrix products: the tensor path and exported graphs (ONNX has no area filter) compute the
    same resize as the numpy path's cv2.resize this way.
    """
    eye = np.eye(size_in, dtype=np.float64)
    return torch.from_numpy(cv2.resize(eye, (size_in, size_out), interpolation=interpolation).astype(np.float32))


class DepthPipeline(nn.Module):
    """Style generator (real → synthetic, optional) + depth U-Net + decoding to metres."""

    def __init__(self, depth: nn.Module, depth_config: dict, style: nn.Module | None = None,
                 style_config: dict | None = None):
        super().__init__()
        self.depth = depth
        self.style = style
        self.depth_config = depth_config
        self.style_config = style_config
        try:
            self.depth_param = DepthParam.from_dict(depth_config["depth_param"])
            self.net_width = int(depth_config["size"][1])
            self.net_height = int(depth_config["size"][0])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DepthdaError(f"depth model config lacks a valid 'depth_param' or 'size': {exc}") from None
        try:
            self.resize_policy = resize_policy(depth_config)
        except ValueError as exc:
            raise DepthdaError(f"depth model config: {exc}") from None
        self.multiple = padding_multiple(depth)
        focal = depth_config.get("focal_px")
        self.train_focal_px = float(focal) if focal else None
        self.ort: OrtNetworks | None = None  # ONNX Runtime for the numpy path's networks (engine)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None = None, *, style: str | Path | None = None,
                        depth: str | Path | None = None, device: str | torch.device = "auto",
                        use_style: bool = True, engine: str = "auto", compile: bool = False) -> "DepthPipeline":
        """Load a pipeline folder (style/ + depth/) or two training-run folders (`style=`, `depth=`).

        `engine`: what runs the networks of the numpy path, "auto" (ONNX Runtime on a CPU, torch on
        CUDA), "torch" or "onnxruntime" (depthda.infer.engine); `compile`: torch.compile them (torch
        engine only).
        """
        checkpoint, style, depth = model_folders(checkpoint, style, depth, use_style)
        device = pick_device(device) if isinstance(device, str) else torch.device(device)
        required = engine == "onnxruntime"  # asked for by name: a cache it cannot use is an error
        engine = resolve_engine(engine, device)
        depth_model, depth_config = load_exported(depth, "cpu")
        if depth_config.get("kind", "depth") != "depth":
            raise DepthdaError(f"{Path(depth) / 'config.json'} describes a {depth_config.get('kind')} model, not a depth model")
        if depth_config.get("batch_norm") == "per_image":  # see depthda.models.batch_norm
            per_image_batch_norm(depth_model)
        style_model, style_config = None, None
        if use_style:
            style_model, style_config = load_exported(style, "cpu")
            if style_config.get("kind", "style") != "style":
                raise DepthdaError(f"{Path(style) / 'config.json'} describes a {style_config.get('kind')} model, not a style model")
        pipe = cls(depth_model, depth_config, style_model, style_config)
        pipe = pipe.to(device, memory_format=torch.channels_last).eval()
        if engine == "onnxruntime":
            pipe.ort = OrtNetworks(pipe, checkpoint if checkpoint is not None else Path(depth), required=required)
        if compile and engine == "torch":  # ONNX Runtime compiles its own graph; tracing wants plain modules
            pipe.compile_()
        return pipe

    def compile_(self) -> "DepthPipeline":
        # Compiled per input shape; video frames share one, so only the first batch pays.
        self.depth = torch.compile(self.depth)
        if self.style is not None:
            self.style = torch.compile(self.style)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.depth.parameters()).device

    @property
    def engine(self) -> str:
        """What runs run_prepared's networks: "onnxruntime" or "torch" (sizes that could not be
        exported run on torch too, see depthda.infer.engine)."""
        return "onnxruntime" if self.ort is not None else "torch"

    @property
    def use_style(self) -> bool:
        return self.style is not None

    # ------------------------------------------------------------------ geometry and scale
    def working_size(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(h, w) the networks see before padding and (h, w) after padding, for an input size,
        under this model's resize policy (working_geometry)."""
        return working_geometry(self.depth_config, self.multiple, height, width)

    def focal_scale(self, focal_px: float | None, width: int) -> float:
        """Depth factor for an input camera of focal `focal_px` (pixels at `width`); 1 without one."""
        if focal_px is None:
            return 1.0
        check_focal(focal_px)
        if self.train_focal_px is None:
            raise DepthdaError("this depth model's config.json has no focal_px, so it cannot be rescaled "
                               "to another camera's focal length; drop --focal/--calib")
        return (focal_px * self.net_width / width) / self.train_focal_px

    def intrinsics(self, height: int, width: int, focal_px: float | None = None,
                   principal: tuple[float, float] | None = None) -> Intrinsics:
        """The input camera's intrinsics: `focal_px` (pixels at `width`) or, without it, the training
        camera's field of view (focal_px of the config at the network's width, scaled to `width`);
        principal point `principal` (cx, cy) or the image centre."""
        if focal_px is None:
            if self.train_focal_px is None:
                raise DepthdaError("this depth model's config.json has no focal_px (training field of view): "
                                   "give the camera's focal length (--focal or --calib)")
            focal_px = self.train_focal_px * width / self.net_width
        self.focal_scale(focal_px, width)  # the same checks of a given focal length
        k = Intrinsics.centred(focal_px, height, width)
        return k if principal is None else Intrinsics(k.fx, k.fy, *principal)

    def cloud_of(self, rgb: np.ndarray, depth: np.ndarray, focal_px: float | None = None,
                 options: CloudOptions = CloudOptions()) -> PointCloud:
        """Coloured points of a depth map this pipeline predicted for `rgb` with `focal_px`
        (depthda.infer.pointcloud); its far limit, rescaled as the depth was, marks the sky."""
        h, w = depth.shape
        k = self.intrinsics(h, w, focal_px, options.principal)
        far = self.depth_param.max_depth * self.focal_scale(focal_px, w)
        return depth_to_cloud(depth, rgb, k, options, sky_depth=far)

    def point_cloud(self, frame: np.ndarray, focal_px: float | None = None,
                    options: CloudOptions = CloudOptions()) -> PointCloud:
        """An RGB frame → its coloured points in metres (OpenCV camera frame); write them with
        depthda.infer.pointcloud.write_cloud(path.ply or path.glb, cloud)."""
        rgb = self.as_rgb_list([frame])[0]
        return self.cloud_of(rgb, self(rgb, focal_px=focal_px), focal_px, options)

    # ------------------------------------------------------------------ the graph (tensors)
    def _resize_input(self, x: torch.Tensor, hn: int, wn: int) -> torch.Tensor:
        """Bx3xHxW uint8 or float(0..1) → float32 in [-1, 1] at hn×wn, resized as cv2 would."""
        h, w = int(x.shape[-2]), int(x.shape[-1])
        is_uint8 = x.dtype == torch.uint8
        x = x.float()
        if (h, w) != (hn, wn):
            # Each axis with its own filter, as data.augment.resize_to (the numpy path's resize).
            x = torch.matmul(resize_matrix(h, hn, resize_interpolation(h, hn)).to(x.device), x)
            x = torch.matmul(x, resize_matrix(w, wn, resize_interpolation(w, wn)).T.to(x.device))
            if is_uint8:
                x = torch.floor(x + 0.5)  # cv2 rounds a resized uint8 image half up
        return to_signed_unit(x) if is_uint8 else x * 2 - 1

    def networks(self, x: torch.Tensor, hn: int, wn: int) -> torch.Tensor:
        """Padded Bx3xHpxWp (uint8 0..255, or float already in [-1, 1]) → B×hn×wn metres (unscaled)."""
        if x.dtype == torch.uint8:
            x = to_signed_unit(x)
        x = x.contiguous(memory_format=torch.channels_last)
        if self.style is not None:
            x = self.style(x)
        out = self.depth(x)
        return self.depth_param.decode(out[:, 0, :hn, :wn])

    def network_input(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Bx3xHxW uint8/float(0..1) → (the networks' input: Bx3xHpxWp float in [-1, 1], resized
        and padded, with the hn×wn of it that is image)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise DepthdaError(f"expected a Bx3xHxW tensor, got shape {tuple(x.shape)}")
        # int(): under tracing shapes are tensors; the exported graph has a fixed size anyway.
        hn, wn, hp, wp = self.working_size(int(x.shape[-2]), int(x.shape[-1]))
        x = self._resize_input(x, hn, wn)
        if (hp, wp) != (hn, wn):
            x = F.pad(x, (0, wp - wn, 0, hp - hn), mode="replicate")
        return x, hn, wn

    def forward_working(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW uint8/float(0..1) → B×hn×wn depth in metres at the working size (unscaled)."""
        return self.networks(*self.network_input(x))

    def forward(self, x, focal_px: float | None = None):
        """Tensor Bx3xHxW (uint8 0..255 or float 0..1) → B×H×W metres; numpy H×W×3 → numpy H×W."""
        if isinstance(x, np.ndarray):
            if x.ndim == 4:
                return self.predict_batch(x, focal_px=focal_px)
            return self.predict_batch([x], focal_px=focal_px)[0]
        h, w = int(x.shape[-2]), int(x.shape[-1])
        depth = self.forward_working(x)
        depth = F.interpolate(depth[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        scale = self.focal_scale(focal_px, w)
        return depth * scale if scale != 1.0 else depth

    # ------------------------------------------------------------------ numpy path (CLI, video, eval)
    # Same steps, split so that a video runner can put resizing and finishing on other threads:
    # prepare (per frame) → run_prepared (batch, the networks) → finish (per frame).

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 RGB → hp×wp×3 uint8 at the working size, border-replicated to the stride.

        Resized exactly as the training loaders resize images (data.augment.resize_to: cv2
        INTER_AREA along an axis that shrinks, INTER_LINEAR along one that grows, on uint8).
        """
        h, w = image.shape[:2]
        hn, wn, hp, wp = self.working_size(h, w)
        image = resize_to(image, (hn, wn))
        if (hp, wp) != (hn, wn):
            image = cv2.copyMakeBorder(image, 0, hp - hn, 0, wp - wn, cv2.BORDER_REPLICATE)
        return image

    def run_prepared(self, prepared, height: int, width: int, threads: int | None = None) -> np.ndarray:
        """Prepared frames (B×hp×wp×3 uint8 or list) of inputs height×width → B×hn×wn metres
        (unscaled). `threads`: ONNX Runtime's intra-op threads (default: torch's thread count)."""
        hn, wn, _, _ = self.working_size(height, width)
        batch = prepared if isinstance(prepared, np.ndarray) else np.stack(prepared)
        if self.ort is not None:
            out = self.ort.run(batch, hn, wn, threads or torch.get_num_threads())
            if out is not None:
                return out
        # A B×H×W×3 array seen as Bx3xHxW is already channels_last: no copy before the device transfer.
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device, non_blocking=True)
        with torch.inference_mode(), autocast(self.device, autocast_dtype(self.device)):
            depth = self.networks(x, hn, wn)
        return depth.float().cpu().numpy()

    def finish(self, working: np.ndarray, height: int, width: int, focal_px: float | None = None) -> np.ndarray:
        """Working-size depth (h×w or B×h×w) → metres at height×width, focal-scaled.

        cv2's bilinear resize is the same half-pixel-centre interpolation as F.interpolate(...,
        align_corners=False) and faster on CPU; the two agree to ~1e-5 relative.
        """
        scale = self.focal_scale(focal_px, width)
        one = working.ndim == 2
        maps = working[None] if one else working
        out = np.empty((len(maps), height, width), np.float32)
        for i, m in enumerate(maps):
            cv2.resize(m, (width, height), dst=out[i], interpolation=cv2.INTER_LINEAR)
        if scale != 1.0:
            out *= np.float32(scale)
        return out[0] if one else out

    @staticmethod
    def as_rgb_list(images) -> list[np.ndarray]:
        """Arrays as H×W×3 uint8 RGB (grey, RGBA, 16-bit and float 0..1 arrays are converted)."""
        return [im if im.ndim == 3 and im.shape[-1] == 3 and im.dtype == np.uint8 else to_rgb_uint8(im, bgr=False)
                for im in images]

    def predict_batch(self, images, focal_px: float | None = None) -> np.ndarray:
        """RGB uint8 images of one size (B×H×W×3 array or list of H×W×3) → B×H×W float32 metres."""
        frames = self.as_rgb_list(images)
        if len({f.shape for f in frames}) != 1:
            raise DepthdaError("all images of a batch must have the same size")
        h, w = frames[0].shape[:2]
        working = self.run_prepared([self.prepare(f) for f in frames], h, w)
        return self.finish(working, h, w, focal_px)

    def predict_sequence(self, frames: Iterable[np.ndarray], focal_px: float | None = None,
                         smooth: bool = True,
                         temporal: TemporalSettings = TemporalSettings()) -> Iterator[np.ndarray]:
        """Depth (H×W float32 metres) for the frames of one video, in order, one at a time.

        With `smooth`, each frame's depth goes through the motion-compensated temporal filter of
        depthda.infer.temporal (with `temporal`'s settings; the default is what `depthda predict`
        applies to videos); without, every frame is predicted on its own.
        """
        temporal_filter = TemporalFilter(temporal) if smooth else None
        for frame in frames:
            frame = self.as_rgb_list([frame])[0]
            h, w = frame.shape[:2]
            hn, wn, _, _ = self.working_size(h, w)
            prepared = self.prepare(frame)
            working = self.run_prepared(prepared[None], h, w)[0]
            if temporal_filter is not None:
                working = temporal_filter(prepared[:hn, :wn], working)
            yield self.finish(working, h, w, focal_px)

