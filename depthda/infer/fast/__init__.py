"""CPU speed tricks for inference, kept out of the models and the pipeline.

Everything here changes how fast the networks run, never what they compute (up to float rounding).
Two entry points, one per scope:

    model = speed_up(model)     # a network: a rewritten copy (rewrites + Winograd residual blocks)
    prepare_cpu_process()       # the process: allocator and NNPACK set up for CPU inference

DepthPipeline.from_checkpoint(optimize=True) calls both (the second on CPU only), and
FrameParallel calls prepare_cpu_process() again once it has set its workers' thread count.
The modules behind them: rewrites (device-independent rewrites), winograd (NNPACK, the only user of
torch's private API), malloc (glibc's allocator). winograd and malloc are imported only when these
functions run, so importing the pipeline loads neither NNPACK's operators nor the C library.
"""

from __future__ import annotations

from torch import nn

from depthda.infer.fast.rewrites import rewrite_for_inference


def speed_up(model: nn.Module, *, winograd: bool = True) -> nn.Module:
    """A copy of an eval-mode network rewritten for inference (depthda.infer.fast.rewrites), with
    the style generator's residual blocks on NNPACK's Winograd kernel when run on one CPU thread
    (`winograd=False` leaves them to oneDNN: the bench's ablation)."""
    model = rewrite_for_inference(model)
    if winograd:
        # After the layout change: Winograd weights stay NCHW, the layout NNPACK reads.
        from depthda.infer.fast.winograd import winograd_residual_blocks

        winograd_residual_blocks(model)
    return model


def prepare_cpu_process() -> None:
    """Process-wide settings for running the networks on this machine's CPU; idempotent.

    * glibc keeps freed activations in the process (depthda.infer.fast.malloc), so the next
      frame's tensors do not fault their pages in again;
    * if this thread runs torch on one thread, NNPACK's thread pool is made now, with one thread
      (depthda.infer.fast.winograd.warm_up_winograd): call it after setting torch's thread count
      and before starting single-thread worker threads.
    """
    from depthda.infer.fast.malloc import retain_freed_memory
    from depthda.infer.fast.winograd import warm_up_winograd

    retain_freed_memory()
    warm_up_winograd()


__all__ = ["prepare_cpu_process", "speed_up"]
