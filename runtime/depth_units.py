"""Depth units, one rule for every source: uint16 millimetres with 0 = invalid (the RealSense convention).

Renderers and files give float metres, cameras give sensor units times a depth scale; all of them
become millimetres here, so a depth map means the same thing in training, calibration and live.
The rule: a depth that is not finite, not positive, not `valid` or beyond 65.535 m (what uint16
millimetres can hold) is invalid (0); a positive depth below half a millimetre is kept as 1 mm.
Arithmetic stays in the input's float type, so rendered float32 maps convert to the byte as they
always did; files of metres are converted in float64 by their readers (float32 would round
1.1625 m to 1162 mm).
"""
from __future__ import annotations

import numpy as np

MAX_MM = 65535
METRES_PER_MM = 0.001


def _from_float_mm(mm: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rounded float millimetres → uint16, 0 where not `ok` or beyond MAX_MM, at least 1 where kept."""
    keep = ok & (mm <= MAX_MM)
    out = np.zeros(mm.shape, np.uint16)
    out[keep] = np.maximum(mm[keep], 1).astype(np.uint16)
    return out


def metres_to_millimetres(metres: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """float metres (NaN, ±inf, ≤ 0 = invalid; `valid` False = invalid) → uint16 millimetres, 0 = invalid."""
    metres = np.asarray(metres)
    if not np.issubdtype(metres.dtype, np.floating):
        metres = metres.astype(np.float64)
    ok = np.isfinite(metres) & (metres > 0)
    if valid is not None:
        ok &= valid
    with np.errstate(invalid="ignore", over="ignore"):
        mm = np.rint(np.where(ok, metres, 0) * 1000.0)
    return _from_float_mm(mm, ok)


def units_to_millimetres(raw: np.ndarray, scale_m: float) -> np.ndarray:
    """Sensor depth units (uint16, 0 = no depth) × `scale_m` metres per unit → uint16 millimetres.

    A scale of 1 mm per unit (the D4xx default) copies the values; other scales (0.0001 m on a
    D405, 0.00025 m on an L515) are rounded to millimetres by the rule above."""
    raw = np.asarray(raw)
    factor = float(scale_m) * 1000.0
    if not factor > 0 or abs(factor - 1.0) <= 1e-6:
        return np.array(raw, dtype=np.uint16, copy=True)
    mm = np.rint(raw.astype(np.float64) * factor)
    return _from_float_mm(mm, raw > 0)


def as_millimetres(depth: np.ndarray) -> np.ndarray:
    """uint16 millimetres as they are; float metres (a renderer's, or fault injection's NaN) converted."""
    return depth if depth.dtype == np.uint16 else metres_to_millimetres(depth)


def millimetres_to_metres(depth_mm: np.ndarray) -> np.ndarray:
    """uint16 millimetres → float32 metres, 0 staying 0 (invalid)."""
    return np.asarray(depth_mm).astype(np.float32) * np.float32(METRES_PER_MM)
