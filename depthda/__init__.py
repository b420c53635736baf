"""depthda: monocular depth from synthetic data with domain adaptation via style transfer."""

__version__ = "0.1.0"
