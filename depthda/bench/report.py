"""The bench's result dict as the lines `depthda bench` prints."""

from __future__ import annotations


def format_result(r: dict) -> str:
    lines = [f"{r['frames']} frames {r['input_size'][1]}x{r['input_size'][0]} → working {r['working_size'][1]}x"
             f"{r['working_size'][0]} (padded {r['padded_size'][1]}x{r['padded_size'][0]}), batch {r['batch_size']}, "
             f"{r['model_workers']} model worker(s) × {r['threads_per_worker']} thread(s) "
             f"(naive: {r['naive_threads']} threads), {r['cpu_count']} CPUs",
             f"pipeline {r['fps']:.2f} fps   naive {r['naive_fps']:.2f} fps   speedup {r['speedup']:.2f}x",
             f"pipeline + temporal filter (predict's default for video) {r['fps_smoothed']:.2f} fps   "
             f"speedup {r['speedup_smoothed']:.2f}x",
             "stage ms/frame (busy time; pipeline stages overlap):"]
    for name in ("naive", "pipeline", "pipeline_smoothed"):
        lines.append(f"  {name:18s}" + "  ".join(f"{k} {v:.1f}" for k, v in r["stage_ms_per_frame"][name].items()))
    f = r["flops_per_frame"]
    lines.append(f"FLOPs/frame: style {f['style'] / 1e9:.2f} G, depth {f['depth'] / 1e9:.2f} G; peak fp32 matmul "
                 f"{r['peak_matmul_flops'] / 1e9:.1f} GFLOP/s; model stage reaches "
                 f"{(r['model_stage_fraction_of_peak'] or 0) * 100:.1f}% of it")
    lines.append(f"max |pipeline − naive| depth: {r['max_abs_depth_diff_m']:.3g} m (relative {r['max_rel_depth_diff']:.2g})")
    for row in r.get("model_ablation", []):
        lines.append(f"  model {row['model_ms_per_frame']:8.1f} ms/frame  {row['variant']}")
    return "\n".join(lines)
