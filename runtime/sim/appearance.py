"""Appearance of a simulated room, drawn independently of the classes: colours, textures, light.

Every surface of every class takes its colour and texture from the same distribution, so colour
says nothing about the class (a blue floor, a white sofa and a wood-grain wall all happen). Textures
are small grey patterns (grain, tiles, checks, fabric, noise) that the surface colour tints.
"""
from __future__ import annotations

import colorsys
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEXTURE_KINDS = ("grain", "tiles", "checks", "fabric", "noise", "stripes")


@dataclass(frozen=True)
class Material:
    rgba: tuple[float, float, float, float]
    texture: int  # index into the world's texture bank, -1 for a plain colour


@dataclass(frozen=True)
class Lighting:
    """The arguments of pybullet's getCameraImage that light the scene (TinyRenderer's one
    directional light, with shadows from a shadow map when `shadow` is on)."""

    direction: tuple[float, float, float]
    color: tuple[float, float, float]
    ambient: float
    diffuse: float
    specular: float
    shadow: bool

    def camera_image_kwargs(self) -> dict:
        return dict(lightDirection=list(self.direction), lightColor=list(self.color), lightDistance=10.0,
                    shadow=int(self.shadow), lightAmbientCoeff=self.ambient,
                    lightDiffuseCoeff=self.diffuse, lightSpecularCoeff=self.specular)


def random_material(rng: np.random.Generator, n_textures: int) -> Material:
    """One surface finish; the same draw for every class."""
    hue = rng.random()
    sat = rng.uniform(0.0, 0.25) if rng.random() < 0.5 else rng.uniform(0.25, 0.85)
    val = rng.uniform(0.3, 0.95)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    texture = int(rng.integers(n_textures)) if n_textures and rng.random() < 0.5 else -1
    return Material((r, g, b, 1.0), texture)


def random_lighting(rng: np.random.Generator) -> Lighting:
    azimuth = rng.uniform(0, 2 * np.pi)
    elevation = rng.uniform(np.radians(35), np.radians(85))
    direction = (np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation))
    warmth = rng.uniform(-0.12, 0.12)
    color = (1.0, 1.0 - abs(warmth) / 2, 1.0 - warmth) if warmth > 0 else (1.0 + warmth, 1.0 + warmth / 2, 1.0)
    return Lighting(direction=tuple(float(v) for v in direction), color=tuple(float(v) for v in color),
                    ambient=float(rng.uniform(0.45, 0.75)), diffuse=float(rng.uniform(0.3, 0.6)),
                    specular=float(rng.uniform(0.0, 0.3)), shadow=bool(rng.random() < 0.5))


def random_texture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A grey (size, size, 3) uint8 pattern in about 140..255, so that tinting keeps the colour."""
    kind = TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))]
    y, x = np.mgrid[0:size, 0:size] / size
    if kind == "grain":
        warp = _smooth_noise(rng, size, 4) * rng.uniform(0.5, 2.0)
        freq = rng.uniform(12, 40)
        v = 0.5 + 0.5 * np.sin(2 * np.pi * (freq * y + warp))
    elif kind == "tiles":
        n = int(rng.integers(4, 12))
        line = rng.uniform(0.04, 0.12)
        v = (((x * n) % 1 > line) & ((y * n) % 1 > line)).astype(float)
        v = 0.6 * v + 0.4 * _smooth_noise(rng, size, n)
    elif kind == "checks":
        n = int(rng.integers(2, 10))
        v = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(float)
    elif kind == "fabric":
        n = rng.uniform(16, 32)
        v = 0.5 + 0.25 * np.sin(2 * np.pi * n * x) + 0.25 * np.sin(2 * np.pi * n * y)
        v = 0.7 * v + 0.3 * rng.random((size, size))
    elif kind == "stripes":
        n = int(rng.integers(3, 12))
        v = ((x * n) % 1 < rng.uniform(0.3, 0.7)).astype(float)
    else:
        v = _smooth_noise(rng, size, int(rng.integers(3, 10)))
    lo = rng.uniform(0.55, 0.85)
    grey = np.clip(255.0 * (lo + (1.0 - lo) * v), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled uniform noise in 0..1 with `cells` cells across, tiling-friendly enough."""
    coarse = rng.random((cells + 1, cells + 1))
    coords = np.linspace(0, cells, size, endpoint=False)
    i = coords.astype(int)
    f = coords - i
    rows = coarse[i] * (1 - f)[:, None] + coarse[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def write_png(path: Path, rgb: np.ndarray) -> None:
    """A minimal RGB PNG writer, so making textures needs no image library."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
