"""Training machinery shared by both stages.

engine.Trainer owns everything a stage does not care about (devices, torchrun/DDP, data order,
mixed precision, checkpoints and exact resume, TensorBoard, progress, validation bookkeeping);
stage1.DepthTask and stage2.StyleTask own their networks, losses and optimisers.
"""
