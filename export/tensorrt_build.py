"""ONNX → TensorRT engine with the TensorRT 10 or 11 Python API, written in the MKE engine container.

Engines are built where they run (the Jetson): a plan is tied to the TensorRT release and GPU that
built it. Every network is strongly typed — the only kind TensorRT 11 builds, and the kind built here
on 10.x too (JetPack 6 ships 10.3) — so one code path serves both and no precision flag is ever set:
the precision is in the graph. FP16 engines are built from the FP16 ONNX (`<model>.fp16.onnx`, made
by `mke.export.onnx_fp16.onnx_to_fp16`), INT8 engines from the Q/DQ ONNX (`<model>.int8.onnx`, the
workstation calibrates with `mke-export --int8`; TensorRT 10.1 deprecated the implicit calibrators,
TensorRT 11 removed them with BuilderFlag.FP16/INT8). A graph whose types do not give the precision
asked for is refused before TensorRT is touched (`mke.export.trt_readiness.precision_mismatch`).

`tensorrt`, `pycuda`, `cuda-python` and `torch` are imported lazily, where they are needed, so this
module imports on a machine with none of them (the ONNX files are still written there).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import numpy as np

from mke.calib.samples import load_onnx, model_inputs
from mke.export.trt_readiness import GraphTypes, graph_types, model_stem, precision_mismatch
from mke.runtime.engine_file import PRECISIONS, engine_name, gpu_slug, write_engine
from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path, file_sha256
from mke.runtime.onnxrt import ort_session
from mke.runtime.spec import ModelSpec
from mke.runtime.tensorrt import RUNTIME_PROBES, PycudaMemory, TrtRunner, capturing_logger, has_module
from mke.runtime.tensorrt import gpu_info as runtime_gpu_info, import_tensorrt as runtime_import_tensorrt

log = logging.getLogger("mke.export.tensorrt")

NOT_INSTALLED = ("TensorRT is not installed here: ONNX files were written; build engines on the Jetson with "
                 "`mke-export <out>/student.onnx --fp16` (or --int8; no PyTorch needed there), where JetPack 6 provides "
                 "TensorRT 10 and its Python bindings "
                 "(a workstation with TensorRT 10 or 11 builds them the same way)")
SPEC_KEY = "mke_spec"  # the ONNX metadata_props key mke-export writes (mke.runtime.onnx_spec)


@dataclass(frozen=True)
class BuildOptions:
    """How to build one engine. `batch` = (min, opt, max) for inputs whose batch dimension is dynamic."""

    precision: str = "fp16"
    batch: tuple[int, int, int] | None = None
    workspace_mib: int = 1024
    timing_cache: Path | None = None          # loaded before and saved after the build; default: beside the engine
    dla_core: int | None = None               # run on this DLA core (Jetson AGX Orin has 0 and 1)
    gpu_fallback: bool = True                 # layers DLA cannot run go to the GPU instead of failing the build
    version_compatible: bool = False          # plan also runs on later releases of its major (slower, lean runtime)
    exclude_lean_runtime: bool = False        # leave the lean runtime out of a version-compatible plan

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise MkeError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.batch is not None:
            b = tuple(self.batch)
            if len(b) != 3 or not all(isinstance(v, int) and v >= 1 for v in b) or not b[0] <= b[1] <= b[2]:
                raise MkeError(f"batch must be three integers min <= opt <= max, each >= 1; got {self.batch!r}")
        if self.workspace_mib < 16:
            raise MkeError(f"workspace_mib must be at least 16 (MiB), got {self.workspace_mib}")
        if self.dla_core is not None:
            if self.dla_core < 0:
                raise MkeError(f"dla_core must be a DLA core number (0, 1), got {self.dla_core}")
            if self.precision == "fp32":
                raise MkeError("DLA runs FP16 or INT8 only: build with precision fp16 or int8, or without dla_core")
            if self.batch is not None and len(set(self.batch)) != 1:
                raise MkeError(f"DLA does not support dynamic shapes: give one batch size (min = opt = max), "
                               f"got {self.batch}")
        if self.exclude_lean_runtime and not self.version_compatible:
            raise MkeError("exclude_lean_runtime only applies to a version-compatible build (version_compatible=True)")


def import_tensorrt():
    """The tensorrt module, or the one-line MkeError that says where engines get built."""
    return runtime_import_tensorrt(NOT_INSTALLED)


def gpu_info(device: int = 0) -> tuple[str, str]:
    """(device name, compute capability "8.7") via pycuda, cuda-python or torch, whichever works here."""
    return runtime_gpu_info(device, probes=RUNTIME_PROBES + (_gpu_via_torch,))


def _gpu_via_torch(device: int):
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


def onnx_facts(onnx_path: str | Path) -> dict:
    """What the build needs from the ONNX file: its spec, hash, inputs (-1 for a dynamic dimension),
    whether it has Q/DQ, and its float types (`types`, a GraphTypes: what a strongly typed build makes
    of it, `computes_in` "fp32" | "fp16" | "int8")."""
    path = Path(onnx_path)
    proto = load_onnx(path, load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    inputs = {name: [-1 if d is None else d for d in i.shape] for name, i in model_inputs(proto).items()}
    types: GraphTypes = graph_types(proto)
    return {"spec": meta.get(SPEC_KEY), "sha256": file_sha256(path), "inputs": inputs,
            "qdq": types.qdq, "types": types, "computes_in": types.computes_in}


def profile_shapes(inputs: Mapping[str, list[int]], batch: tuple[int, int, int] | None) -> dict[str, tuple]:
    """(min, opt, max) shapes for the inputs with a dynamic dimension; only the batch (dim 0) may be dynamic."""
    shapes = {}
    for name, dims in inputs.items():
        dims = [int(d) for d in dims]
        if all(d >= 0 for d in dims):
            continue
        if any(d < 0 for d in dims[1:]):
            raise MkeError(f"input '{name}' has dynamic dimensions {dims} beyond the batch: export the ONNX with a "
                           f"fixed size (the spec's height and width) so TensorRT can tune for it")
        if batch is None:
            raise MkeError(f"input '{name}' has a dynamic batch {dims}: TensorRT needs an optimization profile; "
                           f"pass batch=(min, opt, max), e.g. (1, 1, 4)")
        shapes[name] = tuple(tuple([b] + dims[1:]) for b in batch)
    return shapes


def default_model_name(onnx_path: Path) -> str:
    """"student.int8.onnx" → "student": the precision goes into the engine name once, by engine_name."""
    return model_stem(onnx_path)


def build_engine(onnx_path: str | Path, out_dir: str | Path | None = None, options: BuildOptions = BuildOptions(), *,
                 spec: ModelSpec | None = None, model_name: str | None = None) -> Path:
    """Parse the ONNX, configure the builder, build, and write `<model>.<precision>.trt<ver>.<gpu>.engine`."""
    onnx_path = Path(onnx_path)
    out_dir = Path(out_dir) if out_dir is not None else onnx_path.parent
    facts = onnx_facts(onnx_path)
    if spec is None:
        if not facts["spec"]:
            raise MkeError(f"{onnx_path} carries no MKE model spec (metadata key '{SPEC_KEY}'): export it with "
                           f"mke-export, or pass spec=")
        spec = ModelSpec.from_json(facts["spec"], str(onnx_path))
    problem = precision_mismatch(facts["types"], options.precision, onnx_path)
    if problem:
        raise MkeError(problem)
    profile = profile_shapes(facts["inputs"], options.batch)

    trt = import_tensorrt()
    gpu, cc = gpu_info()
    logger = capturing_logger(trt)
    builder, network, _parser = _parse_onnx(trt, logger, onnx_path)  # the parser owns weights the network uses
    config = _configure(trt, builder, options, profile, gpu)
    cache_path = Path(options.timing_cache) if options.timing_cache else \
        out_dir / f"timing.trt{trt.__version__}.{gpu_slug(gpu)}.cache"
    _load_timing_cache(config, cache_path)

    log.info("building %s engine from %s on %s (TensorRT %s)", options.precision, onnx_path.name, gpu, trt.__version__)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        hint = (f". It was a DLA build of a strongly typed network: build without dla_core to run it on the GPU "
                f"(TensorRT {trt.__version__})") if options.dla_core is not None else ""
        raise MkeError(f"TensorRT could not build an engine from {onnx_path.name}: "
                       + ("; ".join(logger.errors[-5:]) or "no error was logged") + hint)
    _save_timing_cache(config, cache_path)
    header = {
        "spec": json.loads(spec.to_json()),
        "precision": options.precision,
        "strongly_typed": True,
        "tensorrt_version": trt.__version__,
        "gpu": gpu,
        "compute_capability": cc,
        "dla_core": options.dla_core,
        "version_compatible": options.version_compatible,
        "exclude_lean_runtime": options.exclude_lean_runtime,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "onnx_sha256": facts["sha256"],
        "onnx_file": onnx_path.name,
        "profile": {name: [list(s) for s in shapes] for name, shapes in profile.items()} or None,
    }
    name = engine_name(model_name or default_model_name(onnx_path), options.precision, trt.__version__, gpu,
                       options.dla_core)
    return write_engine(out_dir / name, bytes(memoryview(plan)), header)


def network_flags(trt) -> int:
    """`create_network` flags for a strongly typed network on TensorRT 10 and 11 alike.

    TensorRT 10.x: NetworkDefinitionCreationFlag.STRONGLY_TYPED has the value 1 (0 is the ignored
    EXPLICIT_BATCH), so the flags are 1 << 1. TensorRT 11.x: strong typing is always on and
    STRONGLY_TYPED is deprecated, ignored and renumbered to 0 (value 1 is now PREFER_JIT_PYTHON_PLUGINS),
    so the bit is taken from the enum, never hard-coded; a release without the member gets 0."""
    flag = getattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def builder_flags(options: BuildOptions) -> list[str]:
    """Names of the trt.BuilderFlag members a build sets: never a precision flag (FP16, INT8, BF16, FP8 … and
    OBEY/PREFER_PRECISION_CONSTRAINTS are gone in TensorRT 11; a strongly typed network takes its precision
    from the graph). Every name here exists in the Python bindings of 10.3 and 11.1."""
    flags = []
    if options.dla_core is not None and options.gpu_fallback:
        flags.append("GPU_FALLBACK")
    if options.version_compatible:
        flags.append("VERSION_COMPATIBLE")
        if options.exclude_lean_runtime:
            flags.append("EXCLUDE_LEAN_RUNTIME")
    return flags


def _parse_onnx(trt, logger, onnx_path: Path):
    """Builder, a strongly typed network (explicit batch is the only mode since TensorRT 10), parser."""
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errors = [_parser_error_text(parser.get_error(i)) for i in range(parser.num_errors)]
        raise MkeError(f"TensorRT's ONNX parser rejected {onnx_path.name} with {len(errors)} error(s): "
                       + "; ".join(errors) + ". `mke.export.trt_readiness.check_onnx` reports such problems node by "
                       "node without a GPU")
    return builder, network, parser


def _configure(trt, builder, options: BuildOptions, profile: dict, gpu: str):
    """Workspace, the optimization profile, DLA and version compatibility — no precision: the network's
    types carry it. Every call here exists in the Python bindings of TensorRT 10.3 and 11.1."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if profile:
        opt_profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            opt_profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(opt_profile)
    if options.dla_core is not None:
        cores = builder.num_DLA_cores
        if options.dla_core >= cores:
            raise MkeError(f"DLA core {options.dla_core} requested but {gpu} has {cores} DLA core(s)"
                           + (" (DLA exists on Jetson AGX/NX Orin and Xavier, with the TensorRT 10 of JetPack 6; "
                              "TensorRT 11 has it from 11.4.1, on AGX Orin with JetPack 7.2.2 or later)"
                              if cores == 0 else ""))
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
    for name in builder_flags(options):
        config.set_flag(getattr(trt.BuilderFlag, name))
    return config


def _parser_error_text(error) -> str:
    """One parser error: node name and operator when TensorRT reports them (IParserError, 9.1+)."""
    try:
        node, op, desc = error.node_name(), error.node_operator(), error.desc()
        where = f"node '{node}' ({op})" if node or op else f"node #{error.node()}"
        return f"{where}: {desc} [{error.code()}]"
    except AttributeError:
        return str(error)


def _load_timing_cache(config, path: Path) -> None:
    """Reuse kernel timings across builds: a cache from another TensorRT or GPU is ignored, not trusted."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        log.warning("timing cache %s does not match this TensorRT/GPU; starting an empty one", path)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _save_timing_cache(config, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(memoryview(config.get_timing_cache().serialize()))


# --- running an engine, to verify it against ONNX Runtime or PyTorch -------------------------------------------

def engine_runner(engine_path: str | Path, device: int = 0) -> TrtRunner:
    """The runtime's TensorRT runner (`mke.runtime.tensorrt.TrtRunner`) as a workstation runs it: this
    module's "where to build" message, the GPU identified by pycuda, cuda-python or torch, and device
    memory from pycuda or, where pycuda is absent, from torch CUDA tensors."""
    return TrtRunner(engine_path, device, tensorrt=import_tensorrt, gpu=gpu_info, memory=_memory_pool)


def _memory_pool(device: int):
    return PycudaMemory(device) if has_module("pycuda") else _TorchMemory(device)


class _TorchMemory:
    """TensorRT's buffers as torch CUDA tensors on one torch stream: `PycudaMemory`'s methods, for a
    workstation that has torch and no pycuda."""

    def __init__(self, device: int):
        import torch

        if not torch.cuda.is_available():
            raise MkeError("neither pycuda nor a CUDA build of torch is available to hold TensorRT's buffers; "
                           "install pycuda (pip extra mke-edge[gpu])")
        self._torch, self._device = torch, torch.device("cuda", device)
        self._stream = torch.cuda.Stream(self._device)
        self.stream_handle = self._stream.cuda_stream

    def upload(self, tensor, array: np.ndarray) -> None:
        with self._torch.cuda.stream(self._stream):
            tensor.copy_(self._torch.from_numpy(array))  # TrtRunner made it contiguous

    def empty(self, shape, dtype):
        torch_dtype = self._torch.from_numpy(np.empty(0, dtype)).dtype
        with self._torch.cuda.stream(self._stream):  # allocated for the stream TensorRT writes on
            return self._torch.empty(shape, dtype=torch_dtype, device=self._device)

    def pointer(self, tensor) -> int:
        return tensor.data_ptr()

    def to_host(self, tensor) -> np.ndarray:
        self._stream.synchronize()
        return tensor.cpu().numpy()

    def synchronize(self) -> None:
        self._stream.synchronize()

    def close(self) -> None:
        pass


def compare_outputs(actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], *,
                    atol: float = 1e-2, rtol: float = 1e-2) -> dict:
    """Per output: max absolute / relative error, agreement of the class argmax (dim 1), and pass/fail."""
    report = {}
    for name, ref in expected.items():
        if name not in actual:
            raise MkeError(f"output '{name}' is missing from the engine's outputs {sorted(actual)}")
        got, ref = np.asarray(actual[name], np.float64), np.asarray(ref, np.float64)
        if got.shape != ref.shape:
            raise MkeError(f"output '{name}' has shape {got.shape}, the reference {ref.shape}")
        diff = np.abs(got - ref)
        entry = {"max_abs": float(diff.max(initial=0.0)),
                 "max_rel": float((diff / np.maximum(np.abs(ref), 1e-6)).max(initial=0.0)),
                 "within_tolerance": bool(np.allclose(got, ref, atol=atol, rtol=rtol))}
        if ref.ndim >= 2 and ref.shape[1] > 1:
            entry["argmax_agreement"] = float((got.argmax(1) == ref.argmax(1)).mean())
        report[name] = entry
    return report


def verify_engine(engine_path: str | Path, onnx_path: str | Path, feeds: Mapping[str, np.ndarray], *,
                  atol: float = 1e-2, rtol: float = 1e-2) -> dict:
    """Run the engine and ONNX Runtime (CPU) on the same inputs; compare_outputs' report, per output."""
    session = ort_session(onnx_path)
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(names, dict(feeds))))
    with engine_runner(engine_path) as runner:
        actual = runner.infer(feeds)
    return compare_outputs(actual, expected, atol=atol, rtol=rtol)
