"""Modalities by registry: each kind of model input (rgb, rgb_clip, depth, vector, audio, mfcc, log_mel …)
declared once, in its own module of this package; see `registry`."""
from mke.runtime.modalities.registry import (FrameHistory, Modality, get_modality, input_spec, modality_names,
                                             modality_of, register_modality)

__all__ = ["FrameHistory", "Modality", "get_modality", "input_spec", "modality_names", "modality_of",
           "register_modality"]
