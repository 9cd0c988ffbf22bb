"""What the machine has: GPU, driver, CUDA, the packages the check uses (or "absent"), the CPU.

Read without importing the heavy optional packages where their metadata says enough; `nvidia-smi`
and `lscpu` where they exist (a Jetson has no nvidia-smi: its driver line comes from /proc)."""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

# (label, module, distributions that install it)
PACKAGES = (
    ("torch", "torch", ("torch",)),
    ("torchvision", "torchvision", ("torchvision",)),
    ("numpy", "numpy", ("numpy",)),
    ("onnx", "onnx", ("onnx",)),
    ("onnxscript", "onnxscript", ("onnxscript",)),
    ("onnxslim", "onnxslim", ("onnxslim",)),
    ("onnxruntime", "onnxruntime", ("onnxruntime-gpu", "onnxruntime")),
    ("tensorrt", "tensorrt", ("tensorrt", "tensorrt-cu13", "tensorrt-cu12")),
    ("pycuda", "pycuda", ("pycuda",)),
    ("pybullet", "pybullet", ("pybullet",)),
    ("opencv", "cv2", ("opencv-python", "opencv-python-headless", "opencv-contrib-python")),
)


def has_module(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def package_version(module: str, distributions: tuple[str, ...]) -> str | None:
    """The version of `module` from its distribution's metadata, else its `__version__`; None where the
    module cannot be found."""
    if not has_module(module):
        return None
    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:  # e.g. JetPack's tensorrt, installed by apt without pip metadata
        return str(getattr(importlib.import_module(module), "__version__", "present, version unknown"))
    except Exception as exc:  # there, but it does not import (a missing library)
        return f"present, does not import ({exc.__class__.__name__})"


def package_versions() -> dict[str, str | None]:
    return {label: package_version(module, dists) for label, module, dists in PACKAGES}


def command_output(cmd: list[str]) -> str | None:
    """A command's stdout, or None where it is missing or fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_lscpu(text: str) -> dict:
    """Model name, logical CPUs and flags from `lscpu` output (or /proc/cpuinfo's, renamed)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = fields.get("Flags", "").split()
    return {"model": fields.get("Model name", "unknown"), "cpus": fields.get("CPU(s)", str(os.cpu_count() or "?")),
            "flags": flags, "relevant_flags": [f for f in RELEVANT_FLAGS if f in flags]}


def cpu_info() -> dict:
    text = command_output(["lscpu"])
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text().replace("model name", "Model name").replace("flags", "Flags")
        except OSError:
            text = ""
    return parse_lscpu(text)


def parse_nvidia_smi(query: str | None, banner: str | None) -> dict:
    """GPU name, driver and memory from `nvidia-smi --query-gpu=name,driver_version,memory.total
    --format=csv,noheader`, the driver's CUDA version from the plain banner; {} where both are None."""
    out = {}
    if query and query.strip():
        parts = [p.strip() for p in query.strip().splitlines()[0].split(",")]
        out.update(zip(("name", "driver", "memory"), parts))
    if banner:
        found = re.search(r"CUDA Version:\s*([\d.]+)", banner)
        if found:
            out["driver_cuda"] = found.group(1)
    return out


def gpu_driver() -> dict:
    info = parse_nvidia_smi(command_output(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                            "--format=csv,noheader"]), command_output(["nvidia-smi"]))
    if "driver" not in info:
        try:
            info["driver"] = Path("/proc/driver/nvidia/version").read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            info["driver"] = "unknown (no nvidia-smi, no /proc/driver/nvidia/version)"
    return info


def cuda_problem() -> str | None:
    """Why PyTorch cannot use a CUDA GPU here, or None when it can."""
    try:
        import torch
    except ImportError as exc:
        return f"{sys.executable} has no torch ({exc})"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} in {sys.executable} is a CPU-only build"
    if not torch.cuda.is_available():
        smi = "nvidia-smi runs" if command_output(["nvidia-smi"]) else "no nvidia-smi answers"
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) in {sys.executable} sees none; {smi}"
    return None


def ort_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception as exc:
        return [f"does not import: {exc.__class__.__name__}"]


def machine(with_gpu: bool) -> dict:
    """Everything the report's machine section names: date, GPU, driver, CUDA, packages, CPU."""
    import torch

    env = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "python": f"{platform.python_version()} ({sys.executable})", "packages": package_versions(),
           "cpu": cpu_info(), "torch_cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if with_gpu:
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = {"name": torch.cuda.get_device_name(0), "capability": f"{props.major}.{props.minor}",
                      "memory_mib": props.total_memory >> 20, "count": torch.cuda.device_count()}
        env["driver"] = gpu_driver()
    if env["packages"]["onnxruntime"]:
        env["onnxruntime_providers"] = ort_providers()
    return env
