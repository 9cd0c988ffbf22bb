"""mke.runtime must import on a Jetson that has no PyTorch."""
import subprocess
import sys
import textwrap


def test_runtime_imports_with_torch_unimportable(tmp_path):
    script = textwrap.dedent("""
        import importlib, pkgutil, sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, NoTorch())
        import mke.runtime
        for mod in pkgutil.walk_packages(mke.runtime.__path__, "mke.runtime."):
            importlib.import_module(mod.name)
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print("ok", len(list(pkgutil.walk_packages(mke.runtime.__path__))))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
