"""How the scene looks: a shared noise texture, per-material colour and gloss, leaf normals, the sky.

Materials are procedural functions of the world position P of a hit, its normal n, the face code
of `Geometry.normals`, the primitive's parameters (see scene.Mat) and its box lo..hi; `fine`
fades fine texture with distance, where it would only alias.
"""

from __future__ import annotations

import numpy as np
import torch

from depthda.synth.raycast import Geometry, centre_and_radii
from depthda.synth.scene import Mat, N_PARAMS, Scene

_NOISE_SIZE = 256
_NOISE_CACHE: dict[str, torch.Tensor] = {}


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


class Appearance:
    """Colour tables of `geo`'s primitives (row 0 the ground) and the lookups that texture them.

    `sun` is the unit vector towards the sun.
    """

    def __init__(self, scene: Scene, geo: Geometry, sun: np.ndarray):
        self.scene, self.dev, self.sun = scene, geo.dev, sun
        device = geo.dev
        prims = scene.prims
        f32 = dict(dtype=torch.float32, device=device)
        self.mat = torch.tensor([Mat.GROUND] + [p.material for p in prims], dtype=torch.int64, device=device)
        self.color = torch.tensor([scene.ground.asphalt] + [p.color for p in prims], **f32)
        params = np.zeros((geo.m + 1, N_PARAMS))
        for i, p in enumerate(prims):
            params[i + 1, :len(p.params)] = p.params[:N_PARAMS]
        self.params = torch.tensor(params, **f32)
        self.lo, self.hi = geo.lo, geo.hi
        self.noise = _noise_tile(device)

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
        c, r = centre_and_radii(lo, hi)
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

    def foliage_normals(self, P, n):
        """Bumpy leaf normals: smooth ellipsoids would shade like plastic balls."""
        x, y, z = P[:, 0], P[:, 1], P[:, 2]
        bump = torch.stack([self.tex(y, z, 4.0), self.tex(z, x + 5, 4.0), self.tex(x, y + 9, 4.0)], 1)
        return torch.nn.functional.normalize(n + 0.45 * bump, dim=1)
