import math

import numpy as np
import pytest

from depthda.eval.metrics import METRIC_NAMES, compute_depth_metrics, mean_metrics


def test_metrics_match_hand_computed_values():
    gt = np.array([10.0, 20.0, 40.0])
    pred = np.array([12.0, 20.0, 20.0])
    m = compute_depth_metrics(gt, pred)
    # |diff|/gt = 0.2, 0, 0.5 ; diff^2/gt = 0.4, 0, 10 ; diff^2 = 4, 0, 400
    assert m["abs_rel"] == pytest.approx((0.2 + 0 + 0.5) / 3)
    assert m["sq_rel"] == pytest.approx((0.4 + 0 + 10) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(404 / 3))
    assert m["rmse_log"] == pytest.approx(math.sqrt((math.log(10 / 12) ** 2 + 0 + math.log(2) ** 2) / 3))
    # ratios 1.2, 1.0, 2.0: below 1.25 two of three; below 1.5625 two; below 1.953125 two
    assert m["a1"] == pytest.approx(2 / 3)
    assert m["a2"] == pytest.approx(2 / 3)
    assert m["a3"] == pytest.approx(2 / 3)
    assert set(m) == set(METRIC_NAMES)


def test_perfect_prediction():
    gt = np.linspace(1, 80, 50)
    m = compute_depth_metrics(gt, gt.copy())
    assert m["abs_rel"] == 0 and m["rmse"] == 0 and m["a1"] == 1


def test_mean_is_per_image_not_pooled():
    small = compute_depth_metrics(np.array([10.0]), np.array([15.0]))  # abs_rel 0.5, one pixel
    large = compute_depth_metrics(np.full(99, 10.0), np.full(99, 10.0))  # abs_rel 0, 99 pixels
    assert mean_metrics([small, large])["abs_rel"] == pytest.approx(0.25)


def test_empty_input_rejected():
    with pytest.raises(ValueError):
        compute_depth_metrics(np.array([]), np.array([]))
