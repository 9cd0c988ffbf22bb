"""mke.runtime must import and run on a Jetson that has no PyTorch."""
import subprocess
import sys
import textwrap
from pathlib import Path

BLOCK_TORCH = textwrap.dedent("""
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None

    sys.meta_path.insert(0, NoTorch())
""")


def test_runtime_imports_with_torch_unimportable(tmp_path):
    script = BLOCK_TORCH + textwrap.dedent("""
        import importlib, pkgutil
        import mke.runtime
        for mod in pkgutil.walk_packages(mke.runtime.__path__, "mke.runtime."):
            importlib.import_module(mod.name)
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print("ok", len(list(pkgutil.walk_packages(mke.runtime.__path__))))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_live_pipeline_runs_an_onnx_model_on_a_replay_with_torch_unimportable(tmp_path):
    """mke-live end to end — RealSense playback, preprocessing, ONNX Runtime, sinks — on a Jetson without torch."""
    import json

    import numpy as np
    import pytest

    pytest.importorskip("pyrealsense2")
    pytest.importorskip("onnx")
    sys.path.insert(0, str(Path(__file__).parent / "runtime" / "live"))
    from tiny_models import seg_model

    from mke.runtime.camera import Intrinsics
    from mke.runtime.sensors.realsense_recording import write_recording

    model = seg_model(tmp_path / "student.onnx")
    color = Intrinsics(width=96, height=72, fx=80.0, fy=80.0, cx=47.5, cy=35.5)
    frames = [(np.full((72, 96, 3), 60, np.uint8), np.full((72, 96), 1500, np.uint16)) for _ in range(5)]
    recording = write_recording(tmp_path / "rec.db3", frames, color_intrinsics=color, compress=False)
    script = BLOCK_TORCH + textwrap.dedent(f"""
        from mke.runtime.cli import main
        code = main([{str(model)!r}, "--replay", {str(recording)!r}, "--fast", "--headless", "--stats-every", "0",
                     "--jsonl", {str(tmp_path / "p.jsonl")!r}, "--save", {str(tmp_path / "v.mp4")!r}])
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        sys.exit(code)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(5)) and (tmp_path / "v.mp4").stat().st_size > 0
