"""`rgb_clip`: the last `frames` colour images, `period_s` apart (the newest last), uint8 (T, H, W, 3) →
float32 (T, 3, h, w), each image as `rgb` preprocesses it. The paper's RAVDESS image modality: an
image every 0.5 s of a clip. Live, each frame is preprocessed once as it arrives and the sequence is
assembled from the frames nearest those times (`FrameHistory`)."""
import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.modalities.registry import register_modality
from mke.runtime.preprocess import RGB_DEFAULTS, preprocess_rgb

CLIP_DEFAULTS = {**RGB_DEFAULTS, "frames": 4, "period_s": 0.5}


def _shape(params: dict) -> tuple[int, int, int, int]:
    h, w = params["size"] or (-1, -1)
    return int(params["frames"]), 3, h, w


def _history(params: dict) -> tuple[int, float]:
    return int(params["frames"]), float(params["period_s"])


@register_modality("rgb_clip", field="rgb", shape=_shape, layout="NTCHW", defaults=CLIP_DEFAULTS, image=True,
                   photometric=True, history=_history,
                   hint="give --input with a colour camera: v4l2:///dev/video0, csi://0, realsense://, a video "
                        "file or sim://")
def preprocess_rgb_clip(frames: np.ndarray, params: dict) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB → float32 (T, 3, h, w), T = the frames given (`frames` when training)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise MkeError(f"an RGB clip must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    p = {**CLIP_DEFAULTS, **params}
    return np.stack([preprocess_rgb(f, p) for f in frames])
