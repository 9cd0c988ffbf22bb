"""Reading the model spec an ONNX file carries in its `metadata_props` (no torch, no onnx package)."""
from __future__ import annotations

from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.onnxrt import ort_session
from mke.runtime.spec import ModelSpec

SPEC_KEY = "mke_spec"


def read_onnx_spec(path: str | Path) -> ModelSpec:
    """The spec embedded by mke-export; an MkeError for a missing, foreign or spec-less file."""
    return spec_from_session(ort_session(path), path)


def spec_from_session(session, path: str | Path) -> ModelSpec:
    """The spec of a model already loaded in an onnxruntime InferenceSession (no second load)."""
    meta = session.get_modelmeta().custom_metadata_map
    if SPEC_KEY not in meta:
        raise MkeError(f"{path} carries no MKE model spec (metadata key '{SPEC_KEY}'); export it with mke-export")
    return ModelSpec.from_json(meta[SPEC_KEY], str(path))
