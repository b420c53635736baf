"""Inference: a real frame → style generator → depth network → metres, for images, folders and video.

    from depthda.infer import DepthPipeline
    depth_m = DepthPipeline.from_checkpoint()(rgb_uint8_hxwx3)
"""

from depthda.infer.pipeline import DepthPipeline

__all__ = ["DepthPipeline"]
