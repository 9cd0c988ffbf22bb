"""`vector`: a feature vector (D,) → float32 (D,), standardised (`preprocess_vector`). No sensor gives
one: models of vectors (TwoMoon) run in training and export, not in mke-live."""
from mke.runtime.modalities.registry import register_modality
from mke.runtime.preprocess import VECTOR_DEFAULTS, preprocess_vector

register_modality("vector", field=None, shape=lambda params: (-1,), layout="NC",
                  defaults=VECTOR_DEFAULTS)(preprocess_vector)
