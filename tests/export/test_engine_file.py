"""The MKE engine container: a TensorRT plan behind a JSON header that carries the model spec."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from mke.runtime.engine_file import (MAGIC, check_engine_compatible, engine_name, engine_spec, gpu_slug,
                                     read_engine, read_header, write_engine)
from mke.runtime.errors import MkeError
from mke.runtime.spec import InputSpec, ModelSpec, OutputSpec

PLAN = bytes(range(256)) * 40  # stands in for a serialized TensorRT plan: opaque bytes


def make_spec() -> ModelSpec:
    return ModelSpec(task="rgbd", kind="segmentation", classes=["floor", "wall", "chair"],
                     colors=[[0, 0, 0], [200, 200, 200], [255, 0, 0]],
                     inputs=[InputSpec("rgb", "rgb", [1, 3, 48, 64], preprocess={"kind": "rgb"}),
                             InputSpec("depth", "depth", [1, 1, 48, 64], preprocess={"kind": "metric_depth"})],
                     outputs=[OutputSpec("logits", [1, 3, 48, 64])], provenance={"run": "runs/rgbd"})


def make_header(**overrides) -> dict:
    header = {"spec": json.loads(make_spec().to_json()), "precision": "fp16", "tensorrt_version": "10.3.0",
              "gpu": "Orin", "compute_capability": "8.7", "dla_core": None, "version_compatible": False,
              "built_at": "2026-01-01T00:00:00+00:00", "onnx_sha256": "ab" * 32}
    header.update(overrides)
    return header


@pytest.fixture
def engine(tmp_path):
    return write_engine(tmp_path / "student.fp16.trt10.3.0.orin.engine", PLAN, make_header())


def test_round_trip_keeps_header_spec_and_plan(engine):
    header, plan = read_engine(engine)
    assert plan == PLAN
    assert header["plan_bytes"] == len(PLAN)
    assert {k: header[k] for k in make_header()} == make_header()
    assert engine_spec(header) == make_spec()
    assert read_header(engine) == header


def test_file_layout_is_magic_length_json_plan(engine):
    raw = engine.read_bytes()
    assert raw[:8] == MAGIC == b"MKETRT01"
    length = int.from_bytes(raw[8:12], "little")
    assert json.loads(raw[12:12 + length])["gpu"] == "Orin"
    assert raw[12 + length:] == PLAN


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path, engine):
    with pytest.raises(MkeError, match="precision"):
        write_engine(engine, b"other plan", make_header(precision="int4"))
    assert read_engine(engine)[1] == PLAN  # the failed write did not touch the existing engine
    assert sorted(p.name for p in tmp_path.iterdir()) == [engine.name]


@pytest.mark.parametrize("header, message", [
    ({k: v for k, v in make_header().items() if k != "gpu"}, "lacks gpu"),
    (make_header(precision="int4"), "precision must be one of fp32, fp16, int8"),
    (make_header(spec={"format": "something else"}), "not an MKE model spec"),
    (make_header(dla_core=-1), "dla_core"),
    (make_header(tensorrt_version="ten"), "look like 10.3.0"),
])
def test_write_refuses_incomplete_headers(tmp_path, header, message):
    with pytest.raises(MkeError, match=message):
        write_engine(tmp_path / "x.engine", PLAN, header)


def test_write_refuses_an_empty_plan(tmp_path):
    with pytest.raises(MkeError, match="empty"):
        write_engine(tmp_path / "x.engine", b"", make_header())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MkeError, match=r"engine file .*nowhere.engine does not exist"):
        read_engine(tmp_path / "nowhere.engine")


@pytest.mark.parametrize("content", [os.urandom(4096), b"ftrt" + os.urandom(2000), b"PK\x03\x04 a zip file"])
def test_foreign_files_say_what_was_expected(tmp_path, content):
    path = tmp_path / "bare.plan"
    path.write_bytes(content)
    with pytest.raises(MkeError) as err:
        read_engine(path)
    message = str(err.value)
    assert "is not an MKE engine file" in message and "MKETRT01" in message
    assert "bare TensorRT plan" in message and "mke-export" in message


def test_empty_file(tmp_path):
    (tmp_path / "empty.engine").write_bytes(b"")
    with pytest.raises(MkeError, match="is empty"):
        read_engine(tmp_path / "empty.engine")


def test_truncated_prefix(tmp_path, engine):
    cut = tmp_path / "cut.engine"
    cut.write_bytes(engine.read_bytes()[:10])
    with pytest.raises(MkeError, match="truncated: 10 bytes"):
        read_engine(cut)


def test_truncated_header(tmp_path, engine):
    cut = tmp_path / "cut.engine"
    cut.write_bytes(engine.read_bytes()[:40])
    with pytest.raises(MkeError, match="truncated inside its header: 28 of"):
        read_header(cut)


def test_truncated_plan(tmp_path, engine):
    cut = tmp_path / "cut.engine"
    cut.write_bytes(engine.read_bytes()[:-100])
    read_header(cut)  # the header is intact …
    with pytest.raises(MkeError, match=f"truncated: its header announces a {len(PLAN)}-byte TensorRT plan but only "
                                       f"{len(PLAN) - 100} bytes follow"):
        read_engine(cut)  # … the plan is not


def test_trailing_bytes_are_damage(tmp_path, engine):
    longer = tmp_path / "longer.engine"
    longer.write_bytes(engine.read_bytes() + b"junk")
    with pytest.raises(MkeError, match="4 unexpected bytes after"):
        read_engine(longer)


def test_damaged_header_json(tmp_path, engine):
    raw = bytearray(engine.read_bytes())
    raw[12] = ord("#")  # the JSON's opening brace
    damaged = tmp_path / "damaged.engine"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(MkeError, match="damaged header .not UTF-8 JSON"):
        read_engine(damaged)


def test_absurd_header_length(tmp_path):
    path = tmp_path / "absurd.engine"
    path.write_bytes(MAGIC + (2 ** 31).to_bytes(4, "little") + b"{}")
    with pytest.raises(MkeError, match="damaged header: it announces 2147483648 header bytes"):
        read_engine(path)


# --- compatibility ---------------------------------------------------------------------------------------------

def test_same_tensorrt_and_gpu_is_compatible():
    check_engine_compatible(make_header(), "10.3.0", "Orin", "8.7")
    check_engine_compatible(make_header(tensorrt_version="10.3.0.30"), "10.3.0", "Orin", "8.7")  # build number


def test_other_tensorrt_release_names_both_sides_and_how_to_rebuild():
    with pytest.raises(MkeError) as err:
        check_engine_compatible(make_header(), "10.7.0", "Orin", "8.7", source="student.engine")
    message = str(err.value)
    assert "student.engine was built for TensorRT 10.3.0 on Orin (compute 8.7)" in message
    assert "this machine has TensorRT 10.7.0 on Orin (compute 8.7)" in message
    assert "Rebuild it on this machine with `mke-export <run> --fp16`" in message


def test_rebuild_hint_follows_the_precision():
    with pytest.raises(MkeError, match=r"`mke-export <run> --int8`"):
        check_engine_compatible(make_header(precision="int8"), "10.3.1", "Orin", "8.7")


def test_other_gpu_architecture_is_refused():
    with pytest.raises(MkeError, match=r"NVIDIA H100 80GB HBM3 \(compute 9.0\): "
                                       r"it holds kernels for compute capability 8.7 and this GPU has 9.0"):
        check_engine_compatible(make_header(), "10.3.0", "NVIDIA H100 80GB HBM3", "9.0")


def test_other_gpu_model_of_the_same_architecture_is_refused_unless_allowed():
    header = make_header(gpu="NVIDIA GeForce RTX 3080", compute_capability="8.6")
    with pytest.raises(MkeError, match="tuned for NVIDIA GeForce RTX 3080 and this GPU is NVIDIA RTX A6000"):
        check_engine_compatible(header, "10.3.0", "NVIDIA RTX A6000", "8.6")
    check_engine_compatible(header, "10.3.0", "NVIDIA RTX A6000", "8.6", allow_other_gpu_model=True)


def test_version_compatible_plans_run_on_later_releases_of_the_same_major():
    header = make_header(version_compatible=True)
    check_engine_compatible(header, "10.3.0", "Orin", "8.7")
    check_engine_compatible(header, "10.7.0", "Orin", "8.7")
    with pytest.raises(MkeError, match="older than 10.3.0"):
        check_engine_compatible(header, "10.1.0", "Orin", "8.7")
    with pytest.raises(MkeError, match=r"only within TensorRT 10.x"):
        check_engine_compatible(header, "11.0.0", "Orin", "8.7")
    with pytest.raises(MkeError, match="compute capability"):  # version compatibility is not hardware compatibility
        check_engine_compatible(header, "10.7.0", "NVIDIA H100", "9.0")


# --- naming ----------------------------------------------------------------------------------------------------

def test_engine_name_says_what_can_load_it():
    assert engine_name("student", "fp16", "10.3.0", "Orin") == "student.fp16.trt10.3.0.orin.engine"
    assert engine_name("teacher", "int8", "10.3.0.30", "NVIDIA GeForce RTX 3080") == \
        "teacher.int8.trt10.3.0.geforce-rtx-3080.engine"
    assert engine_name("student", "int8", "10.3", "Orin", dla_core=1) == "student.int8.trt10.3.0.orin.dla1.engine"
    assert gpu_slug("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"
    with pytest.raises(MkeError, match="precision"):
        engine_name("student", "bf16", "10.3.0", "Orin")


def test_engine_file_imports_without_torch_or_tensorrt(engine):
    script = textwrap.dedent(f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "tensorrt", "pycuda", "onnx"):
                    raise ImportError(name + " is blocked in this test")

        sys.meta_path.insert(0, Block())
        from mke.runtime.engine_file import read_engine
        header, plan = read_engine({str(engine)!r})
        print(header["gpu"], len(plan))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Orin", str(len(PLAN))]
