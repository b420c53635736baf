"""Evaluation: the standard depth metrics under the protocols of published KITTI tables."""
