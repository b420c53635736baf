"""torchrun / DistributedDataParallel plumbing; a no-op in a single process."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from depthda.utils.distributed import DistInfo


def init_distributed(device_name: str | None) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        from depthda.utils.device import pick_device
        return DistInfo(), pick_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in (None, "auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local), device


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    if not info.enabled:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def average_gradients(model: nn.Module, info: DistInfo) -> None:
    """Data-parallel gradient averaging by hand, for networks DDP cannot wrap.

    The WGAN-GP critic needs a double backward (the gradient penalty), which DDP's reducer does
    not support; averaging its gradients after backward is what DDP would have done.
    """
    if not info.enabled:
        return

    def average(flat: torch.Tensor) -> None:
        dist.all_reduce(flat)
        flat /= info.world_size

    _coalesced([p.grad for p in model.parameters() if p.grad is not None], average)


@torch.no_grad()
def broadcast_from_main(model: nn.Module, info: DistInfo, buffers_only: bool = False) -> None:
    """Give every rank rank 0's parameters and buffers (or its buffers only).

    What DDP does when it wraps a network, for every network: those it cannot wrap (the critic)
    are otherwise initialised differently on each rank. After a step, buffers such as batch-norm
    running statistics have been updated from each rank's own batch; DDP overwrites them with rank
    0's at the next forward, and doing it at once keeps every rank's state, and the moving average
    of it, identical to rank 0's, which is what a checkpoint saves and a resume loads everywhere.
    """
    if not info.enabled:
        return
    tensors = [*([] if buffers_only else model.parameters()), *model.buffers()]
    _coalesced(tensors, lambda flat: dist.broadcast(flat, src=0))


def _coalesced(tensors: list[torch.Tensor], collective) -> None:
    """Run `collective` in place on one flat tensor per dtype and copy the result back into
    `tensors`: one message per dtype instead of one per tensor."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.flatten() for t in group])
        collective(flat)
        offset = 0
        for t in group:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n


def gather_to_main(obj, info: DistInfo) -> list | None:
    """Every rank's `obj` as a list by rank on rank 0, None on the others; [obj] in one process."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()

