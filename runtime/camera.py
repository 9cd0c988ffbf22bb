"""Camera intrinsics, one type for every side: the simulator, RealSense recordings and cameras,
datasets (NYU's calibration, your own recordings), live frames and the HHA depth encoding.

Pixels throughout: focal lengths `fx`, `fy` and principal point `cx`, `cy` (librealsense calls it
ppx, ppy) in pixels of a `width` × `height` image, pixel centres at integer coordinates, so a centred
principal point is ((width − 1) / 2, (height − 1) / 2), as in RealSense intrinsics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from mke.runtime.errors import MkeError

DISTORTION_MODELS = ("none", "brown_conrady", "inverse_brown_conrady", "modified_brown_conrady",
                     "kannala_brandt4", "ftheta")
REQUIRED = ("width", "height", "fx", "fy", "cx", "cy")


@dataclass(frozen=True, kw_only=True)
class Intrinsics:
    """A pinhole camera (with librealsense's optional distortion model and its 5 coefficients)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "none"
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def coerce(cls, value: Intrinsics | Mapping[str, Any], what: str) -> Intrinsics:
        """An Intrinsics, or a mapping with width, height, fx, fy, cx, cy (model, coeffs), checked."""
        if isinstance(value, Intrinsics):
            return value.checked(what)
        if not isinstance(value, Mapping):
            raise MkeError(f"{what}: expected an Intrinsics or a dict, got {type(value).__name__}")
        missing = [k for k in REQUIRED if k not in value]
        unknown = sorted(set(value) - {f.name for f in fields(cls)})
        if missing or unknown:
            raise MkeError(f"{what}: expected keys {', '.join(REQUIRED)} (optional model, coeffs); "
                           f"missing {missing or 'none'}, unknown {unknown or 'none'}")
        return cls(**dict(value)).checked(what)

    @classmethod
    def from_row(cls, row: Sequence[float], width: int, height: int) -> Intrinsics:
        """From a stored (fx, fy, cx, cy) row, as datasets keep them in arrays."""
        fx, fy, cx, cy = (float(v) for v in row)
        return cls(width=int(width), height=int(height), fx=fx, fy=fy, cx=cx, cy=cy)

    @classmethod
    def from_vertical_fov(cls, width: int, height: int, vfov_deg: float) -> Intrinsics:
        """Square pixels and a centred principal point, as the simulator's renderer projects."""
        if not 1.0 <= vfov_deg <= 170.0:
            raise MkeError(f"vertical field of view {vfov_deg!r} degrees is outside 1..170")
        fy = (height / 2.0) / math.tan(math.radians(vfov_deg) / 2.0)
        return cls(width=width, height=height, fx=fy, fy=fy, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0)

    def checked(self, what: str) -> Intrinsics:
        if int(self.width) <= 0 or int(self.height) <= 0 or not self.fx > 0 or not self.fy > 0:
            raise MkeError(f"{what}: width, height, fx and fy must be positive, got {self}")
        if self.model not in DISTORTION_MODELS:
            raise MkeError(f"{what}: distortion model {self.model!r} is not one of {DISTORTION_MODELS}")
        if len(self.coeffs) != 5:
            raise MkeError(f"{what}: expected 5 distortion coefficients, got {len(self.coeffs)}")
        return Intrinsics(width=int(self.width), height=int(self.height), fx=float(self.fx), fy=float(self.fy),
                          cx=float(self.cx), cy=float(self.cy), model=self.model,
                          coeffs=tuple(float(c) for c in self.coeffs))

    @property
    def row(self) -> tuple[float, float, float, float]:
        return self.fx, self.fy, self.cx, self.cy

    @property
    def matrix(self) -> np.ndarray:
        """The 3×3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def resized(self, width: int, height: int) -> Intrinsics:
        """The same camera after its image was resized to `width` × `height` (every value scaled)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(width=width, height=height, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx,
                          cy=self.cy * sy, model=self.model, coeffs=self.coeffs)

    def for_sensor(self, width: int, height: int) -> Intrinsics:
        """The same lens seen by a sensor of another size, centred on the same optical axis.

        Focal lengths scale with the height, so pixels keep their aspect; a wider image (848×480
        depth beside 640×480 colour, as on a D435) sees more to the sides.
        """
        s = height / self.height
        return Intrinsics(width=width, height=height, fx=self.fx * s, fy=self.fy * s,
                          cx=self.cx * s + (width - self.width * s) / 2, cy=self.cy * s,
                          model=self.model, coeffs=self.coeffs)

    def to_rs(self, rs):
        """As a `pyrealsense2.intrinsics`."""
        intr = rs.intrinsics()
        intr.width, intr.height = self.width, self.height
        intr.fx, intr.fy, intr.ppx, intr.ppy = self.fx, self.fy, self.cx, self.cy
        intr.model = getattr(rs.distortion, self.model)
        intr.coeffs = list(self.coeffs)
        return intr

    @classmethod
    def from_rs(cls, intr) -> Intrinsics:
        """From a `pyrealsense2.intrinsics` (a stream profile's `get_intrinsics()`)."""
        return cls(width=int(intr.width), height=int(intr.height), fx=float(intr.fx), fy=float(intr.fy),
                   cx=float(intr.ppx), cy=float(intr.ppy), model=intr.model.name, coeffs=tuple(intr.coeffs))
