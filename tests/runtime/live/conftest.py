"""Fixtures for the mke-live tests: tiny models (tiny_models.py) and recordings in the real formats."""
import pytest

pytest.importorskip("onnx")

from tiny_models import av_model, seg_model  # noqa: E402


@pytest.fixture(scope="session")
def rgbd_onnx(tmp_path_factory):
    return seg_model(tmp_path_factory.mktemp("models") / "student.onnx")


@pytest.fixture(scope="session")
def rgb_onnx(tmp_path_factory):
    return seg_model(tmp_path_factory.mktemp("models") / "rgb_only.onnx", depth=False)


@pytest.fixture(scope="session")
def av_onnx(tmp_path_factory):
    return av_model(tmp_path_factory.mktemp("models") / "av.onnx")
