"""`depthda bench`: the inference pipeline against a naive frame-by-frame loop, measured in one run.

All runs see the same frames at the same working resolution in one process, so their ratios
hold even on a machine shared with other jobs (absolute numbers do not): the naive loop, the
pipeline on its default engine (ONNX Runtime on a CPU) without and with the temporal filter, and
the pipeline on the other engine.

    naive.py         the baseline loop, frame by frame as the paper's public inference script works
    pipeline_run.py  depthda predict's video path, with the networks' busy time per stage
    ablation.py      the model stage alone per engine and thread count, as a share of the fp32 peak
    flops.py         the networks' FLOPs per frame and this machine's peak matmul FLOP/s
    run.py           run_bench: warm-up, interleaved rounds (best kept), agreement, the result dict
                     (with the engines' versions)
    report.py        format_result: the result as the lines `depthda bench` prints
"""
