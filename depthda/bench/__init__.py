"""`depthda bench`: the inference pipeline against a naive frame-by-frame loop, measured in one run.

Both runs see the same frames at the same working resolution in one process, so their ratio
holds even on a machine shared with other jobs (absolute numbers do not). Both share that
process's settings, including the allocator's (depthda.infer.fast.prepare_cpu_process): it speeds
the naive loop up more than the pipeline, and a plain script would not have it.

    naive.py         the baseline loop, frame by frame as the paper's public inference script works
    pipeline_run.py  depthda predict's video path, with the networks' busy time per stage
    ablation.py      the model stage under each inference rewrite, batch size and thread count
    flops.py         the networks' FLOPs per frame and this machine's peak matmul FLOP/s
    run.py           run_bench: warm-up, interleaved rounds (best kept), agreement, the result dict
    report.py        format_result: the result as the lines `depthda bench` prints
"""
