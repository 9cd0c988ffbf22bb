"""A stereo depth-sensor model (RealSense-like) that turns rendered metric depth into uint16 millimetres.

What a structured-light stereo camera does to depth, in order:
- no return closer than `min_range` or farther than `max_range` (metres);
- occlusion shadows: with the left imager as reference, background just left of a foreground object
  (and a band at the image's left edge) is not seen by the right imager, so it has no depth; the band
  is `baseline * fx * (1/z_near - 1/z_far)` pixels wide, as on a real D4xx;
- flicker on silhouettes: a pixel next to a depth jump is lost with probability `edge_dropout`;
- random loss: isolated pixels (`dropout`) and blobs (`blob_fraction` of the image);
- Gaussian depth error whose standard deviation grows with the square of distance,
  sigma_z = `sigma_coeff` * z**2 (z in metres; 0.002 /m gives 2 mm at 1 m, 5 cm at 5 m), then
  rounding to whole millimetres. 0 marks an invalid pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mke.runtime.depth_units import metres_to_millimetres
from mke.runtime.errors import MkeError

@dataclass(frozen=True)
class DepthNoise:
    sigma_coeff: float = 0.002  # 1/m: sigma_z = sigma_coeff * z^2
    min_range: float = 0.2  # m
    max_range: float = 7.0  # m
    baseline: float = 0.05  # m between the stereo imagers; 0 turns occlusion shadows off
    edge_jump: float = 0.05  # a neighbour farther by more than this fraction of z is a depth jump
    edge_dropout: float = 0.5  # probability that a pixel on a depth jump is lost
    dropout: float = 0.003  # probability that any pixel is lost
    blob_fraction: float = 0.01  # fraction of the image lost in smooth blobs

    def __post_init__(self):
        for name in ("sigma_coeff", "min_range", "baseline", "edge_jump"):
            if not getattr(self, name) >= 0:
                raise MkeError(f"DepthNoise.{name} = {getattr(self, name)!r} must be >= 0")
        for name in ("edge_dropout", "dropout", "blob_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise MkeError(f"DepthNoise.{name} = {getattr(self, name)!r} must be in 0..1")
        if not self.max_range > self.min_range:
            raise MkeError(f"DepthNoise.max_range = {self.max_range!r} must exceed min_range = {self.min_range!r}")


def apply_depth_noise(depth_m: np.ndarray, rng: np.random.Generator, noise: DepthNoise, fx: float,
                      surface_ids: np.ndarray | None = None) -> np.ndarray:
    """Sensor depth (uint16 mm, 0 = invalid) from clean depth `depth_m` (H, W float metres, <= 0 or
    non-finite where nothing was hit). `fx` is the focal length in pixels (it sets the shadow widths);
    `surface_ids` (H, W ints), if given, restricts silhouette flicker to boundaries between surfaces."""
    z = np.asarray(depth_m, dtype=np.float32)
    if z.ndim != 2:
        raise MkeError(f"depth must be a 2-D (height, width) array, got shape {z.shape}")
    hit = np.isfinite(z) & (z > 0)
    z = np.where(hit, z, np.float32(np.inf))
    valid = hit & (z >= noise.min_range) & (z <= noise.max_range)
    if noise.baseline > 0:
        valid &= ~_stereo_shadow(z, noise.baseline * fx)
    if noise.edge_dropout > 0:
        edges = _depth_jumps(z, noise.edge_jump, surface_ids)
        valid &= ~(edges & (rng.random(z.shape) < noise.edge_dropout))
    if noise.dropout > 0:
        valid &= rng.random(z.shape) >= noise.dropout
    if noise.blob_fraction > 0:
        valid &= ~_blobs(z.shape, noise.blob_fraction, rng)
    noisy = z + (noise.sigma_coeff * np.square(np.where(valid, z, 0.0))
                 * rng.standard_normal(z.shape, dtype=np.float32))
    return metres_to_millimetres(noisy, valid)


def _stereo_shadow(z: np.ndarray, baseline_px_m: float) -> np.ndarray:
    """Pixels the right imager cannot see: pixel u is hidden when some u' > u has
    disparity(u') - disparity(u) >= u' - u, i.e. a suffix maximum of disparity - u beats its own."""
    disparity = baseline_px_m / z  # pixels; 0 where nothing was hit
    cols = np.arange(z.shape[1], dtype=np.float32)
    g = disparity - cols
    suffix = np.maximum.accumulate(g[:, ::-1], axis=1)[:, ::-1]
    beaten = np.full(z.shape, False)
    beaten[:, :-1] = suffix[:, 1:] > g[:, :-1] + 0.5
    return beaten | (cols < disparity)


def _depth_jumps(z: np.ndarray, rel: float, ids: np.ndarray | None) -> np.ndarray:
    """Pixels with a 4-neighbour farther or nearer by more than `rel` * z (on another surface)."""
    jumps = np.zeros(z.shape, bool)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        za, zb = z[tuple(a)], z[tuple(b)]
        with np.errstate(invalid="ignore"):
            jump = np.abs(za - zb) > rel * np.minimum(za, zb)
        if ids is not None:
            jump &= ids[tuple(a)] != ids[tuple(b)]
        jumps[tuple(a)] |= jump
        jumps[tuple(b)] |= jump
    return jumps


def _blobs(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random blobs covering about `fraction` of the image, the size of a few percent of it."""
    h, w = shape
    gh, gw = max(2, h // 12 + 2), max(2, w // 12 + 2)
    coarse = rng.random((gh, gw))
    threshold = np.quantile(coarse, 1.0 - fraction)
    ys = np.linspace(0, gh - 1, h)
    xs = np.linspace(0, gw - 1, w)
    y0, x0 = np.minimum(ys.astype(int), gh - 2), np.minimum(xs.astype(int), gw - 2)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy > threshold
