"""Calibration-like inputs for the calibration tests (imported by them; pytest puts this folder on sys.path)."""
import numpy as np


def smooth_frames(n, seed, height=48, width=64):
    """Smooth random scenes (normalised RGB, metric-like depth), not white noise: {"rgb", "depth"}, float32."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((n, 4, height // 8, width // 8)).astype(np.float32)
    up = coarse.repeat(8, axis=2).repeat(8, axis=3) + 0.2 * rng.standard_normal((n, 4, height, width)).astype(np.float32)
    return {"rgb": np.ascontiguousarray(up[:, :3]), "depth": np.ascontiguousarray(np.abs(up[:, 3:]) * 1.2 - 1.0)}
