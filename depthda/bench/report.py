"""The bench's result dict as the lines `depthda bench` prints."""

from __future__ import annotations


def format_result(r: dict) -> str:
    v = r["versions"]
    lines = [f"{r['frames']} frames {r['input_size'][1]}x{r['input_size'][0]} → working {r['working_size'][1]}x"
             f"{r['working_size'][0]} (padded {r['padded_size'][1]}x{r['padded_size'][0]}), batch {r['batch_size']}, "
             f"{r['model_workers']} model worker(s) × {r['threads_per_worker']} thread(s) "
             f"(naive: {r['naive_threads']} threads), {r['cpu_count']} CPUs ({r['cpu']}), load average "
             f"{r['load_average'][0]:.2f}; onnxruntime {v['onnxruntime']}, torch {v['torch']}",
             f"pipeline ({r['engine']}) {r['fps']:.2f} fps   naive {r['naive_fps']:.2f} fps   speedup {r['speedup']:.2f}x",
             f"pipeline ({r['engine']}) + temporal filter (predict's default for video) {r['fps_smoothed']:.2f} fps   "
             f"speedup {r['speedup_smoothed']:.2f}x   (the filter costs {r['temporal_filter_ms_per_frame']:.1f} ms/frame of "
             f"wall time, {r['temporal_filter_busy_ms_per_frame']:.1f} ms/frame of its own work)",
             "per engine (pipeline without the filter; networks: ms per frame on one worker, share of the fp32 "
             f"matmul peak at {r['threads_per_worker']} thread(s); max |Δ| against the naive torch loop):"]
    for name, e in r["engines"].items():
        lines.append(f"  {name:12s} {e['fps']:6.2f} fps  speedup {e['speedup']:.2f}x  networks "
                     f"{e['networks_ms_per_frame']:.1f} ms/frame, {e['networks_fraction_of_peak'] * 100:.1f}% of peak  "
                     f"max |Δ| {e['max_abs_depth_diff_m']:.3g} m")
    lines.append("stage ms/frame (busy time; pipeline stages overlap):")
    for name, stages in r["stage_ms_per_frame"].items():
        lines.append(f"  {name:22s}" + "  ".join(f"{k} {t:.1f}" for k, t in stages.items()))
    f = r["flops_per_frame"]
    peaks = ", ".join(f"{t} thread(s) {p / 1e9:.1f}" for t, p in r["peak_matmul_flops_by_threads"].items())
    lines.append(f"FLOPs/frame: style {f['style'] / 1e9:.2f} G, depth {f['depth'] / 1e9:.2f} G; peak fp32 matmul "
                 f"GFLOP/s: {peaks}; the model stage reaches {(r['model_stage_fraction_of_peak'] or 0) * 100:.1f}% "
                 f"of the {r['cpu_count']}-thread peak")
    for row in r.get("model_ablation", []):
        share = f"{row['fraction_of_peak'] * 100:5.1f}% of peak" if row["fraction_of_peak"] is not None else ""
        lines.append(f"  model {row['model_ms_per_frame']:8.1f} ms/frame  {share}  {row['variant']}")
    return "\n".join(lines)
