"""Modalities by registry: each kind of model input (rgb, depth, vector, audio, mfcc, log_mel …)
declared once, in its own module of this package; see `registry`."""
from mke.runtime.modalities.registry import (Modality, get_modality, input_spec, modality_names, modality_of,
                                             register_modality)

__all__ = ["Modality", "get_modality", "input_spec", "modality_names", "modality_of", "register_modality"]
