"""`depthda bench`: the inference pipeline against a naive frame-by-frame loop, measured in one run."""
