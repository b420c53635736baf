"""Random street scenes as plain data: primitives, ground markings, light and camera response.

A `Scene` is everything `render.render` needs, so a test can build known geometry by hand
(`Scene()` is an empty flat road under a noon sun). `random_scene(seed)` samples a street seen
from a car: road with lane markings, curbs and sidewalks, facades with windows, parked and moving
cars, trees, poles, signs, pedestrians, sun, sky, haze and camera response.

World frame: x right, y up, z along the street (metres); the road surface is y = 0 and the
street centre line is x = 0. Colours are linear RGB in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import IntEnum

import numpy as np

from depthda.synth.camera import Camera

N_PARAMS = 10  # per-primitive material parameters (meaning depends on the material)
CURB_HEIGHT_M = 0.15


class Kind(IntEnum):
    """Every primitive is described by an axis-aligned box `lo..hi` plus its kind."""

    BOX = 1
    ELLIPSOID = 2  # inscribed in the box
    CYLINDER = 3  # elliptic cylinder inscribed in the box, its axis along `axis`
    ROOF = 4  # gable roof: triangular prism filling the box, ridge along `axis` (0 or 2) at the top


def roof_planes(lo, hi, axis: int) -> list[tuple[np.ndarray, float]]:
    """The two slopes of a ROOF as half-spaces n . p <= c (the rest of its shape is its box)."""
    q = 2 if axis == 0 else 0
    k = (hi[1] - lo[1]) / max((hi[q] - lo[q]) / 2, 1e-9)
    n1, n2 = np.zeros(3), np.zeros(3)
    n1[1] = n2[1] = 1.0
    n1[q], n2[q] = -k, k
    return [(n1, lo[1] - k * lo[q]), (n2, lo[1] + k * hi[q])]


class Mat(IntEnum):
    GROUND = 0  # the y = 0 plane: asphalt, markings, lots beyond the sidewalks
    SIDEWALK = 1  # paving slabs on top, concrete curb on the sides
    FACADE = 2  # params: floor_h, column_w, win_w_frac, win_h_frac, ground_style, win rgb, brick, phase
    CAR_BODY = 3  # params: light style (0 car, 1 truck)
    CAR_CABIN = 4  # glass sides, painted roof; params[0:3] roof colour
    TIRE = 5
    METAL = 6
    SIGN = 7  # coloured face (the side facing -z), grey back; params[0:3] border colour
    BARK = 8
    FOLIAGE = 9
    CONCRETE = 10
    CLOTH = 11
    ROOF = 12  # tiles on the slopes; params[0:3] wall colour of the gable ends


@dataclass
class Primitive:
    kind: int
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    material: int
    color: tuple[float, float, float]
    axis: int = 1
    params: tuple[float, ...] = ()


@dataclass
class Ground:
    road_half_m: float = 7.0  # asphalt spans |x| < road_half_m (curbs stand there)
    lane_w_m: float = 3.2
    lanes_per_dir: int = 1
    centre_line: int = 1  # 0 none, 1 dashed, 2 solid
    edge_lines: bool = True
    asphalt: tuple[float, float, float] = (0.09, 0.09, 0.095)
    marking: tuple[float, float, float] = (0.65, 0.65, 0.62)
    lot: tuple[float, float, float] = (0.10, 0.14, 0.05)
    lot_kind: int = 0  # beyond the sidewalks: 0 grass, 1 paving
    cross_streets: tuple[tuple[float, float], ...] = ()  # z ranges where asphalt spans all x


@dataclass
class Light:
    sun_dir: tuple[float, float, float] = (0.3, 0.8, 0.52)  # towards the sun; normalised by the renderer
    sun_rgb: tuple[float, float, float] = (3.0, 2.85, 2.6)
    sky_zenith: tuple[float, float, float] = (0.18, 0.32, 0.75)
    sky_horizon: tuple[float, float, float] = (0.70, 0.80, 0.95)
    ambient: float = 1.0  # scale of the sky's diffuse light
    clouds: float = 0.0  # cloud cover 0..1
    fog_m: float = 600.0  # distance at which haze covers 63 %


@dataclass
class Post:
    """Camera response: auto-exposure key, white balance, noise, blur, vignetting."""

    key: float = 0.22  # mean linear brightness the auto-exposure aims at
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    noise: float = 0.0  # std of additive noise in [0, 1] display units
    blur_px: float = 0.0  # Gaussian sigma; real lenses and demosaicing are never pixel-sharp
    vignette: float = 0.0
    gamma: float = 2.2
    jpeg_quality: int = 0  # 0: none; else the frame goes through JPEG at this quality, as dash-cams store it


@dataclass
class Scene:
    camera: Camera = field(default_factory=Camera)
    prims: list[Primitive] = field(default_factory=list)
    ground: Ground = field(default_factory=Ground)
    light: Light = field(default_factory=Light)
    post: Post = field(default_factory=Post)
    texture_offset: tuple[float, float] = (0.0, 0.0)  # shifts the shared noise textures per scene
    noise_seed: int = 0


# ---------------------------------------------------------------------------------------------
# Palettes (sRGB, converted to linear on use)

def _lin(rgb) -> tuple[float, float, float]:
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    return tuple(float(x) for x in np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4))


FACADE_COLOURS = [(225, 215, 195), (240, 235, 225), (200, 190, 170), (180, 170, 160), (215, 195, 160),
                  (170, 100, 80), (150, 85, 70), (190, 160, 130), (230, 220, 170), (200, 210, 215),
                  (160, 160, 155), (120, 115, 110), (235, 200, 170), (190, 200, 180), (210, 180, 150)]
CAR_COLOURS = [(235, 235, 235), (20, 20, 22), (160, 162, 165), (100, 102, 105), (60, 62, 65),
               (25, 45, 100), (130, 20, 20), (200, 190, 170), (40, 70, 50), (180, 120, 30),
               (90, 120, 160), (230, 230, 225), (30, 30, 35), (140, 140, 145)]
CLOTH_COLOURS = [(30, 30, 35), (60, 60, 80), (120, 30, 30), (200, 200, 200), (40, 60, 110), (90, 80, 60),
                 (150, 130, 100), (50, 90, 60)]
SIGN_COLOURS = [(200, 20, 20), (20, 60, 170), (230, 230, 230), (230, 190, 20), (20, 120, 60)]


class _Builder:
    def __init__(self, rng: np.random.Generator, prims: list[Primitive] | None = None):
        self.rng = rng
        self.prims: list[Primitive] = [] if prims is None else prims

    def add(self, kind, lo, hi, mat, color, axis=1, params=()):
        lo = tuple(float(a) for a in lo)
        hi = tuple(float(b) for b in hi)
        if all(b > a for a, b in zip(lo, hi)):
            self.prims.append(Primitive(int(kind), lo, hi, int(mat), tuple(float(c) for c in color), int(axis),
                                        tuple(float(p) for p in params)))

    def jitter(self, colour, amount=0.12):
        """Vary a palette colour so no two objects share exactly the same one."""
        c = np.asarray(_lin(colour)) * self.rng.uniform(1 - amount, 1 + amount, 3) * self.rng.uniform(0.8, 1.15)
        return tuple(np.clip(c, 0.005, 0.95))


# ---------------------------------------------------------------------------------------------


PROFILES = ("street", "obstacles", "traffic")


def random_scene(seed: int, camera: Camera | None = None, jitter: bool = True, profile: str = "street") -> Scene:
    """A random street for `seed`; the same seed always gives the same scene.

    profile "obstacles" adds, on top of the same street (its own random stream, so the street is
    the "street" profile's scene unchanged), what depth networks trained on plain streets get wrong
    on real footage: cars 3–30 m ahead in the ego lane and the lanes beside it, in any colour; tree
    lines and hills on the horizon at their true far distance; JPEG compression. Profile "traffic"
    adds to "obstacles" a queue where near things fill the view (cars 2-10 m ahead in every lane,
    large pale trucks and tankers, overpasses, walls) and a camera pose that breaks the tie between
    image row and depth (height 1.2-2.4 m, pitch ±6°, roll ±4°).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown scene profile {profile!r}; choose from {', '.join(PROFILES)}")
    rng = np.random.default_rng(np.random.SeedSequence([7, abs(int(seed)), int(seed < 0)]))
    b = _Builder(rng)
    base = camera or Camera()
    style = rng.choice(["urban", "residential", "suburban"], p=[0.35, 0.4, 0.25])

    # --- road layout ---------------------------------------------------------------------
    lanes = int(rng.choice([1, 1, 1, 2])) if style != "suburban" else 1
    lane_w = rng.uniform(2.7, 3.6)
    parking = [rng.uniform(1.9, 2.5) if rng.random() < (0.75 if style != "suburban" else 0.4) else 0.0
               for _ in range(2)]
    road_half = lanes * lane_w + max(parking) + rng.uniform(0.0, 0.6)
    left_hand = rng.random() < 0.12  # UK/Japan dash-cams drive on the left
    drive_sign = -1.0 if left_hand else 1.0
    ego_lane = int(rng.integers(0, lanes))
    cam_x = drive_sign * (lane_w * (ego_lane + 0.5) + rng.normal(0, 0.3))
    cam = base.jittered(rng) if jitter else base
    cam = replace(cam, x_m=cam.x_m + cam_x)

    cross = []
    if rng.random() < 0.45:
        z0 = rng.uniform(12, 70)
        cross.append((z0, z0 + rng.uniform(7, 14)))
    if rng.random() < 0.3:
        z0 = rng.uniform(90, 160)
        cross.append((z0, z0 + rng.uniform(7, 14)))

    def in_cross(z0, z1, margin=0.0):
        return any(z1 > a - margin and z0 < b_ + margin for a, b_ in cross)

    asphalt = tuple(float(a) for a in np.asarray(_lin([rng.uniform(60, 125)] * 3)) * rng.uniform(0.95, 1.05, 3))
    lot_kind = int(rng.random() < (0.6 if style == "urban" else 0.2))
    lot = b.jitter((75, 95, 40), 0.2) if lot_kind == 0 else b.jitter((140, 135, 125), 0.1)
    ground = Ground(
        road_half_m=float(road_half), lane_w_m=float(lane_w), lanes_per_dir=lanes,
        centre_line=int(rng.choice([0, 1, 1, 2], p=[0.15, 0.6, 0.1, 0.15])), edge_lines=bool(rng.random() < 0.6),
        asphalt=asphalt, marking=b.jitter((215, 215, 205), 0.05), lot=lot, lot_kind=lot_kind,
        cross_streets=tuple((float(a), float(c)) for a, c in cross),
    )
    z_start, z_end = -40.0, float(rng.uniform(160, 320))

    # --- sidewalks, buildings, yards -----------------------------------------------------
    sidewalk_col = b.jitter((rng.uniform(120, 190),) * 3, 0.06)
    for side in (-1.0, 1.0):
        sw = rng.uniform(1.8, 5.0) if style != "suburban" else rng.uniform(1.2, 3.0)
        x_in, x_out = road_half, road_half + sw
        # split the sidewalk at cross streets
        edges = [z_start] + [v for a, c in cross for v in (a, c)] + [z_end + 50]
        for z0, z1 in zip(edges[0::2], edges[1::2]):
            _side_box(b, side, x_in, x_out + 40.0 * (style == "urban" and lot_kind == 1), 0.0, CURB_HEIGHT_M,
                      z0, z1, Mat.SIDEWALK, sidewalk_col)
        _buildings(b, rng, side, x_out, style, z_start, z_end, in_cross)
        _street_furniture(b, rng, side, road_half, x_out, style, z_end, in_cross)
        _parked_cars(b, rng, side, road_half, parking[0 if side < 0 else 1], z_end, in_cross)
        _pedestrians(b, rng, side, road_half, x_out, z_end)

    for z0, _ in cross:  # traffic lights before each crossing
        if rng.random() < 0.6:
            for side in (-1.0, 1.0):
                x = side * (road_half + 0.5)
                pole = _lin((60, 62, 65))
                b.add(Kind.CYLINDER, (x - 0.07, 0, z0 - 1.07), (x + 0.07, 3.4, z0 - 0.93), Mat.METAL, pole)
                b.add(Kind.BOX, (x - 0.18, 2.4, z0 - 1.25), (x + 0.18, 3.4, z0 - 1.07), Mat.METAL, _lin((30, 30, 30)))

    if rng.random() < 0.6:  # the street ends at a row of buildings across it
        _far_block(b, rng, z_end)

    # --- traffic ---------------------------------------------------------------------------
    for k in range(lanes):
        x_same = drive_sign * lane_w * (k + 0.5)
        x_opp = -x_same
        z = rng.uniform(6, 25)
        while z < 150:
            if rng.random() < (0.5 if k == ego_lane else 0.6):
                _car(b, rng, x_same + rng.normal(0, 0.2), z, heading=1)
            z += rng.uniform(10, 45)
        z = rng.uniform(4, 30)
        while z < 150:
            if rng.random() < 0.5:
                _car(b, rng, x_opp + rng.normal(0, 0.2), z, heading=-1)
            z += rng.uniform(12, 50)

    # --- light -----------------------------------------------------------------------------
    light = _light(rng)
    post = Post(
        key=float(rng.uniform(0.05, 0.12)),
        white_balance=tuple(float(w) for w in np.exp(rng.normal(0, 0.06, 3))),
        saturation=float(rng.uniform(0.85, 1.35)),
        noise=float(rng.uniform(0.0, 0.02)),
        blur_px=float(rng.uniform(0.3, 1.0)),
        vignette=float(rng.uniform(0.0, 0.35)),
        gamma=float(rng.uniform(2.0, 2.5)),
    )
    scene = Scene(camera=cam, prims=b.prims, ground=ground, light=light, post=post,
                  texture_offset=(float(rng.uniform(0, 512)), float(rng.uniform(0, 512))),
                  noise_seed=int(rng.integers(0, 2**31 - 1)))
    if profile in ("obstacles", "traffic"):
        extra = np.random.default_rng(np.random.SeedSequence([11, abs(int(seed)), int(seed < 0)]))
        _obstacles(_Builder(extra, b.prims), extra, lanes, lane_w, drive_sign, ego_lane, road_half, parking)
        scene.post = replace(post, jpeg_quality=int(extra.integers(30, 95)) if extra.random() < 0.5 else 0)
    if profile == "traffic":
        queue = np.random.default_rng(np.random.SeedSequence([13, abs(int(seed)), int(seed < 0)]))
        _traffic(_Builder(queue, b.prims), queue, lanes, lane_w, drive_sign, ego_lane, road_half)
        scene.camera = replace(scene.camera, height_m=float(queue.uniform(*TRAFFIC_HEIGHT_M)),
                               pitch_deg=float(queue.uniform(-TRAFFIC_PITCH_DEG, TRAFFIC_PITCH_DEG)),
                               roll_deg=float(queue.uniform(-TRAFFIC_ROLL_DEG, TRAFFIC_ROLL_DEG)))
    return scene


# Camera poses of the "traffic" profile: from low cars to vans and trucks, on slopes and bumps.
TRAFFIC_HEIGHT_M = (1.2, 2.4)
TRAFFIC_PITCH_DEG = 6.0
TRAFFIC_ROLL_DEG = 4.0
PALE = [(245, 245, 242), (225, 228, 230), (200, 202, 205), (235, 230, 215), (250, 250, 250)]


def _traffic(b: "_Builder", rng, lanes, lane_w, drive_sign, ego_lane, road_half):
    """A stop-and-go queue (profile "traffic"): near vehicles fill the view, trucks tower over the
    camera, and overpasses and walls stand across or beside the road."""
    lane_xs = [drive_sign * lane_w * (k + 0.5) for k in range(lanes)]
    queue_xs = lane_xs + [-x for x in lane_xs]  # stopped traffic in every lane, oncoming included
    for i, x in enumerate(queue_xs):
        first = 3.0 if lane_xs[ego_lane] == x else 0.5
        z = float(rng.uniform(first, 10.0))
        heading = 1 if i < len(lane_xs) else -1
        while z < 60.0:
            x_jit = x + rng.normal(0, 0.25)
            if rng.random() < 0.35:
                length = _truck(b, rng, x_jit, z, heading)
            else:
                _car(b, rng, x_jit, z + 2.4, heading=heading)
                length = 4.8
            z += length + float(rng.uniform(1.0, 6.0))
    if rng.random() < 0.4:  # an overpass across the road, on pillars beside it
        z0, depth = float(rng.uniform(8, 60)), float(rng.uniform(8, 16))
        y0 = float(rng.uniform(4.5, 7.0))
        grey = b.jitter((rng.uniform(120, 200),) * 3, 0.08)
        b.add(Kind.BOX, (-80.0, y0, z0), (80.0, y0 + rng.uniform(1.0, 2.0), z0 + depth), Mat.CONCRETE, grey)
        for side in (-1.0, 1.0):
            x = side * (road_half + rng.uniform(0.8, 3.0))
            b.add(Kind.BOX, (x - 0.6, 0.0, z0 + 1), (x + 0.6, y0, z0 + depth - 1), Mat.CONCRETE, grey)
    if rng.random() < 0.3:  # a wall or fence right beside the road
        side = float(rng.choice([-1.0, 1.0]))
        x = side * (road_half + rng.uniform(0.3, 1.5))
        z0 = float(rng.uniform(-5, 15))
        b.add(Kind.BOX, (x - 0.2, 0.0, z0), (x + 0.2, rng.uniform(1.5, 5.0), z0 + rng.uniform(15, 80)),
              Mat.CONCRETE, b.jitter((rng.uniform(90, 210),) * 3, 0.1))


def _truck(b: "_Builder", rng, x, z, heading) -> float:
    """A truck from its rear at z: a box trailer or a tanker (a cylinder along the road), often pale
    and sunlit; returns its length."""
    length, width = float(rng.uniform(7.0, 14.0)), float(rng.uniform(2.35, 2.55))
    clearance, height = float(rng.uniform(0.8, 1.2)), float(rng.uniform(2.6, 3.6))
    paint = b.jitter(PALE[rng.integers(len(PALE))] if rng.random() < 0.6 else CAR_COLOURS[rng.integers(len(CAR_COLOURS))], 0.05)
    x0, x1, z0, z1 = x - width / 2, x + width / 2, z, z + length
    if rng.random() < 0.5:  # tanker: the tank on a chassis
        b.add(Kind.BOX, (x0 + 0.3, clearance - 0.3, z0), (x1 - 0.3, clearance, z1), Mat.METAL, _lin((40, 40, 42)))
        b.add(Kind.CYLINDER, (x0, clearance, z0), (x1, clearance + height, z1), Mat.CAR_BODY, paint,
              axis=2, params=(1.0, heading))
    else:
        b.add(Kind.BOX, (x0, clearance, z0), (x1, clearance + height, z1), Mat.CAR_BODY, paint, params=(1.0, heading))
    r = float(rng.uniform(0.45, 0.55))
    for wz in (z0 + 1.0, z0 + 2.2, z1 - 1.5):
        b.add(Kind.CYLINDER, (x0 + 0.05, 0.0, wz - r), (x1 - 0.05, 2 * r, wz + r), Mat.TIRE, _lin((25, 25, 25)), axis=0)
    return length


def _obstacles(b: "_Builder", rng, lanes, lane_w, drive_sign, ego_lane, road_half, parking):
    """Near cars where a flat-road guess is most wrong, and a far horizon (profile "obstacles")."""
    def free(x, z, half_w=1.3, half_l=3.0):
        return not any(p.material == Mat.CAR_BODY and abs((p.lo[0] + p.hi[0]) / 2 - x) < half_w + (p.hi[0] - p.lo[0]) / 2
                       and abs((p.lo[2] + p.hi[2]) / 2 - z) < half_l + (p.hi[2] - p.lo[2]) / 2 for p in b.prims)

    def any_colour():  # beyond the usual paints: any hue and brightness
        return tuple(int(c) for c in rng.integers(10, 246, 3))

    lane_xs = [drive_sign * lane_w * (k + 0.5) for k in range(lanes)]
    slots = [(lane_xs[ego_lane], 0.75, 1)]                                    # the car ahead
    slots += [(x, 0.5, 1) for k, x in enumerate(lane_xs) if k != ego_lane]    # beside, same way
    slots += [(-x, 0.5, -1) for x in lane_xs]                                 # oncoming
    slots += [(side * (road_half - w / 2), 0.5, 1 if side > 0 else -1)       # parked near
              for side, w in zip((-1.0, 1.0), parking) if w > 0]
    for x, p, heading in slots:
        if rng.random() < p:
            z = float(rng.uniform(3.0, 30.0))
            x = x + rng.normal(0, 0.2)
            if free(x, z):
                _car(b, rng, x, z, heading=heading, paint=any_colour() if rng.random() < 0.4 else None)
    # a horizon of tree lines and hills (their depth is beyond the 80 m cap: far, not near)
    if rng.random() < 0.7:
        x = -400.0
        while x < 400.0:
            w, h, z = rng.uniform(30, 120), rng.uniform(8, 45), rng.uniform(150, 450)
            green = b.jitter([(60, 90, 35), (45, 75, 30), (80, 100, 40), (95, 105, 60)][rng.integers(4)], 0.25)
            b.add(Kind.ELLIPSOID, (x, -h, z), (x + w, h, z + w * 0.5), Mat.FOLIAGE, green)
            x += w * rng.uniform(0.4, 0.9)


def _side_box(b: _Builder, side, x0, x1, y0, y1, z0, z1, mat, colour, params=()):
    """A box between |x| = x0 and x1 on one side of the street."""
    xa, xb = sorted((side * x0, side * x1))
    b.add(Kind.BOX, (xa, y0, z0), (xb, y1, z1), mat, colour, params=params)


def _facade_params(rng, style):
    floor_h = rng.uniform(2.8, 3.8)
    win_col = _lin(rng.choice([(40, 50, 60), (70, 80, 90), (30, 35, 40), (90, 100, 110), (55, 60, 55)]))
    return (floor_h, rng.uniform(1.8, 4.0), rng.uniform(0.3, 0.65), rng.uniform(0.4, 0.65),
            float(rng.choice([0, 1, 2], p=[0.4, 0.4 if style == "urban" else 0.15, 0.2 if style == "urban" else 0.45])),
            *win_col, float(rng.random() < 0.15), rng.uniform(0, 10))


def _buildings(b: _Builder, rng, side, x_front, style, z_start, z_end, in_cross):
    setback_mu = {"urban": 0.0, "residential": rng.uniform(0, 6), "suburban": rng.uniform(4, 12)}[style]
    green_lot = {"urban": 0.05, "residential": 0.2, "suburban": 0.3}[style]
    z = z_start
    while z < z_end:
        length = rng.uniform(8, 30) if style != "suburban" else rng.uniform(7, 14)
        gap = 0.0 if style == "urban" and rng.random() < 0.7 else rng.uniform(2, 15)
        z0, z1 = z, z + length
        z = z1 + gap
        if in_cross(z0, z1, margin=1.0):
            continue
        if rng.random() < green_lot:  # a park or garden instead of a building
            _greenery(b, rng, side, x_front + 1.0, x_front + rng.uniform(8, 25), z0, z1)
            continue
        height = {"urban": rng.uniform(9, 28), "residential": rng.uniform(6, 16), "suburban": rng.uniform(4, 8)}[style]
        setback = max(0.0, setback_mu + rng.normal(0, 0.8 if style != "urban" else 0.2)) if setback_mu or style == "urban" \
            else 0.0
        if style == "urban" and rng.random() < 0.7:
            setback = 0.0
        depth = rng.uniform(8, 20)
        colour = b.jitter(FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))])
        fparams = _facade_params(rng, style)
        x_wall = x_front + setback
        _side_box(b, side, x_wall, x_wall + depth, 0.0, height, z0, z1, Mat.FACADE, colour, fparams)
        if rng.random() < {"urban": 0.15, "residential": 0.6, "suburban": 0.9}[style]:
            _roof(b, rng, side, x_wall, depth, height, z0, z1, colour)
        elif rng.random() < 0.5:  # cornice along a flat roof
            _side_box(b, side, x_wall - 0.3, x_wall + depth, height - 0.4, height, z0 - 0.3, z1 + 0.3, Mat.CONCRETE,
                      b.jitter((200, 195, 185), 0.1))
        floor_h = fparams[0]
        if style != "suburban" and height > 2.5 * floor_h and rng.random() < 0.3:  # balcony bands
            out = rng.uniform(0.8, 1.4)
            concrete = b.jitter((190, 185, 175), 0.15)
            m = rng.uniform(0.5, 2.0)
            for k in range(1, int(height / floor_h)):
                y = k * floor_h
                _side_box(b, side, x_wall - out, x_wall, y, y + rng.uniform(0.9, 1.1), z0 + m, z1 - m, Mat.CONCRETE,
                          concrete)
        if fparams[4] == 1 and setback < 1 and rng.random() < 0.4:  # shop awning
            out = rng.uniform(1.0, 2.0)
            y = rng.uniform(2.6, 3.2)
            _side_box(b, side, x_wall - out, x_wall, y, y + 0.12, z0 + 1, z1 - 1, Mat.CLOTH,
                      b.jitter(CLOTH_COLOURS[rng.integers(len(CLOTH_COLOURS))], 0.3))
        if setback > 1.5 and rng.random() < 0.5:  # hedge or low wall along the yard
            hedge = rng.random() < 0.6
            h = rng.uniform(0.6, 1.8) if hedge else rng.uniform(0.4, 1.2)
            colour = b.jitter((50, 80, 35), 0.25) if hedge else b.jitter((160, 155, 145), 0.1)
            _side_box(b, side, x_front + 0.2, x_front + rng.uniform(0.5, 1.0), 0.0, h, z0, z1,
                      Mat.FOLIAGE if hedge else Mat.CONCRETE, colour)
        if setback > 3 and rng.random() < 0.6:
            _greenery(b, rng, side, x_front + 0.5, x_wall - 1.0, z0, z1, count=int(rng.integers(1, 4)))


def _greenery(b: _Builder, rng, side, x0, x1, z0, z1, count=None):
    """Trees and bushes scattered over a lot between |x| = x0..x1, z = z0..z1."""
    if x1 <= x0:
        return
    count = count if count is not None else int(rng.integers(2, 7))
    for _ in range(count):
        x, z = side * rng.uniform(x0, x1), rng.uniform(z0, z1)
        if rng.random() < 0.7:
            _tree(b, rng, x, z)
        else:
            _bush(b, rng, x, z)


def _bush(b: _Builder, rng, x, z):
    r = rng.uniform(0.5, 1.5)
    h = r * rng.uniform(0.6, 1.2)
    green = b.jitter([(55, 85, 35), (45, 70, 30), (70, 90, 40)][rng.integers(3)], 0.2)
    b.add(Kind.ELLIPSOID, (x - r, -0.3 * h, z - r * rng.uniform(0.8, 1.5)), (x + r, 1.7 * h, z + r), Mat.FOLIAGE, green)


ROOF_COLOURS = [(150, 60, 40), (120, 50, 35), (90, 40, 30), (60, 60, 65), (110, 100, 95), (40, 40, 45),
                (170, 90, 60)]


def _roof(b: _Builder, rng, side, x_wall, depth, wall_h, z0, z1, wall_colour):
    """A gable roof with eaves over a building; the ridge runs along the street or across it."""
    ridge = 2 if rng.random() < 0.65 else 0
    over = rng.uniform(0.2, 0.6)
    span = depth if ridge == 2 else (z1 - z0)
    rise = (span / 2 + over) * math.tan(math.radians(rng.uniform(22, 45)))
    xa, xb = sorted((side * (x_wall - over), side * (x_wall + depth + over)))
    colour = b.jitter(ROOF_COLOURS[rng.integers(len(ROOF_COLOURS))], 0.15)
    b.add(Kind.ROOF, (xa, wall_h, z0 - over), (xb, wall_h + rise, z1 + over), Mat.ROOF, colour, axis=ridge,
          params=wall_colour)


def _far_block(b: _Builder, rng, z_end):
    x = -80.0
    while x < 80.0:
        w = rng.uniform(10, 30)
        colour = b.jitter(FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))])
        b.add(Kind.BOX, (x, 0, z_end), (x + w, rng.uniform(8, 30), z_end + 15), Mat.FACADE, colour,
              params=_facade_params(rng, "urban"))
        x += w


def _tree(b: _Builder, rng, x, z):
    """Deciduous (lumpy crown of ellipsoids), poplar (tall and narrow) or conifer (stacked tiers)."""
    kind = rng.choice(["round", "poplar", "conifer"], p=[0.75, 0.12, 0.13])
    trunk_h = rng.uniform(1.8, 3.5) if kind != "conifer" else rng.uniform(0.5, 1.5)
    r = rng.uniform(0.1, 0.25)
    b.add(Kind.CYLINDER, (x - r, 0, z - r), (x + r, trunk_h + 0.5, z + r), Mat.BARK, b.jitter((80, 65, 50), 0.2))
    green = b.jitter([(60, 90, 35), (45, 75, 30), (80, 100, 40), (70, 85, 45), (40, 60, 35)][rng.integers(5)], 0.2)
    if kind == "round":
        crown = rng.uniform(1.5, 4.0)
        cy = trunk_h + crown * rng.uniform(0.6, 0.9)
        for _ in range(int(rng.integers(2, 6))):
            rx, ry, rz = crown * rng.uniform(0.55, 0.95, 3)
            ox, oy, oz = rng.normal(0, crown * 0.35, 3)
            oy = abs(oy) * 0.8
            b.add(Kind.ELLIPSOID, (x + ox - rx, cy + oy - ry, z + oz - rz), (x + ox + rx, cy + oy + ry, z + oz + rz),
                  Mat.FOLIAGE, green)
    elif kind == "poplar":
        rr, hh = rng.uniform(1.0, 1.8), rng.uniform(4, 8)
        b.add(Kind.ELLIPSOID, (x - rr, trunk_h, z - rr), (x + rr, trunk_h + 2 * hh, z + rr), Mat.FOLIAGE, green)
    else:
        rr, hh = rng.uniform(1.5, 2.8), rng.uniform(6, 14)
        tiers = int(rng.integers(3, 5))
        for k in range(tiers):
            f = 1 - k / tiers
            y = trunk_h + hh * k / tiers
            rk = rr * f
            b.add(Kind.ELLIPSOID, (x - rk, y, z - rk), (x + rk, y + hh / tiers * 1.6, z + rk), Mat.FOLIAGE, green)


def _street_furniture(b: _Builder, rng, side, road_half, x_out, style, z_end, in_cross):
    tree_gap = rng.uniform(7, 16) if rng.random() < (0.6 if style != "urban" else 0.4) else None
    x_curb = road_half + rng.uniform(0.5, 1.2)
    if tree_gap:
        z = rng.uniform(-10, 10)
        while z < min(z_end, 200):
            if not in_cross(z - 3, z + 3) and rng.random() < 0.85:
                _tree(b, rng, side * x_curb, z)
            z += tree_gap * rng.uniform(0.8, 1.2)
    lamp_gap = rng.uniform(20, 45)
    z = rng.uniform(-10, 20)
    lamp_col = b.jitter((90, 95, 100), 0.3)
    x_lamp = road_half + 0.4
    while z < min(z_end, 220):
        if not in_cross(z - 1, z + 1):
            h = rng.uniform(6, 9)
            x = side * x_lamp
            b.add(Kind.CYLINDER, (x - 0.08, 0, z - 0.08), (x + 0.08, h, z + 0.08), Mat.METAL, lamp_col)
            arm = rng.uniform(0.8, 2.0)
            xa, xb = sorted((x, x - side * arm))
            b.add(Kind.BOX, (xa, h - 0.1, z - 0.05), (xb, h, z + 0.05), Mat.METAL, lamp_col)
            b.add(Kind.BOX, (xa - 0.15 if side > 0 else xb - 0.35, h - 0.25, z - 0.2),
                  (xa + 0.35 if side > 0 else xb + 0.15, h - 0.05, z + 0.2), Mat.METAL, lamp_col)
        z += lamp_gap
    for _ in range(int(rng.integers(0, 4))):  # traffic signs on short poles
        z = rng.uniform(5, 120)
        x = side * (road_half + rng.uniform(0.3, 1.0))
        h = rng.uniform(2.0, 2.8)
        b.add(Kind.CYLINDER, (x - 0.04, 0, z - 0.04), (x + 0.04, h, z + 0.04), Mat.METAL, _lin((130, 130, 135)))
        s = rng.uniform(0.5, 0.9)
        face = SIGN_COLOURS[rng.integers(len(SIGN_COLOURS))]
        border = (230, 230, 230) if face != (230, 230, 230) else (200, 20, 20)
        b.add(Kind.BOX, (x - s / 2, h - 0.05, z - 0.06), (x + s / 2, h + s - 0.05, z - 0.04), Mat.SIGN,
              _lin(face), params=_lin(border))
    if rng.random() < 0.3:  # bollards or a low fence along the curb
        z0 = rng.uniform(0, 60)
        z1 = z0 + rng.uniform(10, 40)
        if not in_cross(z0, z1):
            x = side * (road_half + 0.3)
            b.add(Kind.BOX, (x - 0.03, 0.6, z0), (x + 0.03, 0.9, z1), Mat.METAL, b.jitter((150, 150, 150), 0.3))
            for z in np.arange(z0, z1, rng.uniform(1.5, 3.0)):
                b.add(Kind.CYLINDER, (x - 0.04, 0, z - 0.04), (x + 0.04, 0.9, z + 0.04), Mat.METAL,
                      b.jitter((150, 150, 150), 0.3))


def _car(b: _Builder, rng, x, z, heading=1, paint=None):
    """A car (or van/truck) centred at x, z; body, glass cabin and four wheels; `paint`: 0-255 RGB."""
    t = rng.random()
    paint = b.jitter(paint if paint is not None else CAR_COLOURS[rng.integers(len(CAR_COLOURS))], 0.05)
    tyre = _lin((25, 25, 25))
    if t < 0.82:  # car
        length, width = rng.uniform(3.8, 4.9), rng.uniform(1.7, 1.9)
        clearance, body_h, cabin_h = rng.uniform(0.25, 0.35), rng.uniform(0.55, 0.8), rng.uniform(0.4, 0.6)
        cabin_len = length * rng.uniform(0.45, 0.6)
        cabin_off = rng.uniform(-0.35, 0.05) * length * heading  # cabins sit towards the rear
        r = rng.uniform(0.29, 0.36)
        style = 0.0
    else:  # van or truck: tall box with a short glass front
        length, width = rng.uniform(5.0, 8.5), rng.uniform(2.0, 2.5)
        clearance, body_h, cabin_h = rng.uniform(0.35, 0.5), rng.uniform(1.6, 2.6), 0.0
        cabin_len = 0.0
        cabin_off = 0.0
        r = rng.uniform(0.36, 0.5)
        style = 1.0
    x0, x1 = x - width / 2, x + width / 2
    z0, z1 = z - length / 2, z + length / 2
    top = clearance + body_h
    b.add(Kind.BOX, (x0, clearance, z0), (x1, top, z1), Mat.CAR_BODY, paint, params=(style, heading))
    if cabin_h > 0:
        inset = 0.08
        zc = z + cabin_off
        b.add(Kind.BOX, (x0 + inset, top, zc - cabin_len / 2), (x1 - inset, top + cabin_h, zc + cabin_len / 2),
              Mat.CAR_CABIN, _lin((20, 25, 30)), params=paint)
    wheel_z = length / 2 - max(0.7, r * 2.2)
    # one cylinder per axle: its middle is hidden under the body, and half the primitives render faster
    for wz in (z - wheel_z, z + wheel_z):
        b.add(Kind.CYLINDER, (x0 - 0.02, 0.0, wz - r), (x1 + 0.02, 2 * r, wz + r), Mat.TIRE, tyre, axis=0)


def _parked_cars(b: _Builder, rng, side, road_half, strip_w, z_end, in_cross):
    if strip_w <= 0:
        return
    density = rng.uniform(0.3, 0.95)
    z = rng.uniform(-15, 5)
    x = side * (road_half - strip_w / 2 - rng.uniform(-0.1, 0.2))
    while z < min(z_end - 10, 160):
        length = 4.6
        if not in_cross(z - 3, z + 3, 3) and rng.random() < density:
            _car(b, rng, x + rng.normal(0, 0.1), z + length / 2, heading=1 if side > 0 else -1)
        z += length + rng.uniform(0.6, 3.0)


def _pedestrians(b: _Builder, rng, side, road_half, x_out, z_end):
    for _ in range(int(rng.poisson(1.2))):
        x = side * rng.uniform(road_half + 0.5, x_out)
        z = rng.uniform(3, 60)
        h = rng.uniform(1.5, 1.9)
        w = rng.uniform(0.13, 0.2)
        legs = b.jitter(CLOTH_COLOURS[rng.integers(len(CLOTH_COLOURS))], 0.2)
        top = b.jitter(CLOTH_COLOURS[rng.integers(len(CLOTH_COLOURS))], 0.2)
        b.add(Kind.CYLINDER, (x - w, CURB_HEIGHT_M, z - w * 0.7), (x + w, h * 0.5, z + w * 0.7), Mat.CLOTH, legs)
        b.add(Kind.CYLINDER, (x - w * 1.1, h * 0.5, z - w * 0.8), (x + w * 1.1, h * 0.86, z + w * 0.8), Mat.CLOTH, top)
        hr = h * 0.065
        b.add(Kind.ELLIPSOID, (x - hr, h * 0.86, z - hr), (x + hr, h * 0.86 + 2.1 * hr, z + hr), Mat.CLOTH,
              b.jitter((200, 160, 130), 0.3))


def _light(rng) -> Light:
    overcast = rng.random() < 0.3
    az = rng.uniform(0, 2 * math.pi)
    el = math.radians(rng.uniform(12, 65))
    sun_dir = (math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az))
    warm = max(0.0, 1.0 - el / math.radians(40))  # low sun is yellower
    sun_rgb = np.array([1.0, 0.93 - 0.1 * warm, 0.85 - 0.25 * warm]) * rng.uniform(2.5, 4.0)
    if overcast:
        sun_rgb *= rng.uniform(0.05, 0.35)
        grey = rng.uniform(0.55, 0.85)
        zenith = np.array([grey, grey, grey * 1.05]) * rng.uniform(0.8, 1.0)
        horizon = np.array([grey, grey, grey]) * rng.uniform(1.0, 1.2)
        ambient = rng.uniform(1.3, 1.8)
        clouds = rng.uniform(0.6, 1.0)
        fog = rng.uniform(150, 500)
    else:
        zenith = np.array([0.12, 0.25, 0.70]) * rng.uniform(0.6, 1.2, 3) ** 0.3 * rng.uniform(0.8, 1.2)
        horizon = np.array([0.70, 0.78, 0.90]) * rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)
        ambient = rng.uniform(0.5, 0.9)
        clouds = rng.uniform(0.0, 0.7)
        fog = rng.uniform(400, 3000)
    return Light(sun_dir=tuple(float(v) for v in sun_dir), sun_rgb=tuple(float(v) for v in sun_rgb),
                 sky_zenith=tuple(float(v) for v in zenith), sky_horizon=tuple(float(v) for v in horizon),
                 ambient=float(ambient), clouds=float(clouds), fog_m=float(fog))
