"""`rgb`: a colour image, uint8 (H, W, 3) → float32 (3, h, w), resized and normalised (`preprocess_rgb`)."""
from mke.runtime.modalities.registry import register_modality
from mke.runtime.preprocess import RGB_DEFAULTS, preprocess_rgb


def _shape(params: dict) -> tuple[int, int, int]:
    h, w = params["size"] or (-1, -1)
    return 3, h, w


register_modality("rgb", field="rgb", shape=_shape, layout="NCHW", defaults=RGB_DEFAULTS, image=True,
                  photometric=True,
                  hint="give --input with a colour camera: realsense://, v4l2:///dev/video0, csi://0, "
                       "file://REC.db3, a video file or sim://")(preprocess_rgb)
