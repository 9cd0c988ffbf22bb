"""Dataset readers: NYU Depth V2 (labeled .mat, raw Kinect sequences) and manifests of users' own data.

They give raw numpy arrays and never import torch: rgb uint8 (H, W, 3) in RGB order, depth float32 in
metres with 0 = invalid (never NaN), labels uint8 (H, W) class ids with 255 = void / ignore.
Turning them into training tensors happens elsewhere.
"""
from pathlib import Path

from mke.runtime.errors import MkeError


def data_root(data_cfg: dict, dataset: str, task: str, example: str, expected: str) -> Path:
    """`data.root`, checked to be a folder; the MkeError names the dataset, a command line that sets it
    and what the folder must hold (`expected`)."""
    root = str(data_cfg.get("root") or "").strip()
    if not root:
        raise MkeError(f"data.root is not set: point it at your {dataset} folder, e.g. "
                       f"mke-train --task {task} data.root={example}; it must hold {expected}")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise MkeError(f"data.root {base} is not a folder; it must hold {expected}")
    return base
