"""Will TensorRT 10 (and 11) build this ONNX, and what would leave the DLA for the GPU? Checked
without a GPU.

The workstation has no TensorRT; the Jetson is slow to find out. `check_onnx` reads the graph with
the `onnx` package (indexed by `mke.calib.graph_index.GraphIndex`) and checks, node by node:

- every operator against ONNX-TensorRT's support matrix for TensorRT 10 (onnx/onnx-tensorrt,
  docs/operators.md at tag 10.1-GA, commit 96e7811) and the restrictions it lists;
- the opset against the range that parser reads (9 to 20 for TensorRT 10.0–10.1, same document);
- explicit quantization the way TensorRT needs it (NvInfer.h, IQuantizeLayer/IDequantizeLayer of
  TensorRT 10.3): signed INT8 (or FP8/INT4) with zero points of 0, constant scales, per-channel
  scales only for weights and on their output-channel axis, every QuantizeLinear followed by a
  DequantizeLinear — the rules of `mke.calib.qdq_check.qdq_node_problems`, which `quantize_int8`
  applies too;
- data-dependent control flow (If, Loop, Scan) and data-dependent output shapes;
- dynamic input dimensions that need an optimization profile;
- with `dla=True`, the layers DLA cannot run, which go to the GPU with GPU fallback (warnings):
  the per-layer DLA limits of TensorRT 10.3's NvInfer.h (branch release/10.3 of NVIDIA/TensorRT) —
  the TensorRT that JetPack 6 ships for Orin — plus the general limits of the DLA chapter of the
  TensorRT developer guide (static shapes, dimensions ≤ 8192);
- strong typing, the only mode of TensorRT 11 and the mode mke builds in on 10.x too: the graph's
  own tensor types decide the engine's precision (`graph_types`), so a float32 graph asked for FP16,
  a graph without Q/DQ asked for INT8 (implicit quantization: TensorRT 11 removed the calibrators
  and BuilderFlag.INT8) or a Q/DQ graph asked for a float precision is refused (`precision_mismatch`,
  the rule `build_engine` applies too); QuantizeLinear whose input and scale types differ;
- what TensorRT 10 accepts and TensorRT 11 no longer does (rule "trt11"): nodes served by the
  plugins TensorRT 11.0 removed.

Levels: "error" — the parser or builder (TensorRT's, or `build_engine`'s own checks) will refuse it;
"warning" — it builds, with a cost worth knowing (GPU fallback, control flow, a profile to give), or
it builds on TensorRT 10 and TensorRT 11 will refuse it; "info" — facts about the graph.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from mke.calib.graph_index import GraphIndex
from mke.calib.qdq_check import QDQ_OPS, qdq_node_problems
from mke.calib.samples import load_onnx, model_inputs
from mke.runtime.errors import MkeError

OPSET_MIN, OPSET_MAX = 9, 20
SOURCE_OPS = "onnx/onnx-tensorrt docs/operators.md, tag 10.1-GA"
SOURCE_DLA = "NVIDIA/TensorRT include/NvInfer.h, release/10.3"
SOURCE_TRT11 = ("TensorRT 10.x → 11.x migration guide (docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/"
                "tensorrt-10x-to-11x.html); NVIDIA/TensorRT CHANGELOG.md 11.0 GA and plugin/ at release/10.16 vs 11.1")

# ONNX-TensorRT 10.1-GA support matrix, "Supported: Y" rows.
SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LRN
LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool
Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad
ParametricSoftplus Pow QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())
# Same matrix, "Supported: N" rows.
UNSUPPORTED_OPS = frozenset("""
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow CenterCropPad Col2Im
Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear HammingWindow HannWindow ImageDecoder
MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional
OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch STFT SequenceAt SequenceConstruct
SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence
StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
""".split())
# Added by later TensorRT 10 releases (onnx-tensorrt CHANGELOG.md): not in JetPack 6's TensorRT 10.3.
LATER_OPS = {"BlackmanWindow": "10.4", "HammingWindow": "10.4", "HannWindow": "10.4", "STFT": "10.5",
             "Attention": "10.14", "RMSNormalization": "10.15", "RotaryEmbedding": "10.15", "TensorScatter": "10.15"}

RESIZE_TRANSFORMS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
RESIZE_MODES = {"nearest", "linear"}
RESIZE_NEAREST_MODES = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
CONSTANT_INPUTS = {  # op → (input index, what it is): "must be an initializer" in the support matrix
    **{op: (1, "axes") for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                  "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
                                  "Squeeze", "Unsqueeze")},
    "CumSum": (1, "axis"), "TopK": (1, "K"), "OneHot": (1, "depth"), "Pad": (3, "axes"),
}

# Plugins the ONNX parser falls back to for a node of that name (in any domain; "Split" only outside the standard one),
# registered in NVIDIA/TensorRT plugin/ at release/10.16 and gone at release/11.1 — TensorRT 11.0 removed them
# (CHANGELOG.md, 11.0 GA: batchTile, clip, coordConvAC, cropAndResize, gelu, leakyRelu, normalize, nms, proposal …).
PLUGINS_REMOVED_IN_11 = frozenset("""
BatchTilePlugin_TRT BatchedNMSDynamic_TRT BatchedNMS_TRT Clip_TRT CoordConvAC CropAndResize CustomGeluPluginDynamic
EfficientNMS_ONNX_TRT LReLU_TRT NMSDynamic_TRT NMS_TRT Normalize_TRT Proposal ProposalDynamic SpecialSlice_TRT Split
""".split())

# The float element types that decide a strongly typed network's precision.
FLOAT_TYPES = {TensorProto.FLOAT: "FLOAT", TensorProto.FLOAT16: "FLOAT16", TensorProto.BFLOAT16: "BFLOAT16",
               TensorProto.DOUBLE: "DOUBLE"}
HALF_TYPES = (TensorProto.FLOAT16, TensorProto.BFLOAT16)
PRECISION_SUFFIXES = {".fp32": "fp32", ".fp16": "fp16", ".int8": "int8"}  # <model>.<precision>.onnx (mke-export)

# DLA (TensorRT 10.3 NvInfer.h): layers and the ONNX ops that become them.
DLA_ACTIVATIONS = {"Relu", "Sigmoid", "Tanh", "Clip"}                 # IActivationLayer: kRELU kSIGMOID kTANH kCLIP
DLA_ELEMENTWISE = {"Add", "Sub", "Mul", "Max", "Min", "Sum"}          # kSUM kPROD kMAX kMIN kSUB
DLA_UNARY = {"Abs"}                                                   # IUnaryLayer: kABS only
DLA_NEUTRAL = {"Identity", "Constant", "Shape", "Size", "Dropout", "QuantizeLinear", "DequantizeLinear",
               "BatchNormalization", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"}  # scale/shuffle/no-op
DLA_REDUCE = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceMax", "ReduceMin",
              "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
DLA_MAX_DIM = 8192
# IResizeLayer on DLA, nearest: (kASYMMETRIC, kFLOOR), (kHALF_PIXEL, kHALF_DOWN), (kHALF_PIXEL, kHALF_UP), all with
# selector kFORMULA — in ONNX terms, as onnx-tensorrt's Resize importer maps them:
DLA_NEAREST_RESIZE = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
                      ("half_pixel", "round_prefer_ceil")}


# --- strong typing: the graph's types are the engine's precision ------------------------------------------------

@dataclass(frozen=True)
class GraphTypes:
    """The float types a graph declares and whether it is explicitly quantized.

    A strongly typed network — every network in TensorRT 11, and every network mke builds on 10.x —
    takes each tensor's type from the graph and the type-inference rules, never from builder flags:
    FLOAT16 appears in the engine only where the ONNX has it (weights, declared values, Cast to
    FLOAT16), INT8 only between QuantizeLinear and DequantizeLinear."""

    float_types: frozenset[str]      # FLOAT_TYPES names found in initializers, declared values, constants, Casts
    qdq: bool                        # QuantizeLinear / DequantizeLinear present
    half_at: str | None = None       # where FLOAT16 (or BFLOAT16) first shows, for messages

    @property
    def computes_in(self) -> str:
        """The precision a strongly typed build gives: "int8" (Q/DQ), "fp16" (FLOAT16 tensors), else "fp32"."""
        if self.qdq:
            return "int8"
        return "fp16" if "FLOAT16" in self.float_types else "fp32"


def graph_types(model) -> GraphTypes:
    """Read the graph's float types (subgraphs included) without TensorRT and without shape inference:
    initializers, graph inputs/outputs/value_info, Constant values and the targets of Cast nodes."""
    found: set[int] = set()
    half_at: list[str] = []
    qdq = False

    def note(dtype: int, where: str) -> None:
        if dtype in FLOAT_TYPES:
            found.add(dtype)
            if dtype in HALF_TYPES and not half_at:
                half_at.append(f"{where} ({FLOAT_TYPES[dtype]})")

    def walk(graph) -> None:
        nonlocal qdq
        for init in graph.initializer:
            note(init.data_type, f"initializer '{init.name}'")
        for sparse in graph.sparse_initializer:
            note(sparse.values.data_type, f"initializer '{sparse.values.name}'")
        for value in list(graph.input) + list(graph.output) + list(graph.value_info):
            if value.type.HasField("tensor_type"):
                note(value.type.tensor_type.elem_type, f"value '{value.name}'")
        for node in graph.node:
            qdq = qdq or node.op_type in QDQ_OPS
            for attr in node.attribute:
                if node.op_type == "Cast" and attr.name == "to":
                    note(attr.i, f"Cast '{node.name or node.output[0]}'")
                elif attr.type == attr.TENSOR:
                    note(attr.t.data_type, f"{node.op_type} '{node.name or node.output[0]}'")
                elif attr.type == attr.GRAPH:
                    walk(attr.g)
                elif attr.type == attr.GRAPHS:
                    for sub in attr.graphs:
                        walk(sub)

    walk(model.graph)
    return GraphTypes(frozenset(FLOAT_TYPES[t] for t in found), qdq, half_at[0] if half_at else None)


def model_stem(path: str | Path) -> str:
    """"student.fp16.onnx" → "student": the model's name without the precision mke-export puts in it."""
    name = Path(path).name
    stem = name[:-len(".onnx")] if name.endswith(".onnx") else Path(name).stem
    for suffix in (*PRECISION_SUFFIXES, ".qdq"):
        if stem.endswith(suffix):
            return stem[:-len(suffix)]
    return stem


def precision_from_name(path: str | Path) -> str | None:
    """The precision a file's name says it holds (`<model>.fp16.onnx` → "fp16"), else None."""
    name = Path(path).name
    stem = name[:-len(".onnx")] if name.endswith(".onnx") else ""
    return next((p for suffix, p in PRECISION_SUFFIXES.items() if stem.endswith(suffix)), None)


def precision_mismatch(types: GraphTypes, precision: str, path: str | Path) -> str | None:
    """Why a strongly typed build of this graph would not give a `precision` engine, or None.

    TensorRT 11 has no precision flags, and mke builds strongly typed on 10.x too, so the graph has
    to hold the precision: FP16 from the FP16 ONNX (`mke.export.onnx_fp16.onnx_to_fp16`), INT8 from
    the Q/DQ ONNX. A float32 graph built "as fp16" would silently come out FP32 — refused here instead."""
    name, stem = Path(path).name, model_stem(path)
    if types.qdq and precision != "int8":
        return (f"{name} is explicitly quantized (QuantizeLinear/DequantizeLinear): build it with precision int8, "
                f"or build the float ONNX for {precision} ({stem}.onnx for fp32, {stem}.fp16.onnx for fp16)")
    if precision == "int8" and not types.qdq:
        return (f"INT8 needs an explicitly quantized ONNX (Q/DQ nodes) and {name} has none: calibrate on the "
                f"workstation with `mke-export <run> --int8` and build {stem}.int8.onnx (the device no longer "
                f"calibrates: TensorRT 10.1 deprecated its calibrators, TensorRT 11 removed them and BuilderFlag.INT8)")
    if precision == "fp16" and types.computes_in != "fp16":
        kinds = ", ".join(sorted(types.float_types)) or "none"
        return (f"{name} has no FLOAT16 tensor (no FLOAT16 initializer, value or Cast; its float types: {kinds}): a "
                f"strongly typed build — the only kind TensorRT 11 makes, and the kind mke makes on TensorRT 10 — "
                f"does not turn it into an FP16 engine. "
                f"Build fp16 from the FP16 ONNX {stem}.fp16.onnx (`mke-export <run> --fp16` writes it, with "
                f"mke.export.onnx_fp16.onnx_to_fp16), or build {name} with precision fp32")
    if precision == "fp32" and types.computes_in == "fp16":
        return (f"{name} computes in FLOAT16 (first at {types.half_at}): a strongly typed build gives an FP16 engine "
                f"from it, not fp32. Build it with precision fp16, or build the float32 {stem}.onnx for fp32")
    return None


@dataclass(frozen=True)
class Finding:
    level: str                 # "error" | "warning" | "info"
    rule: str                  # e.g. "unsupported-op", "opset", "qdq", "control-flow", "dynamic-shape", "dla-fallback",
    #                            "strong-typing", "dla-precision", "trt11"
    message: str
    node: str | None = None
    op_type: str | None = None


@dataclass
class Report:
    path: str
    opset: int | None
    dla: bool
    findings: list[Finding] = field(default_factory=list)
    precision: str | None = None     # the precision the file is meant to build as (asked, or read from its name)
    computes_in: str | None = None   # what a strongly typed build of it gives: "fp32", "fp16" or "int8"

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def dla_fallbacks(self) -> list[Finding]:
        return [f for f in self.findings if f.rule == "dla-fallback"]

    @property
    def ok(self) -> bool:
        """No errors: TensorRT 10's parser should accept it (warnings may still cost speed)."""
        return not self.errors

    @property
    def trt11_blockers(self) -> list[Finding]:
        """What TensorRT 10 builds and TensorRT 11 will not (rule "trt11")."""
        return [f for f in self.findings if f.rule == "trt11"]

    def to_dict(self) -> dict:
        return {"path": self.path, "opset": self.opset, "dla": self.dla, "ok": self.ok,
                "precision": self.precision, "computes_in": self.computes_in,
                "ready_for_tensorrt_11": self.ok and not self.trt11_blockers,
                "counts": {lvl: sum(f.level == lvl for f in self.findings) for lvl in ("error", "warning", "info")},
                "findings": [asdict(f) for f in self.findings],
                "sources": {"operators": SOURCE_OPS, "dla": SOURCE_DLA if self.dla else None,
                            "tensorrt11": SOURCE_TRT11}}

    def to_markdown(self) -> str:
        counts = self.to_dict()["counts"]
        verdict = "ready for TensorRT 10" if self.ok else "NOT ready for TensorRT 10"
        if self.ok and self.trt11_blockers:
            verdict += f" (TensorRT 11 would refuse it: {len(self.trt11_blockers)} 'trt11' finding(s))"
        elif self.ok:
            verdict += " and 11"
        lines = [f"# TensorRT readiness: {Path(self.path).name}", "",
                 f"{verdict} — opset {self.opset}, {counts['error']} error(s), {counts['warning']} warning(s), "
                 f"{counts['info']} note(s){', DLA checked' if self.dla else ''}; strongly typed it builds as "
                 f"{self.computes_in}{f' (meant as {self.precision})' if self.precision else ''}.", ""]
        if self.findings:
            lines += ["| level | rule | node | op | message |", "|---|---|---|---|---|"]
            for f in sorted(self.findings, key=lambda f: ("error", "warning", "info").index(f.level)):
                message = f.message.replace("|", "\\|")
                lines.append(f"| {f.level} | {f.rule} | {f.node or ''} | {f.op_type or ''} | {message} |")
            lines.append("")
        lines.append(f"Sources: {SOURCE_OPS}" + (f"; {SOURCE_DLA}" if self.dla else "") + f"; {SOURCE_TRT11}.")
        return "\n".join(lines) + "\n"


def check_onnx(path: str | Path, dla: bool = False, batch: tuple[int, int, int] | None = None,
               precision: str | None = "auto") -> Report:
    """Check an ONNX file for TensorRT 10 and 11 (and its DLA with `dla=True`); `batch` is the profile
    mke-export would build with for a dynamic batch, (min, opt, max); `precision` the engine it is meant
    for ("fp32", "fp16", "int8"; "auto" reads it from a `<model>.<precision>.onnx` name, None checks none)."""
    if precision == "auto":
        precision = precision_from_name(path)
    return check_model(load_onnx(path, load_external_data=False), str(path), dla=dla, batch=batch, precision=precision)


def check_model(model, path: str = "<model>", *, dla: bool = False, batch: tuple[int, int, int] | None = None,
                precision: str | None = None) -> Report:
    """check_onnx for an onnx.ModelProto already in memory."""
    if precision not in (None, *PRECISION_SUFFIXES.values()):
        raise MkeError(f"precision must be one of {', '.join(PRECISION_SUFFIXES.values())} or None, got {precision!r}")
    graph = GraphIndex(model)
    types = graph_types(model)
    report = Report(path=path, opset=graph.opset, dla=dla, precision=precision, computes_in=types.computes_in)
    add = report.findings.append
    _check_opset(graph, add)
    _check_inputs(graph, add, dla, batch)
    for node in graph.nodes:
        _check_operator(node, graph, add)
    _check_qdq(graph, add)
    _check_strong_typing(graph, types, add, path, precision, dla)
    if dla:
        for node in graph.nodes:
            _check_dla(node, graph, add)
    return report


# --- checks ----------------------------------------------------------------------------------------------------

def _finding(add, level, rule, message, graph=None, node=None) -> None:
    add(Finding(level, rule, message, graph.label(node) if node is not None else None,
                node.op_type if node is not None else None))


def _check_opset(graph: GraphIndex, add) -> None:
    if graph.opset is None:
        _finding(add, "error", "opset", "the model imports no default-domain (ai.onnx) opset")
    elif graph.opset < OPSET_MIN:
        _finding(add, "error", "opset", f"opset {graph.opset} is older than TensorRT 10's ONNX parser reads "
                 f"({OPSET_MIN} to {OPSET_MAX}): re-export with an opset_version from {OPSET_MIN} to {OPSET_MAX}")
    elif graph.opset > OPSET_MAX:
        _finding(add, "error", "opset", f"opset {graph.opset} is newer than TensorRT 10.0–10.3's ONNX parser reads "
                 f"({OPSET_MIN} to {OPSET_MAX}; later 10.x releases read more): re-export with opset_version=18, "
                 f"as mke-export does")
    else:
        _finding(add, "info", "opset", f"opset {graph.opset}, within TensorRT 10's range {OPSET_MIN} to {OPSET_MAX}")
    for imp in graph.model.opset_import:
        if imp.domain not in ("", "ai.onnx"):
            _finding(add, "info", "opset", f"the model also imports domain '{imp.domain}' (version {imp.version})")


def _check_inputs(graph: GraphIndex, add, dla: bool, batch) -> None:
    for name, value in model_inputs(graph.model).items():
        shape = value.shape_text
        dynamic = [i for i, d in enumerate(value.shape) if d is None or d <= 0]
        if dynamic and dynamic != [0]:
            _finding(add, "warning", "dynamic-shape", f"input '{name}' {shape} has dynamic dimensions beyond "
                     f"the batch: mke-export profiles only the batch; export with a fixed size")
        elif dynamic and batch is None:
            _finding(add, "warning", "dynamic-shape", f"input '{name}' {shape} has a dynamic batch and no "
                     f"optimization profile was given: build with batch=(min, opt, max)")
        elif dynamic:
            _finding(add, "info", "dynamic-shape", f"input '{name}' {shape}: dynamic batch, profile "
                     f"min/opt/max = {tuple(batch)}")
        if dla and dynamic and not (dynamic == [0] and batch is not None and len(set(batch)) == 1):
            _finding(add, "warning", "dla-fallback", f"input '{name}' {shape} is dynamic: DLA needs static "
                     f"shapes (a profile with min = opt = max), or the network runs on the GPU")
        if dla and any(d is not None and d > DLA_MAX_DIM for d in value.shape[1:]):
            _finding(add, "warning", "dla-fallback", f"input '{name}' {shape} has a dimension above "
                     f"{DLA_MAX_DIM}, DLA's limit for non-batch dimensions")


def _check_operator(node, graph: GraphIndex, add) -> None:
    op = node.op_type
    standard = node.domain in ("", "ai.onnx")
    if op in PLUGINS_REMOVED_IN_11 and not (standard and op in SUPPORTED_OPS):
        _finding(add, "warning", "trt11", f"{op} runs through TensorRT's plugin '{op}', which TensorRT 11.0 removed: "
                 f"TensorRT 10 builds it, TensorRT 11 will not. Express it with standard ONNX operators", graph, node)
    if not standard:
        _finding(add, "error", "unsupported-op", f"operator {node.domain}::{op} is outside the ONNX standard domain: "
                 f"TensorRT runs it only through a plugin registered under that name", graph, node)
        return
    if op in LATER_OPS:
        _finding(add, "error", "unsupported-op", f"{op} needs TensorRT {LATER_OPS[op]} or later; JetPack 6 has "
                 f"TensorRT 10.3", graph, node)
        return
    if op in UNSUPPORTED_OPS:
        _finding(add, "error", "unsupported-op", f"{op} is not supported by TensorRT 10's ONNX parser "
                 f"({SOURCE_OPS})", graph, node)
        return
    if op not in SUPPORTED_OPS:
        _finding(add, "error", "unsupported-op", f"{op} is not in TensorRT 10's ONNX operator list ({SOURCE_OPS})",
                 graph, node)
        return
    if op in CONSTANT_INPUTS:
        index, what = CONSTANT_INPUTS[op]
        name = graph.input(node, index)
        if name is not None and not graph.is_constant(name):
            _finding(add, "error", "restriction", f"{op}'s `{what}` input must be an initializer (a constant), "
                     f"here it is computed ('{name}')", graph, node)
    if op in ("If", "Loop", "Scan"):
        _finding(add, "warning", "control-flow", f"{op} is data-dependent control flow: TensorRT builds it as "
                 f"{'a conditional' if op == 'If' else 'a loop'} layer on the GPU (never DLA), slower than straight "
                 f"layers; fold it at export (a fixed branch, an unrolled loop) if the model allows", graph, node)
    if op in ("NonZero", "NonMaxSuppression"):
        _finding(add, "warning", "data-dependent-shape", f"{op}'s output shape depends on the data: TensorRT "
                 f"supports it, but runners with fixed output buffers (MKE's) cannot hold it", graph, node)
    check = _RESTRICTIONS.get(op)
    if check:
        for level, message in check(node, graph):
            _finding(add, level, "restriction", message, graph, node)


def _restrict_resize(node, graph: GraphIndex):
    mode = graph.attr(node, "mode", "nearest")
    transform = graph.attr(node, "coordinate_transformation_mode", "half_pixel")
    nearest = graph.attr(node, "nearest_mode", "round_prefer_floor")
    if mode == "cubic":
        yield "warning", ("cubic mode is not among the supported Resize modes TensorRT 10 documents "
                          "(nearest, linear); use linear")
    elif mode not in RESIZE_MODES:
        yield "error", f"Resize mode '{mode}' is not supported (nearest, linear)"
    if transform not in RESIZE_TRANSFORMS:
        yield "error", (f"coordinate_transformation_mode '{transform}' is not supported "
                        f"({', '.join(sorted(RESIZE_TRANSFORMS))})")
    if mode == "nearest" and nearest not in RESIZE_NEAREST_MODES:
        yield "error", f"nearest_mode '{nearest}' is not supported ({', '.join(sorted(RESIZE_NEAREST_MODES))})"
    if graph.attr(node, "antialias", 0):
        yield "error", "antialiasing is not supported"
    if graph.attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        yield "error", "only keep_aspect_ratio_policy 'stretch' is supported"


def _restrict_pool(node, graph: GraphIndex):
    kernel = graph.attr(node, "kernel_shape", [])
    if len(kernel) not in (2, 3):
        yield "error", f"only 2D or 3D pooling is supported; kernel_shape is {list(kernel)}"
    if any(d != 1 for d in graph.attr(node, "dilations", []) or []):
        yield "error", "pooling `dilations` must be empty or all ones"
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        yield "error", "the `Indices` output of MaxPool is not supported"


def _restrict_topk(node, graph: GraphIndex):
    if graph.attr(node, "sorted", 1) != 1:
        yield "error", "TopK needs sorted=1"
    k = graph.const(graph.input(node, 1))
    if k is not None and int(np.asarray(k).reshape(-1)[0]) >= 3840:
        yield "error", f"TopK's K must be below 3840, got {int(np.asarray(k).reshape(-1)[0])}"


def _restrict_lstm(node, graph: GraphIndex):
    if graph.attr(node, "input_forget", 0) != 0 or graph.attr(node, "layout", 0) != 0:
        yield "error", "LSTM needs input_forget = 0 and layout = 0"


def _restrict_layernorm(node, graph: GraphIndex):
    if any(node.output[1:]):
        yield "error", "only the first output (Y) of LayerNormalization is supported"


def _restrict_dropout(node, graph: GraphIndex):
    training = graph.input(node, 2)
    if training is not None and (not graph.is_constant(training) or bool(np.asarray(graph.const(training)).any())):
        yield "error", "Dropout's `training_mode` must be a constant False (export the model in eval mode)"


def _restrict_if(node, graph: GraphIndex):
    then_branch, else_branch = graph.attr(node, "then_branch"), graph.attr(node, "else_branch")
    if then_branch is not None and else_branch is not None:
        shared = {o.name for o in then_branch.output} & {o.name for o in else_branch.output}
        if shared:
            yield "error", f"the two branches of If must name their outputs differently; both have {sorted(shared)}"


_RESTRICTIONS = {"Resize": _restrict_resize, "MaxPool": _restrict_pool, "AveragePool": _restrict_pool,
                 "LpPool": _restrict_pool, "TopK": _restrict_topk, "LSTM": _restrict_lstm,
                 "LayerNormalization": _restrict_layernorm, "Dropout": _restrict_dropout, "If": _restrict_if}


def _check_qdq(graph: GraphIndex, add) -> None:
    quant = [n for n in graph.nodes if n.op_type == "QuantizeLinear"]
    dequant = [n for n in graph.nodes if n.op_type == "DequantizeLinear"]
    if not quant and not dequant:
        return
    _finding(add, "info", "qdq", f"explicitly quantized: {len(quant)} QuantizeLinear and {len(dequant)} "
             f"DequantizeLinear nodes; build with precision int8 (strongly typed: the scales come from the graph, "
             f"no calibrator, no INT8 flag)")
    for node in quant + dequant:
        for level, message in qdq_node_problems(node, graph):
            _finding(add, level, "qdq", message, graph, node)


def _check_strong_typing(graph: GraphIndex, types: GraphTypes, add, path: str, precision: str | None,
                         dla: bool) -> None:
    """What a strongly typed build (TensorRT 11 always; mke on 10.x) makes of this graph's types."""
    kinds = ", ".join(sorted(types.float_types)) or "no float tensors"
    _finding(add, "info", "strong-typing", f"strongly typed, this graph builds as {types.computes_in} "
             f"(float types: {kinds}; Q/DQ: {'yes' if types.qdq else 'no'}): its own types decide the precision, "
             f"as TensorRT 11 has no FP16/INT8 builder flags")
    problem = precision_mismatch(types, precision, path) if precision else None
    if problem:
        _finding(add, "error", "strong-typing", problem)
    if dla and types.computes_in == "fp32":
        stem = model_stem(path)
        _finding(add, "warning", "dla-precision", f"a float32 graph keeps its FP32 types in a strongly typed network "
                 f"and DLA runs FP16 and INT8 only: no layer goes to DLA (with GPU fallback all run on the GPU, "
                 f"without it the build fails). Build DLA engines from {stem}.fp16.onnx or {stem}.int8.onnx")
    quantize = [n for n in graph.nodes if n.op_type == "QuantizeLinear"]
    value_types = _value_types(graph.model) if quantize else {}
    for node in quantize:
        x_type, scale_type = (value_types.get(graph.input(node, i)) for i in (0, 1))
        if x_type is None or scale_type is None or x_type == scale_type:
            continue
        x_name, scale_name = FLOAT_TYPES.get(x_type, str(x_type)), FLOAT_TYPES.get(scale_type, str(scale_type))
        if scale_type in HALF_TYPES:
            _finding(add, "error", "strong-typing", f"input {x_name} quantized with a {scale_name} scale: a strongly "
                     f"typed network needs a FLOAT16/BFLOAT16 scale to match its input (IQuantizeLayer, TensorRT "
                     f"10.3 and 11.1 alike); give the scale the input's type", graph, node)
        else:
            _finding(add, "error", "strong-typing", f"input {x_name} quantized with a {scale_name} scale: strongly "
                     f"typed TensorRT 10 needs the input and scale types to match (IQuantizeLayer, 10.3; TensorRT 11 "
                     f"accepts a FLOAT scale; ONNX allows the mix from opset 23); cast the scale to {x_name}",
                     graph, node)


def _value_types(model) -> dict[str, int]:
    """Element type of every tensor the graph declares or shape inference derives (subgraphs left out)."""
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference helps here, it is not required
        pass
    types = {t.name: t.data_type for t in model.graph.initializer}
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types.setdefault(value.name, value.type.tensor_type.elem_type)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types.setdefault(node.output[0], attr.t.data_type)
    return types


# --- DLA -------------------------------------------------------------------------------------------------------

def _check_dla(node, graph: GraphIndex, add) -> None:
    op = node.op_type
    if op in DLA_NEUTRAL or graph.in_subgraph(node) or node.domain not in ("", "ai.onnx"):
        return
    if all(graph.is_static(i) for i in node.input if i):
        return  # shape arithmetic, folded at build time
    reasons = list(_dla_problems(node, graph))
    if reasons:
        _finding(add, "warning", "dla-fallback", f"runs on the GPU, not DLA: {'; '.join(reasons)}", graph, node)


def _dla_problems(node, graph: GraphIndex):
    op = node.op_type
    if op in DLA_ACTIVATIONS or op in DLA_ELEMENTWISE or op in DLA_UNARY:
        return
    if op in DLA_REDUCE:
        yield (f"{op} is imported as a reduce layer (onnx-tensorrt's IReduceLayer, not pooling), which is not "
               f"among DLA's layers; where the map is at most 8×8, an AveragePool with that window can run on DLA "
               f"(ESANet splits its global pooling for this)")
    elif op in ("Div", "Pow"):
        yield f"DLA's element-wise layer runs only sum, sub, product, max and min; {op} falls back"
    elif op in ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Mean", "Mod"):
        yield f"{op} is not an element-wise operation DLA runs (sum, sub, product, max, min)"
    elif op in ("Exp", "Log", "Sqrt", "Neg", "Reciprocal", "Sin", "Cos", "Tan", "Floor", "Ceil", "Round", "Erf",
                "Not", "Sign", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"):
        yield f"DLA's unary layer runs only Abs; {op} falls back"
    elif op in ("LeakyRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Gelu",
                "Mish", "ThresholdedRelu", "ScaledTanh", "ParametricSoftplus"):
        yield (f"DLA's activation layer runs ReLU, Sigmoid, TanH and Clip (TensorRT 10.3 API notes; the current "
               f"DLA table adds Leaky ReLU); {op} falls back")
    elif op == "Gather":
        yield "the gather layer has no DLA support"
    elif op in ("Conv", "ConvTranspose"):
        yield from _dla_conv(node, graph)
    elif op in ("MaxPool", "AveragePool"):
        yield from _dla_pool(node, graph)
    elif op in ("Resize", "Upsample"):
        yield from _dla_resize(node, graph)
    elif op == "PRelu":
        if not graph.is_constant(graph.input(node, 1)):
            yield "PRelu's slopes must be a build-time constant on DLA"
    elif op == "Concat":
        rank = graph.ranks.get(node.input[0], 4)
        axis = graph.attr(node, "axis", 1)
        if (axis + rank if axis < 0 else axis) != rank - 3:
            yield f"DLA concatenates only along the channel axis (axis {rank - 3} here), not axis {axis}"
    elif op == "Softmax":
        rank = graph.ranks.get(node.input[0], 4)
        axis = graph.attr(node, "axis", -1 if (graph.opset or 13) >= 13 else 1)
        axis = axis + rank if axis < 0 else axis
        if axis == 0 or axis < rank - 3:
            yield f"DLA's softmax runs along the channel or spatial axes, not axis {axis}"
    elif op == "LRN":
        if graph.attr(node, "size", 0) not in (3, 5, 7, 9):
            yield f"DLA's LRN window must be 3, 5, 7 or 9, got {graph.attr(node, 'size')}"
    elif op == "Slice":
        yield from _dla_slice(node, graph)
    else:
        yield f"{op} is not among the layers DLA runs"


def _ints(value) -> list[int]:
    return [int(v) for v in (value or [])]


def _window(node, graph: GraphIndex, kernel: list[int]) -> tuple[list[int], list[int], list[int]]:
    """A convolution's or pooling's strides, dilations and pads, with ONNX's defaults filled in."""
    strides = _ints(graph.attr(node, "strides")) or [1] * len(kernel)
    dilations = _ints(graph.attr(node, "dilations")) or [1] * len(kernel)
    pads = _ints(graph.attr(node, "pads")) or [0] * (2 * len(kernel))
    return strides, dilations, pads


def _dla_conv(node, graph: GraphIndex):
    weight = graph.const(graph.weight_source(graph.input(node, 1)))
    kernel = _ints(graph.attr(node, "kernel_shape")) or (list(weight.shape[2:]) if weight is not None else [])
    strides, dilations, pads = _window(node, graph, kernel)
    group = int(graph.attr(node, "group", 1))
    if len(kernel) != 2:
        yield f"DLA runs 2D convolutions only; kernel {kernel}"
        return
    if node.op_type == "Conv":
        if any(not 1 <= k <= 32 for k in kernel):
            yield f"kernel {kernel} outside DLA's [1, 32]"
        if any(not 1 <= s <= 8 for s in strides):
            yield f"stride {strides} outside DLA's [1, 8]"
        if any(not 1 <= d <= 32 for d in dilations):
            yield f"dilation {dilations} outside DLA's [1, 32]"
        if any(not 0 <= p <= 31 for p in pads) or any(p >= kernel[i % 2] for i, p in enumerate(pads)):
            yield f"padding {pads} outside DLA's [0, 31] or not smaller than the kernel {kernel}"
        if group > 8192:
            yield f"{group} groups, above DLA's 8192"
        if weight is not None and weight.shape[0] > 8192:
            yield f"{weight.shape[0]} output channels, above DLA's 8192"
    else:
        wide = sorted(kernel) in ([1, 64], [1, 96], [1, 128])
        if any(not 1 <= k <= 32 for k in kernel) and not wide:
            yield f"deconvolution kernel {kernel} outside DLA's [1, 32] (or 1×64/96/128)"
        if any(not 1 <= s <= 32 for s in strides) and sorted(strides) not in ([1, 64], [1, 96], [1, 128]):
            yield f"deconvolution stride {strides} outside DLA's [1, 32]"
        if any(pads):
            yield f"deconvolution padding must be 0 on DLA, got {pads}"
        if group != 1:
            yield f"grouped deconvolution ({group} groups) is not supported on DLA"
        if weight is not None and weight.shape[1] * group > 8192:
            yield f"{weight.shape[1] * group} output channels, above DLA's 8192"


def _dla_pool(node, graph: GraphIndex):
    kernel = _ints(graph.attr(node, "kernel_shape"))
    strides, _, pads = _window(node, graph, kernel)
    if len(kernel) != 2:
        yield f"DLA pools in 2D only; kernel {kernel}"
        return
    if any(not 1 <= k <= 8 for k in kernel):
        yield f"pooling window {kernel} larger than DLA's 8×8"
    if any(not 1 <= s <= 16 for s in strides):
        yield f"pooling stride {strides} outside DLA's [1, 16]"
    if any(not 0 <= p <= 7 for p in pads):
        yield f"pooling padding {pads} outside DLA's [0, 7]"


def _dla_resize(node, graph: GraphIndex):
    """DLA runs resize with constant scales [1, 1, s, s] and a few (transformation, rounding) combinations;
    the mapping of ONNX attributes to TensorRT's is onnx-tensorrt's Resize importer (10.1-GA)."""
    mode = graph.attr(node, "mode", "nearest")
    if node.op_type == "Upsample" or (graph.opset or 11) < 11:
        transform, nearest, scales_name, sizes_name = "asymmetric", "floor", graph.input(node, 1), None
    else:
        transform = graph.attr(node, "coordinate_transformation_mode", "half_pixel")
        nearest = graph.attr(node, "nearest_mode", "round_prefer_floor")
        scales_name, sizes_name = graph.input(node, 2), graph.input(node, 3)
    if mode not in ("nearest", "linear"):
        yield f"DLA resizes nearest or linear only, not {mode}"
    elif mode == "nearest" and (transform, nearest) not in DLA_NEAREST_RESIZE:
        yield (f"nearest resize on DLA needs (asymmetric, floor) or (half_pixel, round_prefer_floor/ceil); "
               f"got ({transform}, {nearest})")
    elif mode == "linear" and transform not in ("half_pixel", "pytorch_half_pixel"):
        yield f"linear resize on DLA needs half_pixel coordinates, got {transform}"
    if sizes_name is not None:
        yield ("the output size is given as `sizes` (an output shape, or computed at run time); DLA needs "
               "constant `scales` [1, 1, s, s]")
        return
    scales = graph.const(scales_name)
    if scales is None:
        yield "the scales are computed at run time; DLA needs constant scales [1, 1, s, s]"
        return
    scales = [float(s) for s in np.asarray(scales).reshape(-1)]
    limit = 32 if mode == "nearest" else 4
    if len(scales) != 4 or scales[:2] != [1.0, 1.0] or any(
            s != int(s) or not 1 <= s <= limit for s in scales[2:]):
        yield f"scales {scales}: DLA needs [1, 1, s, s] with integer s in [1, {limit}] for {mode} resize"


def _dla_slice(node, graph: GraphIndex):
    params = [graph.input(node, i) for i in range(1, 5)]
    if any(p is not None and not graph.is_constant(p) for p in params):
        yield "DLA slices with build-time constant starts, ends, axes and steps only"
        return
    axes, steps = graph.const(params[2]), graph.const(params[3])
    rank = graph.ranks.get(node.input[0], 4)
    if rank != 4:
        yield f"DLA slices 4D tensors only; this one has rank {rank}"
    if steps is not None and np.any(np.asarray(steps) != 1):
        yield f"DLA slices with stride 1 only; steps {np.asarray(steps).tolist()}"
    axes = list(range(len(graph.const(params[0])))) if axes is None else [int(a) + rank if a < 0 else int(a)
                                                                          for a in np.asarray(axes).reshape(-1)]
    if 0 in axes:
        yield "DLA does not slice along the first (batch) dimension"
