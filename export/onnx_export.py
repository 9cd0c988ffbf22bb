"""torch → ONNX: one named input per modality, the model spec embedded, checked and simplified.

Uses torch.onnx's maintained exporter (torch.export-based, `dynamo=True`); static shapes with a batch
of 1 by default, a dynamic batch on request. The file is written atomically.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path
from mke.runtime.onnx_spec import SPEC_KEY
from mke.runtime.spec import ModelSpec

OPSET = 18
OUTPUT_NAME = "logits"


class _Positional(torch.nn.Module):
    """Our models take one keyword argument per modality; exporters want positional inputs."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors)))


def embed_spec(proto: onnx.ModelProto, spec: ModelSpec) -> None:
    for prop in list(proto.metadata_props):
        if prop.key == SPEC_KEY:
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()


def torch_to_onnx(model: torch.nn.Module, spec: ModelSpec, path: str | Path, *, dynamic_batch: bool = False,
                  opset: int = OPSET, simplify: bool = True) -> Path:
    """Export `model` (eval mode, CPU) with the spec's inputs; check, infer shapes, simplify, embed the spec."""
    path = Path(path)
    names = spec.input_names
    example = tuple(torch.zeros([1] + list(i.shape[1:]), dtype=torch.float32) for i in spec.inputs)
    wrapper = _Positional(model.eval().cpu(), names).eval()
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=64)
        dynamic_shapes = (tuple({0: batch} for _ in names),)  # one entry: the wrapper's *tensors
    with atomic_path(path, keep_suffix=True) as tmp:
        quiet = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            try:
                torch.onnx.export(wrapper, example, str(tmp), input_names=names, output_names=[OUTPUT_NAME],
                                  opset_version=opset, dynamo=True, dynamic_shapes=dynamic_shapes, external_data=False)
            except Exception as exc:  # the exporter's own error types; its log is in `quiet`
                raise MkeError(f"torch.onnx.export failed for {path.name}: {exc.__class__.__name__}: {str(exc)[:300]}") from None
        proto = onnx.load(str(tmp))
        if simplify:
            import onnxslim

            proto = onnxslim.slim(proto)
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        onnx.checker.check_model(proto, full_check=True)
        embed_spec(proto, spec)
        onnx.save(proto, str(tmp))
    return path
