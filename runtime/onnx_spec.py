"""Reading the model spec an ONNX file carries in its `metadata_props` (no torch, no onnx package)."""
from __future__ import annotations

from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.spec import ModelSpec

SPEC_KEY = "mke_spec"


def read_onnx_spec(path: str | Path) -> ModelSpec:
    """The spec embedded by mke-export; an MkeError for a missing, foreign or spec-less file."""
    path = Path(path)
    if not path.is_file():
        raise MkeError(f"model file {path} does not exist")
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise MkeError(f"{path} is not a readable ONNX model ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    return spec_from_session(session, path)


def spec_from_session(session, path: str | Path) -> ModelSpec:
    """The spec of a model already loaded in an onnxruntime InferenceSession (no second load)."""
    meta = session.get_modelmeta().custom_metadata_map
    if SPEC_KEY not in meta:
        raise MkeError(f"{path} carries no MKE model spec (metadata key '{SPEC_KEY}'); export it with mke-export")
    return ModelSpec.from_json(meta[SPEC_KEY], str(path))
