"""Ray casting against a `Scene`'s primitives: camera rays, first hits, surface normals, occlusion.

Every pixel casts one ray through its centre (u + 0.5, v + 0.5) with the camera-frame direction
((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1). Because that direction has unit z, the ray
parameter t at the first analytic hit *is* the depth (camera-frame z in metres) with no rounding
beyond float32.

Speed comes from culling in screen space: each primitive is only tested against the pixels
inside the projection of its bounding box (and, for sun shadows, of the prism its shadow can
fall into), so the Python loop over primitives works on small tensor slices.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from depthda.synth.camera import Camera
from depthda.synth.scene import Kind, Scene, roof_planes

# the 12 edges of a box whose 8 corners are numbered by bits (x: 1, y: 2, z: 4)
_EDGES = np.array([(a, a | bit) for bit in (1, 2, 4) for a in range(8) if not a & bit])


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


def centre_and_radii(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and half-extents (kept above 0) of boxes lo..hi: their inscribed ellipsoids' and cylinders'."""
    return (lo + hi) / 2, ((hi - lo) / 2).clamp_min(1e-6)


def safe_inv(d: torch.Tensor) -> torch.Tensor:
    """1 / d, with components closer to 0 than 1e-12 taken as 1e-12 (slab tests divide by them)."""
    tiny = 1e-12
    return 1.0 / torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)


class Geometry:
    """The scene's primitives as tensors, seen by `cam` at `size` = (H, W) pixels.

    Table row 0 is the ground plane (y = 0); primitive i is row i + 1.
    """

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
        self.kind = torch.tensor([0] + [p.kind for p in prims], dtype=torch.int64, device=device)
        self.axis = torch.tensor([1] + [p.axis for p in prims], dtype=torch.int64, device=device)
        self.lo = torch.tensor(np.concatenate([np.zeros((1, 3)), lo]), **f32)
        self.hi = torch.tensor(np.concatenate([np.zeros((1, 3)), hi]), **f32)
        # per-primitive constants for the intersection loop, relative to the camera origin
        o = self.origin
        self.lo_o = torch.tensor(lo - o, **f32).view(-1, 3, 1, 1)
        self.hi_o = torch.tensor(hi - o, **f32).view(-1, 3, 1, 1)
        self.lo_w = torch.tensor(lo, **f32).view(-1, 3, 1, 1)
        self.hi_w = torch.tensor(hi, **f32).view(-1, 3, 1, 1)
        self.centre_w, self.radius = centre_and_radii(self.lo_w, self.hi_w)
        self.origin_t = torch.tensor(self.origin, **f32).view(3, 1, 1)
        # gable roofs: per primitive two planes n . p <= c; rows for other kinds never match
        planes = np.zeros((self.m + 1, 2, 4))
        for i, p in enumerate(prims):
            if p.kind == Kind.ROOF:
                for j, (nv, c) in enumerate(roof_planes(lo[i], hi[i], p.axis)):
                    planes[i + 1, j, :3], planes[i + 1, j, 3] = nv, c
        self.planes = torch.tensor(planes, **f32)

    def rays(self) -> torch.Tensor:
        """World-frame directions (3×H×W) of the rays through the pixel centres; camera-frame z = 1."""
        H, W = self.H, self.W
        fx, fy, cx, cy = self.cam.intrinsics(H, W)
        R = torch.tensor(self.cam.rotation(), dtype=torch.float32, device=self.dev)
        u = (torch.arange(W, dtype=torch.float32, device=self.dev) + 0.5 - cx) / fx
        v = (torch.arange(H, dtype=torch.float32, device=self.dev) + 0.5 - cy) / fy
        dc = torch.stack([u.expand(H, W), v[:, None].expand(H, W), torch.ones(H, W, device=self.dev)])
        d = torch.einsum("ij,jhw->ihw", R, dc).contiguous()
        return d

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
        """First hit of every ray: t (H×W, = depth; inf for sky) and its table row (0 ground, -1 sky)."""
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
        inv = safe_inv(s_t)
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
            c, r = centre_and_radii(self.lo[ps], self.hi[ps])
            n[sel] = torch.nn.functional.normalize((P[sel] - c) / r ** 2, dim=1)
            face[sel] = 3
        sel = (kind == Kind.CYLINDER).nonzero().squeeze(1)
        if sel.numel():
            ps = pid[sel]
            c, r = centre_and_radii(self.lo[ps], self.hi[ps])
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

