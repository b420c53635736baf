"""How much arithmetic the networks do per frame, and how much this machine can do per second."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def peak_matmul_flops(n: int = 1024, repeats: int = 20, threads: int | None = None) -> dict[str, float]:
    """Best fp32 FLOP/s of an n×n×n matrix product on `threads` threads (default: torch's count),
    through MKL (torch.mm), oneDNN (the same product as a 1×1 convolution, the library torch's
    convolutions use; MKL picks slower code paths on some non-Intel CPUs) and ONNX Runtime's MLAS
    (a MatMul graph). "peak" is the largest. Many short products, best kept: on a shared core a
    long one is rarely left to run uninterrupted."""
    saved = torch.get_num_threads()
    threads = threads or saved
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        x = torch.randn(1, n, 32, n // 32).contiguous(memory_format=torch.channels_last)
        w = torch.randn(n, n, 1, 1)
        out = {"mkl_mm": _best_flops(lambda: torch.mm(a, b), n, repeats),
               "onednn_conv1x1": _best_flops(lambda: F.conv2d(x, w), n, repeats)}
    finally:
        torch.set_num_threads(saved)
    session, feeds = _ort_matmul(n, threads)
    out["onnxruntime_matmul"] = _best_flops(lambda: session.run(None, feeds), n, repeats)
    out["peak"] = max(out.values())
    return out


def _best_flops(fn, n: int, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def _ort_matmul(n: int, threads: int):
    """An ONNX Runtime session of one n×n×n MatMul on `threads` threads, and its inputs."""
    import onnxruntime
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in ("a", "b")]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "matmul", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # opset 17's IR version: readable by every onnxruntime the floor admits
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    return session, {k: rng.standard_normal((n, n), dtype=np.float32) for k in ("a", "b")}


def count_flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())
