"""Vectorised ray casting of a `Scene` in torch: RGB plus exact depth.

Every pixel casts one ray through its centre (u + 0.5, v + 0.5) with the camera-frame direction
((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1). Because that direction has unit z, the ray
parameter t at the first analytic hit *is* the depth (camera-frame z in metres) with no rounding
beyond float32. Sky pixels, and anything farther than SKY_DEPTH_M, get SKY_DEPTH_M = 655.35 m,
the largest depth SYNTHIA's 16-bit centimetre PNGs can hold (SYNTHIA also gives sky a large
depth rather than 0); readers cap depth at 80 m anyway.

Speed comes from culling in screen space: each primitive is only tested against the pixels
inside the projection of its bounding box (and, for sun shadows, of the prism its shadow can
fall into), so the Python loop over primitives works on small tensor slices.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from depthda.data.synthia import MAX_ENCODABLE_M
from depthda.synth.camera import Camera
from depthda.synth.scene import Kind, Mat, Scene, N_PARAMS, random_scene, roof_planes

SKY_DEPTH_M = MAX_ENCODABLE_M
_NOISE_SIZE = 256
_NOISE_CACHE: dict[str, torch.Tensor] = {}
# the 12 edges of a box whose 8 corners are numbered by bits (x: 1, y: 2, z: 4)
_EDGES = np.array([(a, a | bit) for bit in (1, 2, 4) for a in range(8) if not a & bit])


def render_scene(seed: int, size: tuple[int, int] = (192, 640), camera: Camera | None = None,
                 device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Render the random street of `seed`: (H×W×3 uint8 RGB, H×W float32 depth in metres).

    `camera` is the nominal rig; the scene jitters its height and angles (see Camera.jittered).
    """
    return render(random_scene(seed, camera), size, device=device)


def render(scene: Scene, size: tuple[int, int] = (192, 640), camera: Camera | None = None,
           device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast `scene` seen by `camera` (default: scene.camera, used as is, without jitter)."""
    device = torch.device(device)
    threads = torch.get_num_threads()
    # Thousands of small ops: on CPU, OpenMP hand-offs cost more than a second thread gains, and
    # collapse (5x slower) when another process shares the cores. Parallelise over images instead.
    if device.type == "cpu" and threads > 1:
        torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return _Renderer(scene, size, camera or scene.camera, device).run()
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def screen_rects(lo: np.ndarray, hi: np.ndarray, cam: Camera, height: int, width: int) -> np.ndarray:
    """Conservative pixel rectangles (v0, v1, u0, u1; end-exclusive) covering each box's projection.

    Box edges are clipped at a near plane first, so boxes reaching behind the camera (sidewalks,
    buildings beside the car) get a correct bound instead of a sign-flipped one.
    """
    m = lo.shape[0]
    if m == 0:
        return np.zeros((0, 4), dtype=np.int64)
    fx, fy, cx, cy = cam.intrinsics(height, width)
    bits = np.arange(8)
    corners = np.where(np.stack([(bits >> k) & 1 for k in range(3)], axis=1)[None].astype(bool), hi[:, None], lo[:, None])
    pc = (corners - cam.origin()) @ cam.rotation()  # world -> camera: R^T (p - o), row-vector form
    near = 1e-2
    a, b = pc[:, _EDGES[:, 0]], pc[:, _EDGES[:, 1]]
    za, zb = a[..., 2], b[..., 2]
    crosses = (za - near) * (zb - near) < 0
    t = np.where(crosses, (near - za) / np.where(crosses, zb - za, 1.0), 0.0)
    inter = a + t[..., None] * (b - a)
    pts = np.concatenate([pc, inter], axis=1)
    ok = np.concatenate([pc[..., 2] > near, crosses], axis=1)
    z = np.where(ok, pts[..., 2], 1.0)
    u = np.where(ok, fx * pts[..., 0] / z + cx, np.nan)
    v = np.where(ok, fy * pts[..., 1] / z + cy, np.nan)
    rects = np.zeros((m, 4), dtype=np.int64)
    vis = ok.any(axis=1)
    with np.errstate(all="ignore"):
        umin, umax = np.nanmin(u[vis], axis=1), np.nanmax(u[vis], axis=1)
        vmin, vmax = np.nanmin(v[vis], axis=1), np.nanmax(v[vis], axis=1)
    # pixel k's centre is at k + 0.5; one pixel of margin absorbs rounding
    rects[vis, 0] = np.clip(np.floor(vmin) - 1, 0, height)
    rects[vis, 1] = np.clip(np.floor(vmax) + 2, 0, height)
    rects[vis, 2] = np.clip(np.floor(umin) - 1, 0, width)
    rects[vis, 3] = np.clip(np.floor(umax) + 2, 0, width)
    return rects


def _noise_tile(device: torch.device) -> torch.Tensor:
    """A fixed periodic fractal-noise texture (zero mean, unit std) shared by all scenes."""
    key = str(device)
    if key not in _NOISE_CACHE:
        g = torch.Generator().manual_seed(20180618)
        n = _NOISE_SIZE
        spec = torch.randn(n, n, dtype=torch.complex64, generator=g)
        f = torch.fft.fftfreq(n)
        r = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2).clamp_min(1.0 / n)
        # fractal but not too red: lookups at any scale must vary within a few texels
        amp = r ** -0.9 * (r > 3.0 / n)
        tile = torch.fft.ifft2(spec * amp).real
        tile = (tile - tile.mean()) / tile.std()
        tile = torch.nn.functional.pad(tile[None, None], (0, 1, 0, 1), mode="circular")
        _NOISE_CACHE[key] = tile.to(device).contiguous()
    return _NOISE_CACHE[key]


class _Renderer:
    def __init__(self, scene: Scene, size, cam: Camera, device: torch.device):
        self.scene, self.cam, self.dev = scene, cam, device
        self.H, self.W = int(size[0]), int(size[1])
        prims = scene.prims
        self.m = len(prims)
        f32 = dict(dtype=torch.float32, device=device)
        lo = np.array([p.lo for p in prims], dtype=np.float64).reshape(-1, 3)
        hi = np.array([p.hi for p in prims], dtype=np.float64).reshape(-1, 3)
        self.lo_np, self.hi_np = lo, hi
        self.origin = cam.origin()
        # table row 0 is the ground plane; primitive i is row i + 1
        self.kind = torch.tensor([0] + [p.kind for p in prims], dtype=torch.int64, device=device)
        self.mat = torch.tensor([Mat.GROUND] + [p.material for p in prims], dtype=torch.int64, device=device)
        self.axis = torch.tensor([1] + [p.axis for p in prims], dtype=torch.int64, device=device)
        self.lo = torch.tensor(np.concatenate([np.zeros((1, 3)), lo]), **f32)
        self.hi = torch.tensor(np.concatenate([np.zeros((1, 3)), hi]), **f32)
        self.color = torch.tensor([scene.ground.asphalt] + [p.color for p in prims], **f32)
        params = np.zeros((self.m + 1, N_PARAMS))
        for i, p in enumerate(prims):
            params[i + 1, :len(p.params)] = p.params[:N_PARAMS]
        self.params = torch.tensor(params, **f32)
        # per-primitive constants for the intersection loop, relative to the camera origin
        o = self.origin
        self.lo_o = torch.tensor(lo - o, **f32).view(-1, 3, 1, 1)
        self.hi_o = torch.tensor(hi - o, **f32).view(-1, 3, 1, 1)
        self.lo_w = torch.tensor(lo, **f32).view(-1, 3, 1, 1)
        self.hi_w = torch.tensor(hi, **f32).view(-1, 3, 1, 1)
        self.centre_w = (self.lo_w + self.hi_w) / 2
        self.radius = ((self.hi_w - self.lo_w) / 2).clamp_min(1e-6)
        self.noise = _noise_tile(device)
        self.origin_t = torch.tensor(self.origin, **f32).view(3, 1, 1)
        # gable roofs: per primitive two planes n . p <= c; rows for other kinds never match
        planes = np.zeros((self.m + 1, 2, 4))
        for i, p in enumerate(prims):
            if p.kind == Kind.ROOF:
                for j, (nv, c) in enumerate(roof_planes(lo[i], hi[i], p.axis)):
                    planes[i + 1, j, :3], planes[i + 1, j, 3] = nv, c
        self.planes = torch.tensor(planes, **f32)
        sun = np.asarray(scene.light.sun_dir, dtype=np.float64)
        self.sun = sun / max(np.linalg.norm(sun), 1e-9)

    # ------------------------------------------------------------------ geometry
    def rays(self):
        H, W = self.H, self.W
        fx, fy, cx, cy = self.cam.intrinsics(H, W)
        R = torch.tensor(self.cam.rotation(), dtype=torch.float32, device=self.dev)
        u = (torch.arange(W, dtype=torch.float32, device=self.dev) + 0.5 - cx) / fx
        v = (torch.arange(H, dtype=torch.float32, device=self.dev) + 0.5 - cy) / fy
        dc = torch.stack([u.expand(H, W), v[:, None].expand(H, W), torch.ones(H, W, device=self.dev)])
        d = torch.einsum("ij,jhw->ihw", R, dc).contiguous()
        return d

    @staticmethod
    def _safe_inv(d: torch.Tensor) -> torch.Tensor:
        tiny = 1e-12
        return 1.0 / torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)

    def _hit_box(self, i, d, inv):
        t1 = self.lo_o[i] * inv
        t2 = self.hi_o[i] * inv
        tmin = torch.minimum(t1, t2).amax(0)
        tmax = torch.maximum(t1, t2).amin(0)
        return torch.where((tmin <= tmax) & (tmin > 0), tmin, torch.full_like(tmin, math.inf))

    def _hit_roof(self, i, d, inv):
        t1 = self.lo_o[i] * inv
        t2 = self.hi_o[i] * inv
        enter = torch.minimum(t1, t2).amax(0)
        leave = torch.maximum(t1, t2).amin(0)
        o = self.origin
        for nv, c in roof_planes(self.lo_np[i], self.hi_np[i], self.scene.prims[i].axis):
            q = 0 if nv[0] else 2
            den = nv[q] * d[q] + d[1]
            tp = float(c - nv @ o) / den
            enter = torch.where(den < 0, torch.maximum(enter, tp), enter)
            leave = torch.where(den > 0, torch.minimum(leave, tp), leave)
        return torch.where((enter <= leave) & (enter > 0), enter, torch.full_like(enter, math.inf))

    def _hit_ellipsoid(self, i, d, inv):
        r = self.radius[i]
        oc = (self.origin_t - self.centre_w[i]) / r  # constant per primitive
        dd = d / r
        a = (dd * dd).sum(0)
        b = 2 * (oc * dd).sum(0)
        c = (oc * oc).sum() - 1
        disc = b * b - 4 * a * c
        t = (-b - disc.clamp_min(0).sqrt()) / (2 * a)
        return torch.where((disc >= 0) & (t > 0), t, torch.full_like(t, math.inf))

    def _hit_cylinder(self, i, d, inv):
        ax = int(self.scene.prims[i].axis)
        j, k = [q for q in range(3) if q != ax]
        lo, hi = self.lo_np[i], self.hi_np[i]
        o = self.origin
        c = (lo + hi) / 2
        r = np.maximum((hi - lo) / 2, 1e-6)
        ojk = np.array([(o[j] - c[j]) / r[j], (o[k] - c[k]) / r[k]])
        dj, dk = d[j] / r[j], d[k] / r[k]
        a = dj * dj + dk * dk
        b = 2 * (ojk[0] * dj + ojk[1] * dk)
        cc = float(ojk @ ojk - 1)
        disc = b * b - 4 * a * cc
        t_side = (-b - disc.clamp_min(0).sqrt()) / (2 * a).clamp_min(1e-20)
        ya = o[ax] + t_side * d[ax]
        inf = torch.full_like(t_side, math.inf)
        t = torch.where((disc >= 0) & (t_side > 0) & (ya >= lo[ax]) & (ya <= hi[ax]), t_side, inf)
        # a ray from outside can only enter through the cap on its own side, and only from beyond it
        caps = [lo[ax]] if o[ax] < lo[ax] else [hi[ax]] if o[ax] > hi[ax] else []
        for plane in caps:
            tc = (plane - o[ax]) * inv[ax]
            pj = ojk[0] + tc * dj
            pk = ojk[1] + tc * dk
            ok = (tc > 0) & (pj * pj + pk * pk <= 1)
            t = torch.where(ok & (tc < t), tc, t)
        return t

    def intersect(self, d, inv):
        H, W = self.H, self.W
        o_y = self.origin[1]
        t_best = torch.where(d[1] < 0, -o_y * inv[1], torch.full_like(d[1], math.inf))
        pid = torch.where(torch.isfinite(t_best), 0, -1).to(torch.int64)
        rects = screen_rects(self.lo_np, self.hi_np, self.cam, H, W)
        hit_fn = {Kind.BOX: self._hit_box, Kind.ELLIPSOID: self._hit_ellipsoid, Kind.CYLINDER: self._hit_cylinder,
                  Kind.ROOF: self._hit_roof}
        for i, p in enumerate(self.scene.prims):
            v0, v1, u0, u1 = rects[i]
            if v1 <= v0 or u1 <= u0:
                continue
            sl = (slice(None), slice(v0, v1), slice(u0, u1))
            t = hit_fn[p.kind](i, d[sl], inv[sl])
            tb = t_best[v0:v1, u0:u1]
            closer = t < tb
            tb.copy_(torch.where(closer, t, tb))
            pb = pid[v0:v1, u0:u1]
            pb.copy_(torch.where(closer, i + 1, pb))
        return t_best, pid

    def occlusion(self, P, need, direction, use, weight_fn):
        """Per-pixel visibility (1 = open) towards `direction` from surface points P (3×H×W).

        Only primitives with use(p) occlude; a hit lowers visibility to weight_fn(p), a number or
        an H×W map (leafy crowns pass light through their gaps).
        """
        vis = torch.ones(self.H, self.W, device=self.dev)
        s = np.asarray(direction, dtype=np.float64)
        idx = [i for i, p in enumerate(self.scene.prims) if use(p)]
        if s[1] <= 1e-3 or not idx:
            return vis
        lo, hi = self.lo_np[idx], self.hi_np[idx]
        reach = hi[:, 1:2] / s[1]  # the shadow prism ends where it meets the ground
        lo_p = np.minimum(lo, lo - s * reach)
        hi_p = np.maximum(hi, hi - s * reach)
        lo_p[:, 1] = np.minimum(lo_p[:, 1], 0.0)
        rects = screen_rects(lo_p, hi_p, self.cam, self.H, self.W)
        s_t = torch.tensor(s, dtype=torch.float32, device=self.dev).view(3, 1, 1)
        inv = self._safe_inv(s_t)
        Q = P * inv  # slab distances become lo * inv - Q: one op per bound
        lo_inv, hi_inv = self.lo_w * inv, self.hi_w * inv
        for i, (v0, v1, u0, u1) in zip(idx, rects):
            if v1 <= v0 or u1 <= u0:
                continue
            p = self.scene.prims[i]
            if p.kind == Kind.ELLIPSOID:
                Ps = P[:, v0:v1, u0:u1]
                r = self.radius[i]
                oc = (Ps - self.centre_w[i]) / r
                dd = s_t / r
                a = (dd * dd).sum()
                b = 2 * (oc * dd).sum(0)
                c = (oc * oc).sum(0) - 1
                disc = b * b - 4 * a * c
                hit = (disc >= 0) & (disc.clamp_min(0).sqrt() > b)
            else:  # boxes and roofs; cylinders by their bounding box (poles and trunks are thin)
                Qs = Q[:, v0:v1, u0:u1]
                t1 = lo_inv[i] - Qs
                t2 = hi_inv[i] - Qs
                enter = torch.minimum(t1, t2).amax(0)
                leave = torch.maximum(t1, t2).amin(0)
                if p.kind == Kind.ROOF:
                    Ps = P[:, v0:v1, u0:u1]
                    for nv, c in roof_planes(self.lo_np[i], self.hi_np[i], p.axis):
                        den = float(nv @ s)
                        if abs(den) < 1e-9:
                            continue
                        q = 0 if nv[0] else 2
                        tp = (c - nv[q] * Ps[q] - Ps[1]) / den
                        enter = torch.maximum(enter, tp) if den < 0 else enter
                        leave = torch.minimum(leave, tp) if den > 0 else leave
                hit = (enter <= leave) & (leave > 0)
            w = weight_fn(p)
            vb = vis[v0:v1, u0:u1]
            hit &= need[v0:v1, u0:u1]
            if isinstance(w, torch.Tensor):
                vb.copy_(torch.where(hit, torch.minimum(vb, w[v0:v1, u0:u1]), vb))
            elif w == 0:
                vb.masked_fill_(hit, 0.0)
            else:
                vb.copy_(torch.where(hit, vb.clamp(max=w), vb))
        return vis

    def normals(self, P, pid):
        """World normals (N×3) of hit points P (N×3) of primitives pid (N,), plus the face code.

        Face code: 0/1/2 = box face across x/y/z, 9 = roof slope, 3 = curved (ellipsoid), 3 + axis
        = cylinder side, axis = cylinder cap.
        """
        kind = self.kind[pid]
        n = torch.zeros_like(P)
        n[:, 1] = 1.0
        face = torch.ones_like(pid)
        sel = ((kind == Kind.BOX) | (kind == Kind.ROOF)).nonzero().squeeze(1)
        if sel.numel():
            ps = pid[sel]
            Pb, lb, hb = P[sel], self.lo[ps], self.hi[ps]
            dist = torch.cat([(Pb - lb).abs(), (Pb - hb).abs()], dim=1)
            best, k = dist.min(1)
            nb = torch.zeros_like(Pb)
            nb.scatter_(1, (k % 3)[:, None], torch.where(k < 3, -1.0, 1.0)[:, None])
            fb = k % 3
            roof = (kind[sel] == Kind.ROOF).nonzero().squeeze(1)
            if roof.numel():  # a slope wins when the point lies on its plane more closely than on a face
                pl = self.planes[ps[roof]]  # K×2×4
                nrm = pl[..., :3].norm(dim=2).clamp_min(1e-9)
                pd = ((pl[..., :3] * Pb[roof, None]).sum(2) - pl[..., 3]).abs() / nrm
                pbest, j = pd.min(1)
                ar = torch.arange(len(j), device=self.dev)
                on_slope = pbest < best[roof]
                ns = pl[ar, j, :3] / nrm[ar, j, None]
                nb[roof] = torch.where(on_slope[:, None], ns, nb[roof])
                fb[roof] = torch.where(on_slope, 9, fb[roof])
            n[sel] = nb
            face[sel] = fb
        sel = (kind == Kind.ELLIPSOID).nonzero().squeeze(1)
        if sel.numel():
            ps = pid[sel]
            lo, hi = self.lo[ps], self.hi[ps]
            c = (lo + hi) / 2
            r = ((hi - lo) / 2).clamp_min(1e-6)
            n[sel] = torch.nn.functional.normalize((P[sel] - c) / r ** 2, dim=1)
            face[sel] = 3
        sel = (kind == Kind.CYLINDER).nonzero().squeeze(1)
        if sel.numel():
            ps = pid[sel]
            lo, hi = self.lo[ps], self.hi[ps]
            c = (lo + hi) / 2
            r = ((hi - lo) / 2).clamp_min(1e-6)
            ax = self.axis[ps]
            onehot = torch.nn.functional.one_hot(ax, 3).to(P.dtype)
            q = (P[sel] - c) / r
            radial = q * (1 - onehot)
            rho = (radial ** 2).sum(1)
            cap = rho < 0.98
            nc = torch.where(cap[:, None], onehot * torch.sign(q), radial / r)
            n[sel] = torch.nn.functional.normalize(nc, dim=1)
            face[sel] = torch.where(cap, ax, 3 + ax)
        return n, face

    # ------------------------------------------------------------------ appearance
    def tex(self, x, y, scale=1.0):
        """Bilinear lookup in the periodic noise tile at world coordinates (x, y) × scale texels/m."""
        off = self.scene.texture_offset
        n = _NOISE_SIZE
        # wrap into [0, n) and sample the tile padded by one wrapped texel: grid_sample does the rest
        gx = torch.remainder(x * scale + off[0], n) * (2.0 / n) - 1.0
        gy = torch.remainder(y * scale + off[1], n) * (2.0 / n) - 1.0
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).view(1, 1, -1, 2)
        out = torch.nn.functional.grid_sample(self.noise, grid, mode="bilinear", align_corners=True)
        return out.view(x.shape)

    def cell_rand(self, i, j):
        """A repeatable pseudo-random value in [0, 1) per integer cell (windows, slabs)."""
        h = torch.sin(i * 12.9898 + j * 78.233 + self.scene.noise_seed % 1000) * 43758.5453
        return h - torch.floor(h)

    def sky(self, d: torch.Tensor) -> torch.Tensor:
        """Sky radiance (K×3) towards unit directions d (K×3)."""
        L = self.scene.light
        dev = self.dev
        zen = torch.tensor(L.sky_zenith, dtype=torch.float32, device=dev)
        hor = torch.tensor(L.sky_horizon, dtype=torch.float32, device=dev)
        e = d[:, 1]
        w = e.clamp(0, 1).sqrt()[:, None]
        col = hor + (zen - hor) * w
        col = torch.where(e[:, None] < 0, hor * 0.75, col)
        sun = torch.tensor(self.sun, dtype=torch.float32, device=dev)
        sun_rgb = torch.tensor(L.sun_rgb, dtype=torch.float32, device=dev)
        cosang = (d * sun).sum(1)
        col = col + sun_rgb[None] * (0.06 * torch.exp((cosang - 1) * 12) + 0.25 * torch.exp((cosang - 1) * 300))[:, None]
        if L.clouds > 0:
            k = 1.0 / (e.clamp_min(0) + 0.08)
            cx, cz = d[:, 0] * k, d[:, 2] * k
            dens = self.tex(cx, cz, 6.0) * 0.7 + self.tex(cx, cz, 25.0) * 0.3
            thr = 1.2 - 2.4 * L.clouds
            cover = ((dens - thr) / 0.8).clamp(0, 1) * (e / 0.06).clamp(0, 1)
            shade = 0.75 + 0.25 * self.tex(cx + 3.1, cz, 12.0).clamp(-1, 1)
            cloud_col = (hor * 1.05 + sun_rgb * 0.12) * shade[:, None]
            col = col * (1 - cover[:, None]) + cloud_col * cover[:, None]
        return col

    def albedo(self, P, n, face, pid, dist):
        """Base colour (N×3) and mirror reflectance (N,) of every hit point."""
        N = P.shape[0]
        mat = self.mat[pid]
        base = self.color[pid].clone()
        gloss = torch.zeros(N, device=self.dev)
        par = self.params[pid]
        lo, hi = self.lo[pid], self.hi[pid]
        fine = torch.exp(-dist / 25.0)  # fade fine texture with distance: it only aliases there
        for m in torch.unique(mat).tolist():
            sel = (mat == m).nonzero().squeeze(1)
            args = (P[sel], n[sel], face[sel], par[sel], base[sel], lo[sel], hi[sel], fine[sel])
            fn = getattr(self, f"_mat_{Mat(m).name.lower()}")
            b, g = fn(*args)
            base[sel] = b
            if g is not None:
                gloss[sel] = g
        return base.clamp(0, 1), gloss

    def _mat_ground(self, P, n, face, par, col, lo, hi, fine):
        G = self.scene.ground
        x, z = P[:, 0], P[:, 2]
        ax = x.abs()
        cross = torch.zeros_like(x, dtype=torch.bool)
        for z0, z1 in G.cross_streets:
            cross |= (z >= z0) & (z <= z1)
        road = (ax < G.road_half_m) | cross
        asphalt = torch.tensor(G.asphalt, dtype=torch.float32, device=self.dev)
        grain = 0.15 * self.tex(x, z, 9.0) * fine + 0.06 * self.tex(x, z, 0.6) + 0.05 * self.tex(z, x, 0.1)
        patch = (self.tex(x + 40, z, 0.15) > 1.1).float() * 0.2
        a = asphalt * (1 + grain - patch)[:, None]
        # wheel tracks are polished darker, the lane middles collect lighter dust
        lane_pos = torch.remainder(ax, G.lane_w_m) / G.lane_w_m
        track = torch.exp(-((lane_pos - 0.25) / 0.06) ** 2) + torch.exp(-((lane_pos - 0.75) / 0.06) ** 2)
        a = a * (1 - 0.12 * track * (ax < G.lanes_per_dir * G.lane_w_m).float())[:, None]
        mark = torch.zeros_like(x, dtype=torch.bool)
        half_w = 0.075
        dash = torch.remainder(z + 2.0, 9.0) < 3.0
        if G.centre_line == 1:
            mark |= (ax < half_w) & dash
        elif G.centre_line == 2:
            mark |= ax < half_w
        for k in range(1, G.lanes_per_dir):
            mark |= ((ax - k * G.lane_w_m).abs() < half_w) & dash
        if G.edge_lines:
            mark |= (ax - (G.lanes_per_dir * G.lane_w_m + 0.2)).abs() < half_w
        mark &= ~cross
        wear = (0.8 + 0.2 * self.tex(x * 3, z, 4.0)).clamp(0.3, 1.0)
        marking = torch.tensor(G.marking, dtype=torch.float32, device=self.dev)
        a = torch.where(mark[:, None], marking * wear[:, None], a)
        lot = torch.tensor(G.lot, dtype=torch.float32, device=self.dev)
        if G.lot_kind == 0:
            lc = lot * (1 + 0.35 * self.tex(x, z, 5.0) * fine + 0.3 * self.tex(z, x, 0.4))[:, None]
        else:
            slab = (torch.remainder(x, 0.6) < 0.02) | (torch.remainder(z, 0.6) < 0.02)
            lc = lot * (1 + 0.1 * self.tex(x, z, 3.0) - 0.25 * slab.float() * fine)[:, None]
        return torch.where(road[:, None], a, lc), None

    def _mat_sidewalk(self, P, n, face, par, col, lo, hi, fine):
        x, z = P[:, 0], P[:, 2]
        G = self.scene.ground
        top = face == 1
        size = 0.5
        i, j = torch.floor(x / size), torch.floor(z / size)
        slab = 0.9 + 0.2 * self.cell_rand(i, j)
        joint = (torch.remainder(x, size) < 0.02) | (torch.remainder(z, size) < 0.02)
        t = slab * (1 - 0.3 * joint.float() * fine) + 0.1 * self.tex(x, z, 6.0) * fine
        curb_stone = (x.abs() - G.road_half_m) < 0.25
        c = col * t[:, None]
        c = torch.where((curb_stone | ~top)[:, None], col * 1.15 * (1 + 0.1 * self.tex(z, x, 5.0))[:, None], c)
        return c, None

    def _mat_facade(self, P, n, face, par, col, lo, hi, fine):
        y = P[:, 1]
        along_z = face == 0
        h = torch.where(along_z, P[:, 2], P[:, 0])
        h_lo = torch.where(along_z, lo[:, 2], lo[:, 0])
        h_hi = torch.where(along_z, hi[:, 2], hi[:, 0])
        floor_h, col_w, wf, hf, gstyle = par[:, 0], par[:, 1], par[:, 2], par[:, 3], par[:, 4]
        win_col, brick, phase = par[:, 5:8], par[:, 8], par[:, 9]
        fy = y / floor_h
        storey = torch.floor(fy)
        ry = fy - storey
        hx = (h - h_lo + phase) / col_w
        rx = hx - torch.floor(hx)
        in_x = (rx - 0.5).abs() < wf / 2
        in_y = (ry - 0.55).abs() < hf / 2
        frame_x = (rx - 0.5).abs() < wf / 2 + 0.06 / col_w
        frame_y = (ry - 0.55).abs() < hf / 2 + 0.06 / floor_h
        margin = ((h - h_lo) > 0.6) & ((h_hi - h) > 0.6) & (y < hi[:, 1] - 0.8)
        ground = storey < 1
        shop = ground & (gstyle == 1)
        upper_ok = ~ground | (gstyle == 0)
        win = in_x & in_y & margin & upper_ok
        frame = frame_x & frame_y & margin & upper_ok & ~win
        shop_win = shop & (ry > 0.12) & (ry < 0.85) & ((rx - 0.5).abs() < 0.45) & margin
        wall = col * (1 + 0.08 * self.tex(h, y, 4.0) * fine + 0.12 * self.tex(h, y * 0.15, 0.8))[:, None]
        # weathering: darker streaks below ledges and near the ground
        wall = wall * (1 - 0.15 * torch.exp(-y / 0.8) - 0.06 * (ry < 0.05).float())[:, None]
        if bool((brick > 0.5).any()):
            course = torch.floor(y / 0.075)
            bx = torch.remainder(h + 0.125 * torch.remainder(course, 2), 0.25)
            mortar = (torch.remainder(y, 0.075) < 0.012) | (bx < 0.012)
            bc = 1 + 0.15 * (self.cell_rand(course, torch.floor((h + 0.125 * torch.remainder(course, 2)) / 0.25)) - 0.5)
            bricked = torch.where(mortar, torch.full_like(bc, 1.6), bc) * fine + (1 - fine)
            wall = torch.where((brick > 0.5)[:, None], wall * bricked[:, None], wall)
        wid = self.cell_rand(torch.floor(hx) + 17 * torch.floor(h_lo), storey)
        glass = win_col * (0.6 + 0.8 * wid)[:, None]
        lit_blind = (wid > 0.8)[:, None]  # some windows show curtains or blinds
        glass = torch.where(lit_blind, col * 0.5 + 0.15, glass)
        c = torch.where(frame[:, None], torch.full_like(col, 0.55), wall)
        any_win = win | shop_win
        c = torch.where(any_win[:, None], torch.where(shop_win[:, None], win_col * 0.7, glass), c)
        g = torch.where(any_win, 0.35 + 0.3 * (1 - wid), torch.zeros_like(y))
        return c, g

    def _mat_car_body(self, P, n, face, par, col, lo, hi, fine):
        x, y = P[:, 0], P[:, 1]
        heading = par[:, 1]
        top_y = hi[:, 1]
        c = col.clone()
        trim = (y - lo[:, 1]) < 0.13
        c = torch.where((trim & (face != 1))[:, None], torch.full_like(c, 0.03), c)
        ends = face == 2
        # the face towards -z is the rear of a car heading +z, the front of an oncoming one
        rear = ends & ((n[:, 2] < 0) == (heading > 0))
        near_side = ((x - lo[:, 0]) < 0.35) | ((hi[:, 0] - x) < 0.35)
        lamp_band = ((top_y - y) > 0.08) & ((top_y - y) < 0.25)
        lamps = ends & near_side & lamp_band
        lamp_col = torch.where(rear[:, None], torch.tensor([0.5, 0.02, 0.02], device=self.dev),
                               torch.tensor([0.8, 0.8, 0.75], device=self.dev))
        c = torch.where(lamps[:, None], lamp_col, c)
        cxm = (lo[:, 0] + hi[:, 0]) / 2
        plate = ends & ((x - cxm).abs() < 0.26) & ((y - lo[:, 1]) > 0.15) & ((y - lo[:, 1]) < 0.27)
        c = torch.where(plate[:, None], torch.tensor([0.7, 0.7, 0.65], device=self.dev), c)
        # vans/trucks: windscreen in the upper part of the front face
        screen = ends & ~rear & (par[:, 0] > 0.5) & ((top_y - y) < 0.9) & ((top_y - y) > 0.15)
        c = torch.where(screen[:, None], torch.full_like(c, 0.02), c)
        g = torch.where(screen, 0.5, 0.08 + 0.1 * (face != 1).float())
        return c, g

    def _mat_car_cabin(self, P, n, face, par, col, lo, hi, fine):
        roof = face == 1
        x, z = P[:, 0], P[:, 2]
        paint = par[:, 0:3]
        pillar_z = ((z - lo[:, 2]) < 0.12) | ((hi[:, 2] - z) < 0.12)
        pillar_x = ((x - lo[:, 0]) < 0.1) | ((hi[:, 0] - x) < 0.1)
        pillar = (face == 0) & pillar_z | (face == 2) & pillar_x
        top_band = (hi[:, 1] - P[:, 1]) < 0.06
        painted = roof | pillar | top_band
        c = torch.where(painted[:, None], paint, col)
        g = torch.where(painted, 0.08, 0.45)
        return c, g

    def _mat_tire(self, P, n, face, par, col, lo, hi, fine):
        c = (lo + hi) / 2
        r = ((hi - lo) / 2).clamp_min(1e-6)
        q = ((P - c) / r)[:, 1:3]
        rim = (face == 0) & ((q ** 2).sum(1) < 0.35)
        return torch.where(rim[:, None], torch.full_like(col, 0.35), col), None

    def _mat_metal(self, P, n, face, par, col, lo, hi, fine):
        return col * (1 + 0.1 * self.tex(P[:, 0] + P[:, 2], P[:, 1], 3.0))[:, None], torch.full_like(P[:, 0], 0.1)

    def _mat_sign(self, P, n, face, par, col, lo, hi, fine):
        front = (face == 2) & (n[:, 2] < 0)
        border = ((P[:, 0] - lo[:, 0]) < 0.06) | ((hi[:, 0] - P[:, 0]) < 0.06) | \
                 ((P[:, 1] - lo[:, 1]) < 0.06) | ((hi[:, 1] - P[:, 1]) < 0.06)
        c = torch.where(border[:, None], par[:, 0:3], col)
        return torch.where(front[:, None], c, torch.full_like(col, 0.25)), None

    def _mat_bark(self, P, n, face, par, col, lo, hi, fine):
        ang = torch.atan2(n[:, 0], n[:, 2])
        return col * (1 + 0.35 * self.tex(ang * 2, P[:, 1], 5.0))[:, None], None

    def _mat_foliage(self, P, n, face, par, col, lo, hi, fine):
        x, y, z = P[:, 0], P[:, 1], P[:, 2]
        leaf = self.tex(x + z * 0.7, y, 7.0) + self.tex(z - x * 0.6, y + 3.3, 5.0)
        blob = self.tex(x - z, y * 0.8, 1.2)
        t = (0.7 + 0.35 * leaf * fine + 0.25 * blob).clamp(0.15, 1.8)
        t = torch.where(leaf < -1.6, t * 0.5, t)  # gaps between leaf clusters
        hue = torch.stack([1 + 0.2 * blob, torch.ones_like(blob), 1 - 0.15 * blob], 1)
        return col * t[:, None] * hue, None

    def _mat_concrete(self, P, n, face, par, col, lo, hi, fine):
        return col * (1 + 0.12 * self.tex(P[:, 0] + P[:, 2], P[:, 1], 4.0) * fine)[:, None], None

    def _mat_cloth(self, P, n, face, par, col, lo, hi, fine):
        return col * (1 + 0.1 * self.tex(P[:, 0] + P[:, 2], P[:, 1], 8.0) * fine)[:, None], None

    def _mat_roof(self, P, n, face, par, col, lo, hi, fine):
        slope = face == 9
        y = P[:, 1]
        along = P[:, 0] + P[:, 2]  # runs along the ridge whichever way it points
        row = torch.remainder(y, 0.22) < 0.05
        seam = torch.remainder(along, 0.3) < 0.03
        tiles = col * (1 - 0.35 * row.float() * fine - 0.12 * seam.float() * fine
                       + 0.12 * self.tex(along, y, 2.0) + 0.1 * self.tex(along, y, 0.3))[:, None]
        under = n[:, 1] < -0.5
        c = torch.where(slope[:, None], tiles, par[:, 0:3])  # gable ends are wall
        c = torch.where(under[:, None], col * 0.4, c)
        return c, None

    def _foliage_normals(self, P, n):
        """Bumpy leaf normals: smooth ellipsoids would shade like plastic balls."""
        x, y, z = P[:, 0], P[:, 1], P[:, 2]
        bump = torch.stack([self.tex(y, z, 4.0), self.tex(z, x + 5, 4.0), self.tex(x, y + 9, 4.0)], 1)
        return torch.nn.functional.normalize(n + 0.45 * bump, dim=1)

    # ------------------------------------------------------------------ main
    def run(self):
        H, W, dev = self.H, self.W, self.dev
        L, post = self.scene.light, self.scene.post
        d = self.rays()
        inv = self._safe_inv(d)
        t, pid = self.intersect(d, inv)
        hit = pid >= 0
        depth = torch.where(hit, t, torch.full_like(t, SKY_DEPTH_M)).clamp(max=SKY_DEPTH_M)

        o = torch.tensor(self.origin, dtype=torch.float32, device=dev).view(3, 1, 1)
        t_safe = torch.where(hit, t, torch.zeros_like(t))
        P = o + d * t_safe  # 3×H×W
        flat = hit.view(-1).nonzero().squeeze(1)
        Pf = P.view(3, -1)[:, flat].T.contiguous()
        idf = pid.view(-1)[flat]
        n, face = self.normals(Pf, idf)
        length = (d * d).sum(0).sqrt()  # |d| >= 1 since its camera z is 1
        dist = (t_safe * length).view(-1)[flat]
        dirs = (d / length).view(3, -1).T
        base, gloss = self.albedo(Pf, n, face, idf, dist)

        # --- shadows and sky visibility (shadow rays leave along the true surface normal)
        sun = torch.tensor(self.sun, dtype=torch.float32, device=dev)
        n_img = torch.zeros(3, H * W, device=dev)
        n_img[:, flat] = n.T
        eps = 2e-3 + 2e-4 * t_safe
        P_off = P + n_img.view(3, H, W) * eps
        need = torch.zeros(H * W, dtype=torch.bool, device=dev)
        need[flat[(n * sun).sum(1) > 0]] = True
        foliage = self.mat[idf] == Mat.FOLIAGE
        if foliage.any():
            n[foliage] = self._foliage_normals(Pf[foliage], n[foliage])
        ndl = (n * sun).sum(1).clamp_min(0)
        # leaf gaps: noise in the plane across the sun's rays, so dapples fall as projected blobs
        e1 = np.cross(self.sun, [0.0, 1.0, 0.0] if abs(self.sun[1]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(self.sun, e1)
        pu = sum(float(e1[k]) * P[k] for k in range(3))
        pv = sum(float(e2[k]) * P[k] for k in range(3))
        leaf_light = (0.45 * self.tex(pu, pv, 2.0) - 0.1).clamp(0, 0.8)
        shadow = self.occlusion(P_off, need.view(H, W), self.sun, lambda p: p.material != Mat.TIRE,
                                lambda p: leaf_light if p.material == Mat.FOLIAGE else 0.0).view(-1)[flat]
        needs_up = torch.zeros(H * W, dtype=torch.bool, device=dev)
        needs_up[flat] = True
        # sky light blocked by what stands above: dark ground under cars, awnings and balconies
        sky_vis = self.occlusion(P_off, needs_up.view(H, W), (0.0, 1.0, 0.0),
                                 lambda p: p.material in (Mat.CAR_BODY, Mat.CONCRETE, Mat.CLOTH) and p.lo[1] > 0.05,
                                 lambda p: 0.3).view(-1)[flat]

        sun_rgb = torch.tensor(L.sun_rgb, dtype=torch.float32, device=dev)
        zen = torch.tensor(L.sky_zenith, dtype=torch.float32, device=dev)
        hor = torch.tensor(L.sky_horizon, dtype=torch.float32, device=dev)
        sky_irr = (zen * 0.4 + hor * 0.6) * L.ambient
        ground_bounce = torch.tensor(self.scene.ground.asphalt, dtype=torch.float32, device=dev) * sun_rgb * max(self.sun[1], 0) * 1.5
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
            env = self.sky(torch.nn.functional.normalize(refl[gi], dim=1))
            env = torch.where(refl[gi, 1:2] < 0, hor * 0.25, env)
            env = env * (0.6 + 0.4 * self.tex(Pf[gi, 0] + Pf[gi, 2], Pf[gi, 1], 0.5).clamp(-1, 1))[:, None]
            fres = gloss[gi] + (1 - gloss[gi]) * (1 - cosv[gi].abs()) ** 5 * 0.5
            col[gi] = col[gi] * (1 - fres[:, None]) + env * fres[:, None]

        fog = 1 - torch.exp(-dist / L.fog_m)
        fog_col = hor * (0.9 * L.ambient ** 0.5)
        col = col * (1 - fog[:, None]) + fog_col * fog[:, None]

        img = torch.empty(H * W, 3, device=dev)
        sky_px = (~hit).view(-1).nonzero().squeeze(1)
        if sky_px.numel():
            img[sky_px] = self.sky(dirs[sky_px])
        img[flat] = col
        img = img.T.reshape(3, H, W)
        return self.develop(img, post), depth.cpu().numpy().astype(np.float32)

    def develop(self, img: torch.Tensor, post) -> np.ndarray:
        """Linear radiance (3×H×W) -> camera-like 8-bit RGB: exposure, white balance, tone curve, noise."""
        dev = self.dev
        lum = 0.2126 * img[0] + 0.7152 * img[1] + 0.0722 * img[2]
        log_avg = torch.exp(torch.log(lum.clamp_min(1e-4)).mean())
        x = img * (post.key / log_avg) * torch.tensor(post.white_balance, dtype=torch.float32, device=dev).view(3, 1, 1)
        x = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)  # ACES-like filmic curve
        if post.vignette > 0:
            H, W = self.H, self.W
            yy = (torch.arange(H, device=dev) + 0.5 - H / 2) / (W / 2)
            xx = (torch.arange(W, device=dev) + 0.5 - W / 2) / (W / 2)
            x = x * (1 - post.vignette * (xx[None] ** 2 + yy[:, None] ** 2) / 1.3)
        x = x.clamp(0, 1) ** (1 / post.gamma)
        grey = (0.2126 * x[0] + 0.7152 * x[1] + 0.0722 * x[2])[None]
        x = grey + (x - grey) * post.saturation
        if post.blur_px > 0:
            x = _gaussian_blur(x, post.blur_px)
        if post.noise > 0:
            g = torch.Generator().manual_seed(self.scene.noise_seed)
            x = x + (torch.randn(x.shape, generator=g) * post.noise).to(dev)
        x = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        return x.permute(1, 2, 0).contiguous().cpu().numpy()


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a C×H×W image (shifted-slice sums: 10x faster than conv2d on CPU)."""
    r = max(1, int(math.ceil(2.0 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).tolist()
    H, W = x.shape[1:]
    y = torch.nn.functional.pad(x[None], (r, r, r, r), mode="replicate")[0]
    h = sum(k[i] * y[:, :, i:i + W] for i in range(2 * r + 1))
    return sum(k[i] * h[:, i:i + H, :] for i in range(2 * r + 1))
