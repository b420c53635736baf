"""Training: the depth task (the paper's stage 1) and the style task (stage 2).

engine.Trainer owns everything a task does not care about (devices, torchrun/DDP, data order,
mixed precision, checkpoints and exact resume, TensorBoard, progress, validation bookkeeping);
depth_task.DepthTask and style_task.StyleTask own their networks and optimisers, and
losses.py holds every loss they train with. config.py holds the settings (and the CLI's help).

Code vs paper (Atapour-Abarghouei & Breckon 2018; CycleGAN, Zhu et al. 2017):

    paper                          code
    stage 1 (depth on synthetic)   DepthTask, DepthConfig, `depthda train-stage1`
    stage 2 (style transfer)       StyleTask, StyleConfig, `depthda train-stage2`
    generator G (U-Net)            DepthTask.generator
    discriminator D                DepthTask.critic (a WGAN-GP critic: it scores, not classifies)
    λ of λ·L1 + (1 − λ)·adv        DepthConfig.l1_weight
    n_critic, gradient penalty λ   DepthConfig.critic_steps, gp_weight
    domains                        A = real frames, B = synthetic frames
    G_AB, G_BA (CycleGAN: G, F)    StyleTask.g_ab (exported), g_ba
    D_A, D_B (CycleGAN: D_X, D_Y)  StyleTask.d_a (judges real frames), d_b (judges synthetic ones)
    λ_cycle, λ_identity            StyleConfig.cycle_weight, identity_weight

Here d_a and d_b are named after the domain they judge, as the CycleGAN paper's D_X judges X
(pytorch-CycleGAN-and-pix2pix's code names them after the generator they train against: its netD_A
judges domain B). Network attributes are lower case; `<name>_ddp` (e.g. `g_ab_ddp`) is what a
training step calls: the network's DistributedDataParallel wrapper under torchrun, the network
itself in one process. Task.name ("stage1", "stage2") keeps the paper's label: the progress bar
shows it and checkpoints record it.
"""
