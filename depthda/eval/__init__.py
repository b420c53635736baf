"""Evaluation: the standard depth metrics under the protocols of published KITTI tables.

metrics (the numbers), protocol (crop, depth range, scaling and the loop over frames), kitti (the
split, its ground truth and what `depthda eval kitti` scores), baselines (predictors without
learning), plots (diagnostic figures); video scores the temporal consistency of depth video.
"""
