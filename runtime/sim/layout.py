"""A random room as plain data: its parts (boxes, cylinders, spheres with a class and a material),
its materials and textures, its light, and where a camera may stand. No pybullet here.

The room spans [0, width] x [0, depth] (metres, world x and y) with the floor at z = 0 and the
ceiling at `height`. One wall has a door gap onto a closed corridor, which is what shows through it.
Rugs lie on the floor and pictures hang on the walls (labelled floor and wall): they change the
colour of a surface but not its geometry, which is where depth helps. Geometry and appearance come
from two independent random streams of the seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.sim.appearance import Lighting, Material, random_lighting, random_material, random_texture
from mke.runtime.sim.classes import BIN, CABINET, CEILING, CHAIR, FLOOR, SOFA, TABLE, WALL
from mke.runtime.sim.furniture import BUILDERS, Piece

CELL = 0.05  # metres per cell of the walkable grid
WALL_T = 0.1  # wall thickness, metres
CORRIDOR = 1.5  # width of the corridor behind the door, metres
CORRIDOR_REACH = 4.0  # how far it runs past each side of the door, metres
ROBOT_RADIUS = 0.3  # the camera keeps this far from furniture and walls, metres


@dataclass(frozen=True)
class Part:
    shape: str  # "box" (size = half extents), "cylinder" (radius, length along z), "sphere" (radius,)
    size: tuple[float, ...]
    position: tuple[float, float, float]  # centre in world metres
    yaw: float  # rotation about world z, radians
    class_id: int
    material: int  # index into Layout.materials


@dataclass
class Layout:
    seed: int
    size: tuple[float, float, float]  # room width (x), depth (y), height (z), metres
    parts: list[Part]
    materials: list[Material]
    textures: list[np.ndarray]  # (n, n, 3) uint8 grey patterns
    lighting: Lighting
    walkable: np.ndarray  # bool (ny, nx) grid of CELL-metre cells from (0, 0): where the camera may stand


def check_seed(seed, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MkeError(f"{what} {seed!r} must be a non-negative integer")
    return int(seed)


def random_layout(seed: int) -> Layout:
    """A furnished room; the same seed always gives the same room."""
    seed = check_seed(seed)
    return _RoomBuilder(seed).build()


class _RoomBuilder:
    def __init__(self, seed: int):
        self.seed = seed
        self.geo = np.random.default_rng([seed, 0])
        self.look = np.random.default_rng([seed, 1])
        u = self.geo.uniform
        self.size = (u(3.8, 6.5), u(3.8, 6.5), u(2.4, 3.0))
        self.parts: list[Part] = []
        self.materials: list[Material] = []
        self.textures = [random_texture(self.look) for _ in range(int(self.look.integers(3, 7)))]
        w, d, _ = self.size
        self.owner = np.full((math.ceil(d / CELL), math.ceil(w / CELL)), -1, np.int32)  # -2 keep clear
        self.instances = 0

    def build(self) -> Layout:
        self._structure()
        self._furnish()
        return Layout(self.seed, self.size, self.parts, self.materials, self.textures,
                      random_lighting(self.look), self._walkable())

    def material(self) -> int:
        self.materials.append(random_material(self.look, len(self.textures)))
        return len(self.materials) - 1

    def add_box(self, x0, x1, y0, y1, z0, z1, class_id, material, yaw=0.0):
        self.parts.append(Part("box", ((x1 - x0) / 2, (y1 - y0) / 2, (z1 - z0) / 2),
                               ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2), yaw, class_id, material))

    def side_box(self, side, t0, t1, n0, n1, z0, z1, class_id, material):
        """A box against wall `side` (0: y = 0, 1: x = width, 2: y = depth, 3: x = 0) spanning
        [t0, t1] along the wall and [n0, n1] inward from its inner face (negative: into the wall)."""
        w, d, _ = self.size
        x0, x1, y0, y1 = {0: (t0, t1, n0, n1), 1: (w - n1, w - n0, t0, t1),
                          2: (t0, t1, d - n1, d - n0), 3: (n0, n1, t0, t1)}[side]
        self.add_box(x0, x1, y0, y1, z0, z1, class_id, material)

    def side_length(self, side) -> float:
        return self.size[0] if side in (0, 2) else self.size[1]

    def _structure(self):
        g, (w, d, h) = self.geo, self.size

        door_side = int(g.integers(4))
        length = self.side_length(door_side)
        door_w, door_h = g.uniform(0.8, 1.0), g.uniform(2.0, min(2.2, h - 0.15))
        a = g.uniform(0.3, length - 0.3 - door_w)
        b = a + door_w
        self.add_box(-WALL_T, w + WALL_T, -WALL_T, d + WALL_T, -0.05, 0.0, FLOOR, self.material())
        self.add_box(-WALL_T, w + WALL_T, -WALL_T, d + WALL_T, h, h + 0.05, CEILING, self.material())
        wall_m, outside_m = self.material(), self.material()
        accent = int(g.integers(4)) if g.random() < 0.25 else -1
        for side in range(4):
            m = self.material() if side == accent else wall_m
            L = self.side_length(side)
            if side == door_side:
                self.side_box(side, -WALL_T, a, -WALL_T, 0.0, 0.0, h, WALL, m)
                self.side_box(side, b, L + WALL_T, -WALL_T, 0.0, 0.0, h, WALL, m)
                self.side_box(side, a, b, -WALL_T, 0.0, door_h, h, WALL, m)
            else:
                self.side_box(side, -WALL_T, L + WALL_T, -WALL_T, 0.0, 0.0, h, WALL, m)
        # a closed corridor behind the door: what shows through it, at no cost elsewhere
        c0, c1, back = a - CORRIDOR_REACH, b + CORRIDOR_REACH, -WALL_T - CORRIDOR
        self.side_box(door_side, c0, c1, back - WALL_T, back, 0.0, h, WALL, outside_m)
        self.side_box(door_side, c0 - WALL_T, c0, back, -WALL_T, 0.0, h, WALL, outside_m)
        self.side_box(door_side, c1, c1 + WALL_T, back, -WALL_T, 0.0, h, WALL, outside_m)
        self.side_box(door_side, c0, c1, back, -WALL_T, -0.05, 0.0, FLOOR, self.material())
        self.side_box(door_side, c0, c1, back, -WALL_T, h, h + 0.05, CEILING, self.material())
        if g.random() < 0.5:  # door casing
            m, c = self.material(), 0.07
            self.side_box(door_side, a - c, a, 0.0, 0.015, 0.0, door_h + c, WALL, m)
            self.side_box(door_side, b, b + c, 0.0, 0.015, 0.0, door_h + c, WALL, m)
            self.side_box(door_side, a, b, 0.0, 0.015, door_h, door_h + c, WALL, m)
        if g.random() < 0.6:  # skirting boards
            m, sh = self.material(), g.uniform(0.05, 0.1)
            for side in range(4):
                spans = [(0.0, a - 0.07), (b + 0.07, self.side_length(side))] if side == door_side else \
                        [(0.0, self.side_length(side))]
                for t0, t1 in spans:
                    self.side_box(side, t0, t1, 0.0, 0.015, 0.0, sh, WALL, m)
        for _ in range(int(g.integers(0, 5))):  # pictures
            side = int(g.integers(4))
            L = self.side_length(side)
            pw, ph = g.uniform(0.3, 1.2), g.uniform(0.3, 0.9)
            t = g.uniform(pw / 2 + 0.1, L - pw / 2 - 0.1)
            if side == door_side and t + pw / 2 > a - 0.2 and t - pw / 2 < b + 0.2:
                continue
            zc = min(g.uniform(1.2, 1.7), h - 0.1 - ph / 2)
            self.side_box(side, t - pw / 2, t + pw / 2, 0.0, 0.02, zc - ph / 2, zc + ph / 2, WALL, self.material())
        for _ in range(int(g.integers(0, 3))):  # rugs
            hx, hy = g.uniform(0.5, min(1.3, w / 2 - 0.3)), g.uniform(0.4, min(1.0, d / 2 - 0.3))
            x, y = g.uniform(hx + 0.2, w - hx - 0.2), g.uniform(hy + 0.2, d - hy - 0.2)
            self.add_box(x - hx, x + hx, y - hy, y + hy, 0.0, 0.008, FLOOR, self.material())
        # keep the doorway clear of furniture
        self._mark_side_zone(door_side, a - 0.15, b + 0.15, 1.0)

    def _mark_side_zone(self, side, t0, t1, depth):
        w, d, _ = self.size
        x0, x1, y0, y1 = {0: (t0, t1, 0, depth), 1: (w - depth, w, t0, t1),
                          2: (t0, t1, d - depth, d), 3: (0, depth, t0, t1)}[side]
        i0, i1 = max(0, int(y0 / CELL)), min(self.owner.shape[0], math.ceil(y1 / CELL))
        j0, j1 = max(0, int(x0 / CELL)), min(self.owner.shape[1], math.ceil(x1 / CELL))
        self.owner[i0:i1, j0:j1] = -2

    def _furnish(self):
        g, (w, d, _) = self.geo, self.size
        big = w * d > 25
        for _ in range(int(g.choice([1, 1, 2]))):
            self._place_against_wall(SOFA, tries=40) if g.random() < 0.75 else self._place_free(SOFA)
        for _ in range(int(g.integers(2, 4)) + big):
            self._place_against_wall(CABINET, tries=40)
        for _ in range(int(g.integers(1, 3))):
            self._place_table_set()
        for _ in range(int(g.integers(2, 5))):
            self._place_against_wall(BIN) if g.random() < 0.6 else self._place_free(BIN)
        for _ in range(int(g.integers(1, 4))):
            self._place_against_wall(CHAIR) if g.random() < 0.5 else self._place_free(CHAIR)

    def _place_against_wall(self, class_id, tries=30, piece: Piece | None = None):
        g = self.geo
        piece = piece or BUILDERS[class_id](g)
        hx, hy = piece.half
        for _ in range(tries):
            side = int(g.integers(4))
            L = self.side_length(side)
            if L < 2 * hy + 0.1:
                continue
            t, n = g.uniform(hy + 0.02, L - hy - 0.02), hx + g.uniform(0.01, 0.05)
            x, y, yaw = self._side_to_world(side, t, n)
            if self._try_place(piece, x, y, yaw):
                return True
        return False

    def _side_to_world(self, side, t, n):
        """World x, y and the yaw that turns a piece's front (+x) away from wall `side`."""
        w, d, _ = self.size
        return {0: (t, n, math.pi / 2), 1: (w - n, t, math.pi), 2: (t, d - n, -math.pi / 2),
                3: (n, t, 0.0)}[side]

    def _place_free(self, class_id, tries=30, piece: Piece | None = None):
        g, (w, d, _) = self.geo, self.size
        piece = piece or BUILDERS[class_id](g)
        for _ in range(tries):
            yaw = g.uniform(-math.pi, math.pi)
            if self._try_place(piece, g.uniform(0.3, w - 0.3), g.uniform(0.3, d - 0.3), yaw):
                return True
        return False

    def _place_table_set(self):
        g, (w, d, _) = self.geo, self.size
        table = BUILDERS[TABLE](g)
        for _ in range(30):
            yaw = g.integers(4) * math.pi / 2 + g.uniform(-0.1, 0.1) if g.random() < 0.7 else \
                g.uniform(-math.pi, math.pi)
            x, y = g.uniform(0.5, w - 0.5), g.uniform(0.5, d - 0.5)
            if self._try_place(table, x, y, yaw, margin=0.15):
                break
        else:
            return
        table_id = self.instances - 1
        hx, hy = table.half
        if min(hx, hy) * 2 < 0.6 or table.parts[0].position[2] < 0.6:  # coffee table: no chairs
            return
        c, s = math.cos(yaw), math.sin(yaw)
        slots = []
        for nx, ny, half_len, half_off in ((1, 0, hy, hx), (-1, 0, hy, hx), (0, 1, hx, hy), (0, -1, hx, hy)):
            n_chairs = 2 if half_len * 2 >= 1.3 else 1
            for k in range(n_chairs):
                along = 0.0 if n_chairs == 1 else (k - 0.5) * half_len
                slots.append((nx, ny, half_off, along))
        for nx, ny, half_off, along in slots:
            if g.random() > 0.6:
                continue
            chair = BUILDERS[CHAIR](g)
            dist = half_off + chair.half[0] - g.uniform(-0.25, 0.15)
            lx, ly = nx * dist + (ny != 0) * along, ny * dist + (nx != 0) * along
            x_c, y_c = x + c * lx - s * ly, y + s * lx + c * ly
            facing = yaw + math.atan2(-ny, -nx)  # the chair's front towards the table
            self._try_place(chair, x_c, y_c, facing + g.uniform(-0.3, 0.3), allowed=(table_id,), margin=0.0)

    def _try_place(self, piece: Piece, x, y, yaw, allowed=(), margin=0.05) -> bool:
        w, d, _ = self.size
        c, s = math.cos(yaw), math.sin(yaw)

        def corners(hx, hy):
            return [(x + c * a - s * b, y + s * a + c * b) for a in (-hx, hx) for b in (-hy, hy)]

        if any(not (0.005 <= cx <= w - 0.005 and 0.005 <= cy <= d - 0.005) for cx, cy in corners(*piece.half)):
            return False
        hx, hy = piece.half[0] + margin, piece.half[1] + margin
        xs, ys = [p[0] for p in corners(hx, hy)], [p[1] for p in corners(hx, hy)]
        i0, i1 = max(0, int(min(ys) / CELL)), min(self.owner.shape[0], math.ceil(max(ys) / CELL))
        j0, j1 = max(0, int(min(xs) / CELL)), min(self.owner.shape[1], math.ceil(max(xs) / CELL))
        cy_, cx_ = np.mgrid[i0:i1, j0:j1]
        px, py = (cx_ + 0.5) * CELL - x, (cy_ + 0.5) * CELL - y
        inside = (np.abs(c * px + s * py) <= hx) & (np.abs(-s * px + c * py) <= hy)
        cells = self.owner[i0:i1, j0:j1]
        taken = cells[inside]
        if np.any((taken != -1) & ~np.isin(taken, allowed)):
            return False
        cells[inside & (cells == -1)] = self.instances
        self.instances += 1
        self._add_piece(piece, x, y, yaw)
        return True

    def _add_piece(self, piece: Piece, x, y, yaw):
        g = self.look
        m0 = self.material()
        groups = [m0, m0 if g.random() < 0.4 else self.material(), m0 if g.random() < 0.4 else self.material()]
        c, s = math.cos(yaw), math.sin(yaw)
        for part in piece.parts:
            lx, ly, lz = part.position
            self.parts.append(Part(part.shape, part.size, (x + c * lx - s * ly, y + s * lx + c * ly, lz),
                                   yaw + part.yaw, piece.class_id, groups[part.group]))

    def _walkable(self) -> np.ndarray:
        r = math.ceil(ROBOT_RADIUS / CELL)
        blocked = np.pad(self.owner >= 0, r, constant_values=True)
        grown = blocked.copy()
        h, w = self.owner.shape
        for di in range(-r, r + 1):
            for dj in range(-r, r + 1):
                if di * di + dj * dj <= r * r:
                    grown[r:r + h, r:r + w] |= blocked[r + di:r + di + h, r + dj:r + dj + w]
        return ~grown[r:r + h, r:r + w]
