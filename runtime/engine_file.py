"""TensorRT engine files that carry their model spec, so the robot needs nothing but the engine.

A bare TensorRT plan says nothing about its inputs' preprocessing, its classes or which TensorRT and
GPU built it. An MKE engine file puts that in front of the plan (all integers little-endian):

    b"MKETRT01"                    8 bytes, the magic
    uint32 N                       4 bytes, length of the header
    N bytes of UTF-8 JSON          {"spec": {...}, "precision": "fp16", "tensorrt_version": "10.3.0", ...}
    the serialized TensorRT plan   the rest of the file; its length is in the header ("plan_bytes")

Reading needs neither torch nor tensorrt: the runtime checks the header against the machine before
it hands the plan to TensorRT, and says what to rebuild instead of failing inside deserialization.
"""
from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path
from mke.runtime.spec import ModelSpec

MAGIC = b"MKETRT01"
_LENGTH = struct.Struct("<I")
PREFIX_BYTES = len(MAGIC) + _LENGTH.size
MAX_HEADER_BYTES = 16 << 20  # a spec is a few KiB; anything near this is not an MKE header
PRECISIONS = ("fp32", "fp16", "int8")
REQUIRED_FIELDS = ("spec", "precision", "tensorrt_version", "gpu", "compute_capability")
PRECISION_FLAGS = {"fp16": " --fp16", "int8": " --int8", "fp32": ""}


def write_engine(path: str | os.PathLike, plan: bytes, header: dict) -> Path:
    """Write `plan` behind `header` atomically; `plan_bytes` is filled in so truncation is detectable."""
    if not plan:
        raise MkeError(f"refusing to write {path}: the TensorRT plan is empty")
    header = dict(header, plan_bytes=len(plan))
    _check_header(header, f"engine header for {path}")
    blob = json.dumps(header, sort_keys=False).encode("utf-8")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(_LENGTH.pack(len(blob)))
        f.write(blob)
        f.write(memoryview(plan))
    return path


def read_header(path: str | os.PathLike) -> dict:
    """Only the header: enough to check compatibility without reading a plan of tens of MiB."""
    path = Path(path)
    with _open(path) as f:
        header, _ = _read_prefix_and_header(f, path)
    return header


def read_engine(path: str | os.PathLike) -> tuple[dict, bytes]:
    """(header, plan bytes); an MkeError names what is wrong with a foreign, truncated or damaged file."""
    path = Path(path)
    with _open(path) as f:
        header, _ = _read_prefix_and_header(f, path)
        plan = f.read()
    expected = header["plan_bytes"]
    if len(plan) < expected:
        raise MkeError(f"{path} is truncated: its header announces a {expected}-byte TensorRT plan but only "
                       f"{len(plan)} bytes follow; copy the file again or rebuild it")
    if len(plan) > expected:
        raise MkeError(f"{path} has {len(plan) - expected} unexpected bytes after its {expected}-byte TensorRT plan; "
                       f"the file was damaged or appended to: copy it again or rebuild it")
    return header, plan


def engine_spec(header: dict, source: str = "engine header") -> ModelSpec:
    """The model spec the header carries, validated like any other spec."""
    return ModelSpec.from_json(json.dumps(header["spec"]), source)


def check_engine_compatible(header: dict, tensorrt_version: str, gpu: str, compute_capability: str, *,
                            source: str = "engine", allow_other_gpu_model: bool = False) -> None:
    """Refuse, with a rebuild instruction, a plan this machine's TensorRT or GPU cannot run.

    TensorRT plans are tied to the TensorRT version that built them, unless built version-compatible
    (BuilderFlag.VERSION_COMPATIBLE, TensorRT >= 8.6): such a plan also runs on *later* TensorRT
    releases of the same major version, never on an earlier one. Either way a plan is tied to the GPU
    architecture (compute capability); across GPU models of one architecture TensorRT only warns
    that performance or correctness may suffer, so that is refused too unless `allow_other_gpu_model`.
    """
    built_version, built_gpu = str(header["tensorrt_version"]), str(header["gpu"])
    built_cc = str(header["compute_capability"])
    built = _version_tuple(built_version, f"{source}: tensorrt_version")
    here = _version_tuple(tensorrt_version, "this machine's TensorRT version")
    problems = []
    if header.get("version_compatible"):
        if here[0] != built[0]:
            problems.append(f"it is version-compatible only within TensorRT {built[0]}.x, and this machine has "
                            f"TensorRT {tensorrt_version}")
        elif here[:3] < built[:3]:
            problems.append(f"a version-compatible plan runs on the TensorRT that built it or a later one, and "
                            f"this machine's TensorRT {tensorrt_version} is older than {built_version}")
    elif not _same_release(built, here):
        problems.append(f"a plan runs only on the TensorRT release that built it ({built_version}), and this machine "
                        f"has {tensorrt_version}")
    if _norm_cc(built_cc) != _norm_cc(compute_capability):
        problems.append(f"it holds kernels for compute capability {built_cc} and this GPU has {compute_capability}")
    elif gpu_slug(built_gpu) != gpu_slug(gpu) and not allow_other_gpu_model:
        problems.append(f"it was tuned for {built_gpu} and this GPU is {gpu} (same architecture: TensorRT warns "
                        f"that such a plan may run slowly or fail)")
    if problems:
        flag = PRECISION_FLAGS.get(header.get("precision"), "")
        raise MkeError(f"{source} was built for TensorRT {built_version} on {built_gpu} (compute {built_cc}); this "
                       f"machine has TensorRT {tensorrt_version} on {gpu} (compute {compute_capability}): "
                       f"{'; '.join(problems)}. Rebuild it on this machine with `mke-export <run>{flag}` "
                       f"(it rebuilds from the ONNX files the export wrote)")


def engine_name(model: str, precision: str, trt_version: str, gpu: str, dla_core: int | None = None) -> str:
    """E.g. "student.fp16.trt10.3.0.orin.engine": a file name that says what can load the engine."""
    if precision not in PRECISIONS:
        raise MkeError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    version = ".".join(str(p) for p in _version_tuple(trt_version, "TensorRT version")[:3])
    model_slug = re.sub(r"[^A-Za-z0-9_-]+", "-", model).strip("-") or "model"
    dla = f".dla{int(dla_core)}" if dla_core is not None else ""
    return f"{model_slug}.{precision}.trt{version}.{gpu_slug(gpu)}{dla}.engine"


def gpu_slug(name: str) -> str:
    """"NVIDIA GeForce RTX 3080" → "geforce-rtx-3080"; "Orin" → "orin"."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slug = re.sub(r"^nvidia-", "", slug)
    return slug or "gpu"


def _open(path: Path):
    if not path.is_file():
        raise MkeError(f"engine file {path} does not exist" if not path.exists() else f"{path} is not a file")
    return open(path, "rb")


def _read_prefix_and_header(f, path: Path) -> tuple[dict, int]:
    prefix = f.read(PREFIX_BYTES)
    if not prefix:
        raise MkeError(f"{path} is empty (0 bytes): an interrupted copy? Copy it again or rebuild it")
    if prefix[:len(MAGIC)] != MAGIC[:len(prefix)]:
        raise MkeError(f"{path} is not an MKE engine file: expected the magic bytes {MAGIC!r} at its start, found "
                       f"{prefix[:len(MAGIC)]!r}. A bare TensorRT plan (e.g. from trtexec --saveEngine) carries no "
                       f"model spec; build the engine with `mke-export <model>.onnx --fp16` (or --int8)")
    if len(prefix) < PREFIX_BYTES:
        raise MkeError(f"{path} is truncated: {len(prefix)} bytes, but an MKE engine file starts with "
                       f"{PREFIX_BYTES} (magic and header length)")
    (length,) = _LENGTH.unpack(prefix[len(MAGIC):])
    if length == 0 or length > MAX_HEADER_BYTES:
        raise MkeError(f"{path} has a damaged header: it announces {length} header bytes (expected 1 to "
                       f"{MAX_HEADER_BYTES}); copy the file again or rebuild it")
    blob = f.read(length)
    if len(blob) < length:
        raise MkeError(f"{path} is truncated inside its header: {len(blob)} of {length} header bytes present")
    try:
        header = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MkeError(f"{path} has a damaged header (not UTF-8 JSON: {exc}); "
                       f"copy the file again or rebuild it") from None
    _check_header(header, str(path))
    if not isinstance(header.get("plan_bytes"), int) or header["plan_bytes"] <= 0:
        raise MkeError(f"{path} has a damaged header: 'plan_bytes' must be a positive integer, "
                       f"found {header.get('plan_bytes')!r}")
    return header, length


def _check_header(header: dict, source: str) -> None:
    if not isinstance(header, dict):
        raise MkeError(f"{source}: the header must be a JSON object, found {type(header).__name__}")
    missing = [k for k in REQUIRED_FIELDS if header.get(k) in (None, "")]
    if missing:
        raise MkeError(f"{source}: the header lacks {', '.join(missing)} (needs {', '.join(REQUIRED_FIELDS)})")
    if header["precision"] not in PRECISIONS:
        raise MkeError(f"{source}: precision must be one of {', '.join(PRECISIONS)}, found {header['precision']!r}")
    if not isinstance(header["spec"], dict):
        raise MkeError(f"{source}: 'spec' must be the model spec object, found {type(header['spec']).__name__}")
    dla = header.get("dla_core")
    if dla is not None and (not isinstance(dla, int) or isinstance(dla, bool) or dla < 0):
        raise MkeError(f"{source}: 'dla_core' must be null or a DLA core number, found {dla!r}")
    engine_spec(header, f"{source}: spec")
    _version_tuple(str(header["tensorrt_version"]), f"{source}: tensorrt_version")


def _version_tuple(version: str, what: str) -> tuple[int, ...]:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)*)\S*\s*", str(version))
    if not match:
        raise MkeError(f"{what} must look like 10.3.0, got {version!r}")
    parts = tuple(int(p) for p in match.group(1).split("."))
    return parts + (0,) * (3 - len(parts)) if len(parts) < 3 else parts


def _same_release(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Major, minor and patch agree, and the build number too where both give one."""
    n = max(3, min(len(a), len(b)))
    return a[:n] == b[:n]


def _norm_cc(cc: str) -> str:
    return ".".join(str(int(p)) for p in re.findall(r"\d+", str(cc))[:2]) or str(cc)
