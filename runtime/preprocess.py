"""The deterministic preprocessing of the image, depth, vector and waveform inputs, written once.

Training, INT8 calibration and the robot all call these functions on the raw sensor arrays, so
what a model sees live is exactly what it was trained on (train/serve skew is the classic bug of
this kind of system). Training adds only random augmentation on top. Parameters are plain dicts,
stored per input in the model spec (`InputSpec.preprocess`); each carries its `kind`, and missing
ones take the defaults below. Each kind is registered, with its raw field, input shape and live
hint, in `mke.runtime.modalities` (audio features: `mke.runtime.audio_features`);
`preprocessor(params)` looks the function up there.

Raw inputs: RGB as uint8 (H, W, 3) in RGB order; depth as uint16 (H, W) in millimetres with
0 = invalid (the RealSense convention); audio as float (channels, samples) in −1..1. Outputs are
float32, channels first, no batch dimension.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from mke.runtime.camera import Intrinsics
from mke.runtime.depth_units import millimetres_to_metres
from mke.runtime.errors import MkeError
from mke.runtime.modalities import get_modality

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RGB_DEFAULTS = {"size": None, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}  # size [h, w] in pixels; None = as given
# max_m in metres; mean / std in metres (metric) or per HHA channel (one number for all three, or three)
DEPTH_DEFAULTS = {"encoding": "metric", "size": None, "max_m": 10.0, "mean": 0.0, "std": 1.0}
DEPTH_ENCODINGS = {"metric": 1, "hha": 3}  # encoding → channels
VECTOR_DEFAULTS = {"mean": 0.0, "std": 1.0}
WAVEFORM_DEFAULTS = {"sample_rate": 16000, "seconds": 1.0}  # Hz; the window's length in seconds


def _halvings(shape: tuple[int, ...], size: tuple[int, int]) -> int:
    """How many exact halvings of (h, w) still leave a whole multiple of `size` in both dimensions."""
    (h, w), (th, tw), k = shape[:2], size, 0
    while h % (2 * th) == 0 and w % (2 * tw) == 0:
        h, w, k = h // 2, w // 2, k + 1
    return k


def resize_image(img: np.ndarray, size: tuple[int, int] | list[int] | None, nearest: bool) -> np.ndarray:
    """Resize to size = [h, w]: nearest neighbour (depth, labels), else area averaging when shrinking and
    bilinear when enlarging. Shrinking by 2^k (640×480 → 160×120) halves k times: the same box
    average as one area step up to ±1 in a uint8 value, 3.8× faster (0.12 against 0.46 ms, measured)."""
    if size is None or tuple(img.shape[:2]) == (int(size[0]), int(size[1])):
        return img
    import cv2

    size = (int(size[0]), int(size[1]))
    if nearest:
        return cv2.resize(img, size[::-1], interpolation=cv2.INTER_NEAREST)
    if img.shape[0] <= size[0]:
        return cv2.resize(img, size[::-1], interpolation=cv2.INTER_LINEAR)
    for _ in range(_halvings(img.shape, size)):
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return img if img.shape[:2] == size else cv2.resize(img, size[::-1], interpolation=cv2.INTER_AREA)


def preprocess_rgb(rgb: np.ndarray, params: dict) -> np.ndarray:
    """uint8 (H, W, 3) RGB → float32 (3, h, w): resized to params["size"] = [h, w], scaled to 0–1, normalised."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise MkeError(f"RGB input must be uint8 (H, W, 3), got {rgb.dtype} {tuple(rgb.shape)}")
    # channels first while still uint8 (a quarter of the bytes to move), then the float steps in place:
    # the same operations in the same order as ((x / 255 - mean) / std), bit for bit, several times faster
    p = {**RGB_DEFAULTS, **params}
    img = np.ascontiguousarray(resize_image(rgb, p["size"], nearest=False).transpose(2, 0, 1)).astype(np.float32)
    img *= 1.0 / 255.0
    img -= np.asarray(p["mean"], np.float32)[:, None, None]
    img /= np.asarray(p["std"], np.float32)[:, None, None]
    return img


def depth_encoding(params: dict) -> str:
    """params["encoding"] (default "metric"), checked against DEPTH_ENCODINGS."""
    encoding = params.get("encoding", DEPTH_DEFAULTS["encoding"])
    if encoding not in DEPTH_ENCODINGS:
        raise MkeError(f"depth encoding {encoding!r} is not one of {', '.join(DEPTH_ENCODINGS)}")
    return encoding


def check_depth(depth_mm: np.ndarray, source: str = "depth input") -> None:
    if depth_mm.dtype != np.uint16 or depth_mm.ndim != 2:
        raise MkeError(f"{source} must be uint16 millimetres (H, W), got {depth_mm.dtype} {tuple(depth_mm.shape)}")


def preprocess_depth(depth_mm: np.ndarray, params: dict, intrinsics: Intrinsics | None = None,
                     up: np.ndarray | None = None) -> np.ndarray:
    """uint16 mm (H, W) → float32 (C, h, w) by params["encoding"].

    "metric" (C = 1, the default, what runs live): metres clipped to `max_m`, normalised with
    `mean`/`std` (in metres); invalid pixels become 0 after normalisation.
    "hha" (C = 3, the paper's): horizontal disparity, height above the lowest point, angle to
    gravity (see `hha_encode`); needs the intrinsics of `depth_mm`, and `up` when the camera is tilted.
    """
    check_depth(depth_mm)
    p = {**DEPTH_DEFAULTS, **params}
    depth = resize_image(depth_mm, p["size"], nearest=True)
    metres = millimetres_to_metres(depth)
    valid = (metres > 0) & (metres <= float(p["max_m"]))
    if depth_encoding(p) == "metric":
        out = np.where(valid, (metres - float(p["mean"])) / float(p["std"]), 0.0)
        return out.astype(np.float32)[None]
    if intrinsics is None:  # hha
        raise MkeError("HHA depth encoding needs the camera intrinsics (fx, fy, cx, cy)")
    if (intrinsics.height, intrinsics.width) != depth_mm.shape:
        raise MkeError(f"the camera intrinsics are for {intrinsics.width}x{intrinsics.height} pixels but the "
                       f"depth map is {depth_mm.shape[1]}x{depth_mm.shape[0]}")
    k = intrinsics.resized(depth.shape[1], depth.shape[0])  # the depth map was resized to the model's size
    hha = hha_encode(np.where(valid, metres, 0.0), k, up)
    # one number for all three channels, or one per channel
    mean = np.broadcast_to(np.asarray(p["mean"], np.float32), (3,))[:, None, None]
    std = np.broadcast_to(np.asarray(p["std"], np.float32), (3,))[:, None, None]
    return ((hha - mean) / std * valid[None]).astype(np.float32)


def hha_encode(metres: np.ndarray, k: Intrinsics, up: np.ndarray | None = None) -> np.ndarray:
    """HHA (Gupta et al., ECCV 2014), vectorised: float32 (3, H, W) with channels

    0: horizontal disparity 1/z in 1/m; 1: height above the lowest valid point in m; 2: angle between
    the surface normal and "up", in degrees / 90 (0 = facing up, 1 = vertical, 2 = facing down).
    `up` is gravity's opposite in camera coordinates (x right, y down, z forward); the default
    (0, −1, 0) assumes a level camera — pass the camera pose's rotation or an IMU reading otherwise.
    Gupta's method estimates gravity iteratively; a robot knows it, so this takes it as given.
    """
    h, w = metres.shape
    up = np.array([0.0, -1.0, 0.0]) if up is None else np.asarray(up, np.float64)
    up = up / np.linalg.norm(up)
    u = np.arange(w, dtype=np.float32)[None, :]
    v = np.arange(h, dtype=np.float32)[:, None]
    z = metres.astype(np.float32)
    fx, fy, cx, cy = (np.float64(x) for x in k.row)  # numpy scalars: x, y in float64 (Python floats: float32)
    pts = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)
    valid = z > 0
    d_u = np.gradient(pts, axis=1)
    d_v = np.gradient(pts, axis=0)
    normal = np.cross(d_u, d_v)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True).clip(1e-9)
    facing_away = (normal * pts).sum(-1, keepdims=True) > 0
    normal = np.where(facing_away, -normal, normal)  # orient every normal towards the camera
    height = pts @ up.astype(np.float32)
    floor = np.percentile(height[valid], 1) if valid.any() else 0.0
    angle = np.degrees(np.arccos(np.clip(normal @ up.astype(np.float32), -1.0, 1.0))) / 90.0
    disparity = np.where(valid, 1.0 / np.where(valid, z, 1.0), 0.0)
    hha = np.stack([disparity, np.where(valid, height - floor, 0.0), np.where(valid, angle, 0.0)])
    return hha.astype(np.float32)


def preprocess_vector(x: np.ndarray, params: dict) -> np.ndarray:
    """float (D,) → float32 (D,), standardised with optional `mean`/`std`."""
    p = {**VECTOR_DEFAULTS, **params}
    x = np.asarray(x, np.float32)
    return ((x - np.asarray(p["mean"], np.float32)) / np.asarray(p["std"], np.float32))


def waveform_samples(params: dict) -> int:
    """Samples in the window: params["sample_rate"] (Hz) · params["seconds"], rounded."""
    p = {**WAVEFORM_DEFAULTS, **params}
    return int(round(float(p["sample_rate"]) * float(p["seconds"])))


def preprocess_audio(samples: np.ndarray, params: dict) -> np.ndarray:
    """float (C, T) in −1..1 at params["sample_rate"] Hz → float32 (C, n): the last params["seconds"]
    of it (n = rate · seconds), zero-padded in front when shorter. The waveform itself: MFCC and
    log-mel features are the kinds "mfcc" and "log_mel" (`mke.runtime.audio_features`)."""
    features = params.get("features", "waveform")
    if features != "waveform":
        raise MkeError(f"audio features {features!r}: the preprocessing kind 'audio' gives the waveform; "
                       f"features are kinds of their own (e.g. kind 'mfcc' or 'log_mel')")
    x = np.asarray(samples, np.float32)
    if x.ndim != 2:
        raise MkeError(f"audio input must be (channels, samples), got shape {tuple(x.shape)}")
    n = waveform_samples(params)
    if x.shape[1] >= n:
        return np.ascontiguousarray(x[:, x.shape[1] - n:])
    return np.concatenate([np.zeros((x.shape[0], n - x.shape[1]), np.float32), x], axis=1)


def preprocessor(params: dict) -> Callable:
    """The function for an input's preprocessing parameters (by their `kind`, a registered modality)."""
    return get_modality(params.get("kind")).preprocess
