"""Bounds on a network constructor's arguments: each architecture's class declares its own
(ARG_BOUNDS, beside the constructor), and depthda/models/validate.py checks a config.json's
arch_args against them.

A bound is (int, lowest, highest), (bool,), or a tuple of the allowed values. The ranges hold every
published and preset configuration with room to spare, and nothing absurd.
"""

CHANNELS = (int, 1, 16)
FILTERS = (int, 1, 1024)
