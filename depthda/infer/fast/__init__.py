"""CPU speed tricks for inference, kept out of the models and the pipeline.

Everything here changes how fast the networks run, never what they compute (up to float rounding).
"""
