"""Render a `Scene` by ray casting in torch: RGB plus exact depth.

Each pixel's ray is cast through its centre (see raycast.py); its hit parameter t is the depth
(camera-frame z in metres) with no rounding beyond float32. Sky pixels, and anything farther than
SKY_DEPTH_M, get SKY_DEPTH_M = 655.35 m, the largest depth SYNTHIA's 16-bit centimetre PNGs can
hold (SYNTHIA also gives sky a large depth rather than 0); readers cap depth at 80 m anyway.

The picture is lit here: sun with shadows, sky light blocked by what stands above, light through
and behind leaves, sky reflections on glass and paint, haze; then developed like a camera would
(camera_response.py). What is hit comes from raycast.py, what it looks like from appearance.py.
"""

from __future__ import annotations

import numpy as np
import torch

from depthda.data.synthia import MAX_ENCODABLE_M
from depthda.synth.appearance import Appearance
from depthda.synth.camera import Camera
from depthda.synth.camera_response import develop
from depthda.synth.raycast import Geometry, safe_inv
from depthda.synth.scene import Mat, Scene, random_scene

SKY_DEPTH_M = MAX_ENCODABLE_M


def render_scene(seed: int, size: tuple[int, int] = (192, 640), camera: Camera | None = None,
                 device: str | torch.device = "cpu", profile: str = "street") -> tuple[np.ndarray, np.ndarray]:
    """Render the random street of `seed`: (H×W×3 uint8 RGB, H×W float32 depth in metres).

    `camera` is the nominal rig; the scene jitters its height and angles (see Camera.jittered).
    `profile`: see depthda.synth.scene.random_scene.
    """
    return render(random_scene(seed, camera, profile=profile), size, device=device)


def render(scene: Scene, size: tuple[int, int] = (192, 640), camera: Camera | None = None,
           device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast `scene` seen by `camera` (default: scene.camera, used as is, without jitter)."""
    device = torch.device(device)
    threads = torch.get_num_threads()
    # Thousands of small ops: on CPU, OpenMP hand-offs cost more than a second thread gains, and
    # collapse when another process shares the cores. Parallelise over images instead.
    if device.type == "cpu" and threads > 1:
        torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return _render(scene, size, camera or scene.camera, device)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _render(scene: Scene, size, cam: Camera, dev: torch.device) -> tuple[np.ndarray, np.ndarray]:
    geo = Geometry(scene, size, cam, dev)
    sun_dir = np.asarray(scene.light.sun_dir, dtype=np.float64)
    sun_dir = sun_dir / max(np.linalg.norm(sun_dir), 1e-9)
    look = Appearance(scene, geo, sun_dir)
    H, W = geo.H, geo.W
    L = scene.light
    d = geo.rays()
    inv = safe_inv(d)
    t, pid = geo.intersect(d, inv)
    hit = pid >= 0
    depth = torch.where(hit, t, torch.full_like(t, SKY_DEPTH_M)).clamp(max=SKY_DEPTH_M)

    o = torch.tensor(geo.origin, dtype=torch.float32, device=dev).view(3, 1, 1)
    t_safe = torch.where(hit, t, torch.zeros_like(t))
    P = o + d * t_safe  # 3×H×W
    flat = hit.view(-1).nonzero().squeeze(1)
    Pf = P.view(3, -1)[:, flat].T.contiguous()
    idf = pid.view(-1)[flat]
    n, face = geo.normals(Pf, idf)
    length = (d * d).sum(0).sqrt()  # |d| >= 1 since its camera z is 1
    dist = (t_safe * length).view(-1)[flat]
    dirs = (d / length).view(3, -1).T
    base, gloss = look.albedo(Pf, n, face, idf, dist)

    # --- shadows and sky visibility (shadow rays leave along the true surface normal)
    sun = torch.tensor(sun_dir, dtype=torch.float32, device=dev)
    n_img = torch.zeros(3, H * W, device=dev)
    n_img[:, flat] = n.T
    eps = 2e-3 + 2e-4 * t_safe
    P_off = P + n_img.view(3, H, W) * eps
    need = torch.zeros(H * W, dtype=torch.bool, device=dev)
    need[flat[(n * sun).sum(1) > 0]] = True
    foliage = look.mat[idf] == Mat.FOLIAGE
    if foliage.any():
        n[foliage] = look.foliage_normals(Pf[foliage], n[foliage])
    ndl = (n * sun).sum(1).clamp_min(0)
    # leaf gaps: noise in the plane across the sun's rays, so dapples fall as projected blobs
    e1 = np.cross(sun_dir, [0.0, 1.0, 0.0] if abs(sun_dir[1]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(sun_dir, e1)
    pu = sum(float(e1[k]) * P[k] for k in range(3))
    pv = sum(float(e2[k]) * P[k] for k in range(3))
    leaf_light = (0.45 * look.tex(pu, pv, 2.0) - 0.1).clamp(0, 0.8)
    shadow = geo.occlusion(P_off, need.view(H, W), sun_dir, lambda p: p.material != Mat.TIRE,
                           lambda p: leaf_light if p.material == Mat.FOLIAGE else 0.0).view(-1)[flat]
    needs_up = torch.zeros(H * W, dtype=torch.bool, device=dev)
    needs_up[flat] = True
    # sky light blocked by what stands above: dark ground under cars, awnings and balconies
    sky_vis = geo.occlusion(P_off, needs_up.view(H, W), (0.0, 1.0, 0.0),
                            lambda p: p.material in (Mat.CAR_BODY, Mat.CONCRETE, Mat.CLOTH) and p.lo[1] > 0.05,
                            lambda p: 0.3).view(-1)[flat]

    sun_rgb = torch.tensor(L.sun_rgb, dtype=torch.float32, device=dev)
    zen = torch.tensor(L.sky_zenith, dtype=torch.float32, device=dev)
    hor = torch.tensor(L.sky_horizon, dtype=torch.float32, device=dev)
    sky_irr = (zen * 0.4 + hor * 0.6) * L.ambient
    asphalt = torch.tensor(scene.ground.asphalt, dtype=torch.float32, device=dev)
    ground_bounce = asphalt * sun_rgb * max(sun_dir[1], 0) * 1.5
    up = n[:, 1:2]
    ambient = (sky_irr * (0.55 + 0.45 * up) + ground_bounce * (0.5 - 0.5 * up)) * sky_vis[:, None]
    direct = sun_rgb * (ndl * shadow)[:, None]
    if foliage.any():  # sunlight shining through leaves from behind
        back = (-(n[foliage] * sun).sum(1)).clamp_min(0) * shadow[foliage]
        direct[foliage] += sun_rgb * (0.25 * back)[:, None]
    col = base * (ambient + direct)
    # mirror-like surfaces (glass, paint) reflect the sky with Fresnel weighting
    if bool((gloss > 0).any()):
        dv = dirs[flat]
        cosv = -(dv * n).sum(1).clamp(-1, 1)
        refl = dv + 2 * cosv[:, None] * n
        gi = (gloss > 0).nonzero().squeeze(1)
        env = look.sky(torch.nn.functional.normalize(refl[gi], dim=1))
        env = torch.where(refl[gi, 1:2] < 0, hor * 0.25, env)
        env = env * (0.6 + 0.4 * look.tex(Pf[gi, 0] + Pf[gi, 2], Pf[gi, 1], 0.5).clamp(-1, 1))[:, None]
        fres = gloss[gi] + (1 - gloss[gi]) * (1 - cosv[gi].abs()) ** 5 * 0.5
        col[gi] = col[gi] * (1 - fres[:, None]) + env * fres[:, None]

    fog = 1 - torch.exp(-dist / L.fog_m)
    fog_col = hor * (0.9 * L.ambient ** 0.5)
    col = col * (1 - fog[:, None]) + fog_col * fog[:, None]

    img = torch.empty(H * W, 3, device=dev)
    sky_px = (~hit).view(-1).nonzero().squeeze(1)
    if sky_px.numel():
        img[sky_px] = look.sky(dirs[sky_px])
    img[flat] = col
    img = img.T.reshape(3, H, W)
    return develop(img, scene.post, scene.noise_seed), depth.cpu().numpy().astype(np.float32)
