"""The TensorRT layer the runtime and mke.export share: import, GPU identity, logging, device memory,
and the one runner for MKE engine files (`mke.runtime.engine_file`).

Written for the Jetson (JetPack 6: TensorRT 10.3, pycuda) and for TensorRT 11 alike: every call here
(Runtime, deserialize_cuda_engine, the name-based tensor API — get_tensor_name / get_tensor_mode /
get_tensor_dtype / get_tensor_shape / set_input_shape / set_tensor_address — and execute_async_v3)
is in the Python bindings of 10.3 and 11.1; none of the calls TensorRT 10 or 11 removed (the
binding-index API, execute_async_v2, platform_has_fast_fp16) is used. Never run where this was
written (no GPU).
The engine's header is checked against this machine's TensorRT and GPU before the plan is handed to
TensorRT, so a mismatched engine gets a rebuild instruction instead of a crash. What differs between
the robot and a workstation — how TensorRT's absence is explained, how the GPU is identified, where
device buffers come from — is passed to `TrtRunner`; mke.export passes its torch-based ones.
`tensorrt`, `pycuda` and `cuda-python` are imported where they are needed: this module imports
without any of them, and never imports torch.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from mke.runtime.engine_file import check_engine_compatible, engine_spec, read_engine
from mke.runtime.errors import MkeError
from mke.runtime.live.backends.base import Runner, TensorMeta

log = logging.getLogger("mke.runtime.tensorrt")

NOT_INSTALLED = ("TensorRT is not installed here: run the .onnx model with ONNX Runtime instead "
                 "(--backend onnxruntime), or install TensorRT 10 or 11 (JetPack 6 ships 10.3; "
                 "pip extra mke-edge[gpu])")
SUPPORTED_MAJORS = (10, 11)  # strongly typed networks and the name-based tensor API in both


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def check_tensorrt_version(version: str) -> None:
    """Refuse a TensorRT whose major release MKE was not written for (before 10: the binding API and
    implicit batch; after 11: unknown), with what to install instead."""
    major = str(version).split(".", 1)[0]
    if not major.isdigit() or int(major) not in SUPPORTED_MAJORS:
        raise MkeError(f"MKE engines are built and run with TensorRT 10.x or 11.x and this machine has TensorRT "
                       f"{version}; install TensorRT 10 (JetPack 6 ships 10.3) or 11 (pip extra mke-edge[gpu])")


def import_tensorrt(not_installed: str = NOT_INSTALLED):
    """The tensorrt module (10.x or 11.x), or an MkeError: `not_installed` when it is absent."""
    try:
        import tensorrt as trt
    except ImportError:
        raise MkeError(not_installed) from None
    check_tensorrt_version(trt.__version__)
    return trt


# --- which GPU: probes return (name, compute capability "8.7"), None when they see no GPU ----------------------

def gpu_via_pycuda(device: int):
    import pycuda.driver as cuda

    cuda.init()
    dev = cuda.Device(device)
    major, minor = dev.compute_capability()
    return dev.name(), f"{major}.{minor}"


def gpu_via_cuda_python(device: int):
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    err, prop = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0:
        raise RuntimeError(f"cudaGetDeviceProperties returned {err}")
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return name.split("\x00", 1)[0].strip(), f"{prop.major}.{prop.minor}"


RUNTIME_PROBES = (gpu_via_pycuda, gpu_via_cuda_python)


def gpu_info(device: int = 0, probes=RUNTIME_PROBES) -> tuple[str, str]:
    """(device name, compute capability "8.7") from the first probe that works here; a probe whose
    library is missing (ImportError) is skipped."""
    failures = []
    for probe in probes:
        try:
            found = probe(device)
        except ImportError:
            continue
        except Exception as exc:  # driver errors: no GPU, no driver, device index out of range
            failures.append(f"{probe.__name__.split('gpu_via_')[-1]}: {exc.__class__.__name__}: {exc}")
            continue
        if found:
            return found
    raise MkeError("no CUDA GPU is visible" + (f" ({'; '.join(failures)})" if failures else "")
                   + ": engines are built and run on the machine with the GPU (the Jetson), with pycuda installed "
                   "(pip extra mke-edge[gpu])")


def capturing_logger(trt):
    """A trt.ILogger that forwards to Python logging and keeps errors for the MkeError message."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(msg)
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    return Logger()


class PycudaMemory:
    """Page-locked host buffers, device buffers and one CUDA stream in the device's primary context.

    A buffer is (device allocation, page-locked host array of the same shape); `TrtRunner` allocates
    one per tensor and shape and reuses it frame after frame (cudaMalloc / cudaHostAlloc take far longer
    than a small model's inference). Any object with the same methods (`empty`, `upload`, `pointer`,
    `to_host`, `synchronize`, `close`, `stream_handle`) can hold the buffers instead."""

    def __init__(self, device: int):
        try:
            import pycuda.driver as cuda
        except ImportError:
            raise MkeError("pycuda is not installed: TensorRT's device buffers come from it "
                           "(pip install pycuda, or the extra mke-edge[gpu])") from None
        cuda.init()
        self._cuda = cuda
        self._ctx = cuda.Device(device).retain_primary_context()  # the context TensorRT's runtime API uses
        self._ctx.push()
        self._stream = cuda.Stream()
        self.stream_handle = self._stream.handle

    def empty(self, shape, dtype):
        host = self._cuda.pagelocked_empty(shape, dtype)  # async copies need page-locked memory
        return self._cuda.mem_alloc(max(host.nbytes, 1)), host

    def upload(self, buffer, array: np.ndarray) -> None:
        buffer[1][...] = array
        self._cuda.memcpy_htod_async(buffer[0], buffer[1], self._stream)

    def pointer(self, buffer) -> int:
        return int(buffer[0])

    def to_host(self, buffer) -> np.ndarray:
        self._cuda.memcpy_dtoh_async(buffer[1], buffer[0], self._stream)
        return buffer[1]

    def synchronize(self) -> None:
        self._stream.synchronize()

    def close(self) -> None:
        self._ctx.pop()


class TrtRunner(Runner):
    """Runs an MKE engine file on GPU `device`: infer({input: array}) → {output: array}.

    `tensorrt()` returns the tensorrt module (or raises the MkeError that fits where it runs),
    `gpu(device)` identifies the GPU for the engine-header check, `memory(device)` makes the buffer pool
    (`PycudaMemory` by default). mke.export passes its own three (torch probe, torch-held buffers)."""

    def __init__(self, engine_path: str | Path, device: int = 0, *, tensorrt: Callable = import_tensorrt,
                 gpu: Callable[[int], tuple[str, str]] = gpu_info, memory: Callable = PycudaMemory):
        self.engine_path, self.device = Path(engine_path), device
        self.name = self.engine_path.name
        self._import_tensorrt, self._gpu_info, self._memory_pool = tensorrt, gpu, memory
        self.header: dict | None = None
        self._runtime = self._engine = self._context = self._memory = None
        self._buffers: dict[str, tuple[tuple, np.dtype, object]] = {}  # tensor → (shape, dtype, buffer), reused

    def _activate_impl(self) -> None:
        trt = self._import_tensorrt()
        header, plan = read_engine(self.engine_path)
        gpu, cc = self._gpu_info(self.device)
        check_engine_compatible(header, trt.__version__, gpu, cc, source=str(self.engine_path))
        self.spec = engine_spec(header, str(self.engine_path))
        self._memory = self._memory_pool(self.device)
        try:
            self._runtime = trt.Runtime(capturing_logger(trt))
            if header.get("version_compatible") and not header.get("exclude_lean_runtime"):
                self._runtime.engine_host_code_allowed = True  # the plan embeds the lean runtime; our own build
            if header.get("dla_core") is not None:
                self._runtime.DLA_core = header["dla_core"]
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                raise MkeError(f"TensorRT could not deserialize {self.engine_path}; rebuild it on this machine")
            self._context = self._engine.create_execution_context()
        except BaseException:
            self._deactivate_impl()
            raise
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [(n, np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))))
                         for n in names if n not in self._inputs]
        self._trt, self.header = trt, header
        self.description = (f"TensorRT {trt.__version__} on {gpu} ({header['precision']}"
                            f"{', DLA core %d' % header['dla_core'] if header.get('dla_core') is not None else ''})")

    def _input_metadata_impl(self) -> dict[str, TensorMeta]:
        engine = self._engine
        return {n: TensorMeta(np.dtype(self._trt.nptype(engine.get_tensor_dtype(n))),
                              tuple(None if d < 0 else int(d) for d in engine.get_tensor_shape(n)))
                for n in self._inputs}

    def _buffer(self, name: str, shape: tuple, dtype: np.dtype):
        """The tensor's buffer for this shape: allocated on first use or when the shape changes, then reused."""
        cached = self._buffers.get(name)
        if cached is None or cached[0] != shape or cached[1] != dtype:
            cached = (shape, dtype, self._memory.empty(shape, dtype))
            self._buffers[name] = cached
        self._context.set_tensor_address(name, self._memory.pointer(cached[2]))
        return cached[2]

    def _infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        engine, ctx, mem = self._engine, self._context, self._memory
        for name in self._inputs:
            array = np.ascontiguousarray(feeds[name])  # Runner.infer checked the dtype
            if not ctx.set_input_shape(name, array.shape):
                raise MkeError(f"input '{name}' shape {array.shape} is outside the engine's profile "
                               f"{engine.get_tensor_profile_shape(name, 0)}")
            mem.upload(self._buffer(name, array.shape, array.dtype), array)
        outputs = {name: self._buffer(name, tuple(ctx.get_tensor_shape(name)), dtype) for name, dtype in self._outputs}
        if not ctx.execute_async_v3(mem.stream_handle):
            raise MkeError(f"TensorRT failed to run {self.engine_path.name}")
        result = {name: mem.to_host(buf) for name, buf in outputs.items()}
        mem.synchronize()
        return {name: np.array(arr, copy=True) for name, arr in result.items()}

    def _deactivate_impl(self) -> None:
        self._buffers.clear()
        self._context = self._engine = self._runtime = None
        if self._memory is not None:
            self._memory.close()
            self._memory = None
