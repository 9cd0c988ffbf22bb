"""Furniture and objects built from boxes, cylinders and spheres, one builder per class.

A builder returns a `Piece` in its own frame: origin at the centre of its footprint on the floor,
z up, front facing +x, metres. Parts carry a material *group* (0 main, 1 secondary such as legs or
handles, 2 accent such as cushions); the layout maps groups to materials drawn independently of the
class. Sizes follow real furniture so that shapes, not colours, tell the classes apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mke.runtime.sim.classes import BIN, CABINET, CHAIR, SOFA, TABLE


@dataclass(frozen=True)
class LocalPart:
    shape: str  # "box" (size = half extents x, y, z), "cylinder" (radius, length along z), "sphere" (radius,)
    size: tuple[float, ...]
    position: tuple[float, float, float]  # centre, in the piece's frame
    group: int = 0
    yaw: float = 0.0


@dataclass
class Piece:
    class_id: int
    half: tuple[float, float]  # footprint half extents along the piece's x (depth) and y (width)
    parts: list[LocalPart] = field(default_factory=list)

    def box(self, x0, x1, y0, y1, z0, z1, group=0):
        """Add an axis-aligned box spanning [x0, x1] x [y0, y1] x [z0, z1]."""
        self.parts.append(LocalPart("box", ((x1 - x0) / 2, (y1 - y0) / 2, (z1 - z0) / 2),
                                    ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2), group))

    def cylinder(self, x, y, radius, z0, z1, group=0):
        self.parts.append(LocalPart("cylinder", (radius, z1 - z0), (x, y, (z0 + z1) / 2), group))

    def sphere(self, x, y, z, radius, group=0):
        self.parts.append(LocalPart("sphere", (radius,), (x, y, z), group))

    def leg(self, x, y, thickness, z0, z1, round_, group=1):
        if round_:
            self.cylinder(x, y, thickness / 2, z0, z1, group)
        else:
            self.box(x - thickness / 2, x + thickness / 2, y - thickness / 2, y + thickness / 2, z0, z1, group)


def table(rng: np.random.Generator) -> Piece:
    u = rng.uniform
    if rng.random() < 0.25:  # round top on a pedestal
        r, h, t = u(0.4, 0.6), u(0.7, 0.78), u(0.03, 0.05)
        p = Piece(TABLE, (r, r))
        p.cylinder(0, 0, r, h - t, h, 0)
        p.cylinder(0, 0, u(0.04, 0.07), 0.03, h - t, 1)
        p.cylinder(0, 0, u(0.22, 0.3), 0.0, 0.03, 1)
        return p
    coffee = rng.random() < 0.25
    length = u(0.8, 1.3) if coffee else u(0.9, 1.8)
    width = u(0.5, 0.8) if coffee else u(0.7, 1.0)
    h, t = (u(0.38, 0.5) if coffee else u(0.7, 0.78)), u(0.025, 0.06)
    p = Piece(TABLE, (length / 2, width / 2))
    p.box(-length / 2, length / 2, -width / 2, width / 2, h - t, h, 0)
    s, inset, round_ = u(0.04, 0.08), u(0.02, 0.1), rng.random() < 0.4
    lx, ly = length / 2 - inset - s / 2, width / 2 - inset - s / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.leg(sx * lx, sy * ly, s, 0.0, h - t, round_)
    if rng.random() < 0.5:  # apron under the top
        a0, ah = h - t - u(0.06, 0.1), 0.02
        p.box(-lx, lx, ly - ah, ly, a0, h - t, 1)
        p.box(-lx, lx, -ly, -ly + ah, a0, h - t, 1)
        p.box(lx - ah, lx, -ly, ly, a0, h - t, 1)
        p.box(-lx, -lx + ah, -ly, ly, a0, h - t, 1)
    if coffee and rng.random() < 0.5:  # lower shelf
        p.box(-lx, lx, -ly, ly, 0.1, 0.12, 2)
    return p


def chair(rng: np.random.Generator) -> Piece:
    u = rng.uniform
    w, d, sh, st = u(0.42, 0.52), u(0.42, 0.52), u(0.42, 0.5), u(0.03, 0.08)
    back_top = sh + u(0.35, 0.5)
    p = Piece(CHAIR, (d / 2, w / 2))
    p.box(-d / 2, d / 2, -w / 2, w / 2, sh - st, sh, 0)
    bt = u(0.025, 0.05)
    if rng.random() < 0.3:  # office chair: column, five-spoke base, back on a post
        p.cylinder(0, 0, u(0.025, 0.04), 0.08, sh - st, 1)
        spoke = u(0.26, 0.32)
        for k in range(5):
            a = 2 * math.pi * k / 5 + u(0, 0.3)
            p.parts.append(LocalPart("box", (spoke / 2, 0.025, 0.02),
                                     (spoke / 2 * math.cos(a), spoke / 2 * math.sin(a), 0.06), 1, a))
        p.box(-d / 2 - 0.06, -d / 2 - 0.02, -0.03, 0.03, sh - st, sh + 0.12, 1)
        p.box(-d / 2 - 0.02 - bt, -d / 2 + 0.02, -w / 2, w / 2, sh + 0.1, back_top, 2 if rng.random() < 0.5 else 0)
        if rng.random() < 0.5:  # armrests
            for sy in (-1, 1):
                y = sy * (w / 2 + 0.03)
                p.box(-0.04, 0.0, y - 0.02, y + 0.02, sh, sh + 0.18, 1)
                p.box(-d / 3, d / 3, y - 0.04, y + 0.04, sh + 0.18, sh + 0.21, 1)
        return p
    s, round_ = u(0.03, 0.05), rng.random() < 0.35
    inset = s / 2 + u(0.0, 0.03)
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.leg(sx * (d / 2 - inset), sy * (w / 2 - inset), s, 0.0, sh - st, round_)
    x_back = -d / 2 + inset
    if rng.random() < 0.5:  # solid back panel on two posts
        for sy in (-1, 1):
            p.leg(x_back, sy * (w / 2 - inset), s, sh, back_top, round_)
        p.box(x_back - bt / 2, x_back + bt / 2, -w / 2 + inset, w / 2 - inset, back_top - u(0.2, 0.35), back_top, 0)
    else:  # posts, top rail and slats
        for sy in (-1, 1):
            p.leg(x_back, sy * (w / 2 - inset), s, sh, back_top, round_)
        p.box(x_back - bt / 2, x_back + bt / 2, -w / 2 + inset, w / 2 - inset, back_top - 0.08, back_top, 0)
        n = int(rng.integers(2, 5))
        for k in range(n):
            y = (w / 2 - inset) * (2 * (k + 1) / (n + 1) - 1)
            p.box(x_back - 0.01, x_back + 0.01, y - 0.02, y + 0.02, sh, back_top - 0.08, 1)
    return p


def cabinet(rng: np.random.Generator) -> Piece:
    u = rng.uniform
    kind = rng.choice(["closed", "drawers", "shelf"], p=[0.45, 0.3, 0.25])
    w, d = u(0.5, 1.4), u(0.35, 0.6)
    h = {"closed": u(0.7, 2.0), "drawers": u(0.6, 1.2), "shelf": u(0.8, 2.0)}[kind]
    p = Piece(CABINET, (d / 2 + 0.04, w / 2))
    z0 = 0.0
    if rng.random() < 0.5:  # plinth
        z0 = u(0.06, 0.1)
        p.box(-d / 2, d / 2 - 0.03, -w / 2 + 0.02, w / 2 - 0.02, 0.0, z0, 1)
    if kind == "shelf":
        t = u(0.018, 0.03)
        p.box(-d / 2, d / 2, -w / 2, -w / 2 + t, z0, h, 0)
        p.box(-d / 2, d / 2, w / 2 - t, w / 2, z0, h, 0)
        p.box(-d / 2, d / 2, -w / 2 + t, w / 2 - t, h - t, h, 0)
        p.box(-d / 2, d / 2, -w / 2 + t, w / 2 - t, z0, z0 + t, 0)
        p.box(-d / 2, -d / 2 + 0.01, -w / 2 + t, w / 2 - t, z0 + t, h - t, 1)
        n = int(rng.integers(1, 5))
        for k in range(n):
            z = z0 + (h - z0) * (k + 1) / (n + 1)
            p.box(-d / 2 + 0.01, d / 2, -w / 2 + t, w / 2 - t, z - t / 2, z + t / 2, 0)
        return p
    p.box(-d / 2, d / 2, -w / 2, w / 2, z0, h, 0)
    front, gap, knob = d / 2, 0.006, rng.random() < 0.4
    handle_group = 1 if rng.random() < 0.7 else 0
    if kind == "closed":
        n = 1 if w < 0.65 else 2
        for k in range(n):
            y0 = -w / 2 + k * w / n + gap
            y1 = y0 + w / n - 2 * gap
            p.box(front, front + 0.018, y0, y1, z0 + gap, h - gap, 2)
            hy = y1 - 0.05 if k == 0 else y0 + 0.05
            hz = min(h - 0.15, z0 + 0.95) if h > 1.2 else h - 0.15
            if knob:
                p.sphere(front + 0.035, hy, hz, 0.02, handle_group)
            else:
                p.box(front + 0.018, front + 0.035, hy - 0.01, hy + 0.01, hz - 0.08, hz + 0.08, handle_group)
    else:
        n = int(rng.integers(3, 6))
        step = (h - z0) / n
        for k in range(n):
            za, zb = z0 + k * step + gap, z0 + (k + 1) * step - gap
            p.box(front, front + 0.018, -w / 2 + gap, w / 2 - gap, za, zb, 2)
            zc = (za + zb) / 2
            if knob:
                p.sphere(front + 0.035, 0.0, zc, 0.02, handle_group)
            else:
                p.box(front + 0.018, front + 0.035, -0.08, 0.08, zc - 0.01, zc + 0.01, handle_group)
    if rng.random() < 0.3:  # overhanging top
        p.box(-d / 2, d / 2 + 0.03, -w / 2 - 0.02, w / 2 + 0.02, h, h + u(0.02, 0.04), 1)
    return p


def sofa(rng: np.random.Generator) -> Piece:
    u = rng.uniform
    armchair = rng.random() < 0.3
    w, d = (u(0.75, 1.0) if armchair else u(1.4, 2.4)), u(0.8, 1.0)
    seat_h, cushion = u(0.38, 0.48), u(0.08, 0.15)
    base_top = seat_h - cushion
    feet = u(0.05, 0.12) if rng.random() < 0.5 else 0.0
    back_t, back_h = u(0.15, 0.28), u(0.72, 0.95)
    arm_w, arm_h = u(0.08, 0.25), u(0.52, 0.68)
    p = Piece(SOFA, (d / 2, w / 2))
    if feet:
        for sx in (-1, 1):
            for sy in (-1, 1):
                p.leg(sx * (d / 2 - 0.06), sy * (w / 2 - 0.06), 0.05, 0.0, feet, rng.random() < 0.5, 1)
    p.box(-d / 2, d / 2, -w / 2, w / 2, feet, base_top, 0)
    p.box(-d / 2, -d / 2 + back_t, -w / 2, w / 2, base_top, back_h, 0)
    p.box(-d / 2 + back_t, d / 2, -w / 2, -w / 2 + arm_w, base_top, arm_h, 0)
    p.box(-d / 2 + back_t, d / 2, w / 2 - arm_w, w / 2, base_top, arm_h, 0)
    n = 1 if armchair else int(rng.integers(2, 4))
    inner = w - 2 * arm_w
    for k in range(n):
        y0 = -w / 2 + arm_w + k * inner / n + 0.005
        p.box(-d / 2 + back_t, d / 2 - 0.01, y0, y0 + inner / n - 0.01, base_top, seat_h, 2)
        if rng.random() < 0.6:  # back cushion
            p.box(-d / 2 + back_t, -d / 2 + back_t + u(0.08, 0.14), y0, y0 + inner / n - 0.01,
                  seat_h, back_h - 0.04, 2)
    return p


def bin_(rng: np.random.Generator) -> Piece:
    u = rng.uniform
    r, h = u(0.15, 0.3), u(0.35, 0.8)
    p = Piece(BIN, (r, r))
    kind = rng.choice(["plain", "pot", "barrel"])
    if kind == "plain":
        p.cylinder(0, 0, r, 0.0, h, 0)
        if rng.random() < 0.6:
            p.cylinder(0, 0, r + 0.012, h - 0.03, h, 1)
    elif kind == "pot":  # wider towards the top
        for k in range(3):
            p.cylinder(0, 0, r * (0.75 + 0.125 * k), h * k / 3, h * (k + 1) / 3, 0)
        p.cylinder(0, 0, r + 0.015, h - 0.04, h, 1)
    else:  # barrel: bulges in the middle, hoops
        p.cylinder(0, 0, r * 0.9, 0.0, h * 0.3, 0)
        p.cylinder(0, 0, r, h * 0.3, h * 0.7, 0)
        p.cylinder(0, 0, r * 0.9, h * 0.7, h, 0)
        for z in (0.3, 0.7):
            p.cylinder(0, 0, r + 0.01, h * z - 0.015, h * z + 0.015, 1)
    if rng.random() < 0.3:  # lid
        p.cylinder(0, 0, r + 0.01, h, h + 0.02, 2)
    return p


BUILDERS = {TABLE: table, CHAIR: chair, CABINET: cabinet, SOFA: sofa, BIN: bin_}
