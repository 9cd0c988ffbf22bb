"""`depth`: a depth map aligned to the colour image, uint16 millimetres (H, W) → float32 (C, h, w)
by `encoding`: "metric" (C = 1) or "hha" (C = 3, needs the camera intrinsics) (`preprocess_depth`).

Live frames may carry float metres (some sources, fault injection): they become millimetres first.
"""
from mke.runtime.depth_units import as_millimetres
from mke.runtime.modalities.registry import register_modality
from mke.runtime.preprocess import DEPTH_DEFAULTS, DEPTH_ENCODINGS, depth_encoding, preprocess_depth


def _shape(params: dict) -> tuple[int, int, int]:
    h, w = params["size"] or (-1, -1)
    return DEPTH_ENCODINGS[depth_encoding(params)], h, w


def _requires(params: dict) -> dict[str, str]:
    return {"intrinsics": "encoding=hha"} if depth_encoding(params) == "hha" else {}


register_modality("depth", field="depth", shape=_shape, layout="NCHW", defaults=DEPTH_DEFAULTS,
                  context=("intrinsics", "up"), convert=as_millimetres, requires=_requires, image=True,
                  nearest=True, hint="give --input realsense://, file://REC.db3 or sim://")(preprocess_depth)
