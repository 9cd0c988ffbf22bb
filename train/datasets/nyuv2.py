"""NYU Depth V2 (Silberman et al., ECCV 2012): the labeled set and the raw Kinect sequences.

Labeled set, `nyu_depth_v2_labeled.mat` — MATLAB v7.3, i.e. HDF5, read with h5py. MATLAB arrays are
column-major, so HDF5 shows their axes reversed: `images` 480×640×3×1449 (H×W×C×N) reads as
(1449, 3, 640, 480), `depths` (metres, single) and `labels` (uint16; 0 = unlabeled, 1..894) as
(1449, 640, 480). This reader transposes back to (H, W[, C]); any image size is accepted as long as
the three agree.

Splits, `splits.mat` — MATLAB v5 (scipy.io.loadmat): `trainNdxs` (795) and `testNdxs` (654),
1-based indices into the 1449; `split_indices` returns them 0-based.

Classes — the standard 40 of Gupta et al. (CVPR 2013): `classMapping40.mat` holds `mapClass`, 894
values in 1..40 (1-based 40-class id of each 894-class id). Labels come out as uint8 0..39 with
255 = void (the unlabeled 0, or a class the mapping sends to 0).

Raw sequences — one folder per scene holding `r-<t>-<n>.ppm` colour and `d-<t>-<n>.pgm` depth, e.g.
`r-1294886362.238178-3118787619.ppm`, where <t> is the capture time in seconds; the cameras are not
synchronised, so each depth frame takes the colour frame nearest in time (the toolbox's
get_synched_frames.m does the same, depth being primary). The PGM holds the Kinect's raw 11-bit
value (0..2047); the toolbox reads it with imread and then `swapbytes` — its bytes are in the
opposite order to the PGM standard's big-endian. `read_raw_depth` therefore decides the byte order
by which reading fits in 11 bits (or as told). Metres = 351.3 / (1092.5 − raw); values out of
(0, 10] m are invalid (0). The raw depth is in the depth camera's frame, not registered to colour.

Depth is always returned as float32 metres with 0 = invalid, never NaN.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.spec import VOID
from mke.train.datasets.manifest import Sample, cv2_module, read_rgb

CLASS_NAMES_40 = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)  # spelling as in the toolbox and ESANet, "refridgerator" included
NUM_CLASSES = 40
NUM_CLASSES_894 = 894
SPLITS = ("train", "test")

KINECT_DEPTH_PARAM_1 = 351.3    # metres = PARAM_1 / (PARAM_2 - raw), NYU toolbox camera_params.m
KINECT_DEPTH_PARAM_2 = 1092.5
MAX_DEPTH_M = 10.0
KINECT_RAW_MAX = 2047           # 11-bit raw value; 2047 = no reading

RAW_NAME = re.compile(r"^([rd])-(\d+(?:\.\d+)?)-(\d+)\.(ppm|pgm)$")


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise MkeError(f"reading nyu_depth_v2_labeled.mat needs h5py: pip install 'mke-edge[train]' ({e})") from e
    return h5py


def _loadmat(path: Path, what: str) -> dict:
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise MkeError(f"reading {what} needs scipy: pip install scipy ({e})") from e
    if not path.is_file():
        raise MkeError(f"{what} {path} does not exist")
    try:
        return loadmat(str(path))
    except (NotImplementedError, ValueError, TypeError, OSError) as e:
        raise MkeError(f"{what} {path} could not be read as a MATLAB v5 .mat file ({e})") from e


# ---------------------------------------------------------------------------------------------
# the 894 → 40 class mapping


def load_class_mapping(mapping: str | os.PathLike | Sequence[int] | np.ndarray) -> np.ndarray:
    """A lookup table (895,) uint8 from the 894-class label (0 = unlabeled) to 0..39 / 255 = void.

    `mapping` is `classMapping40.mat` (variable `mapClass`), a `.npy` or `.json` file, or the values
    themselves: 894 integers in 0..40, entry k-1 the 1-based 40-class id of class k (0 = void) —
    the `mapClass` convention. A JSON file holds that list, or an object with key "mapClass".
    """
    source = "class mapping"
    if isinstance(mapping, (str, os.PathLike)):
        path = Path(mapping).expanduser()
        source = f"class mapping {path}"
        suffix = path.suffix.lower()
        if suffix == ".mat":
            mat = _loadmat(path, "class mapping")
            if "mapClass" not in mat:
                found = sorted(k for k in mat if not k.startswith("__"))
                raise MkeError(f"{source} has no variable 'mapClass' (found {found}); expected "
                               "classMapping40.mat with mapClass, 894 values in 1..40")
            values = mat["mapClass"]
        elif suffix == ".npy":
            if not path.is_file():
                raise MkeError(f"{source} does not exist")
            values = np.load(path, allow_pickle=False)
        elif suffix == ".json":
            if not path.is_file():
                raise MkeError(f"{source} does not exist")
            try:
                values = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise MkeError(f"{source} is not valid JSON ({e.msg})") from None
            if isinstance(values, dict):
                if "mapClass" not in values:
                    raise MkeError(f"{source}: expected a list of 894 class ids or an object with key 'mapClass'")
                values = values["mapClass"]
        else:
            raise MkeError(f"{source}: expected classMapping40.mat, a .npy or a .json file")
    else:
        values = mapping
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise MkeError(f"{source}: expected 894 integers in 0..40") from None
    if arr.size != NUM_CLASSES_894:
        raise MkeError(f"{source} has {arr.size} entries; expected {NUM_CLASSES_894} "
                       "(one 40-class id for each NYU class 1..894)")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or arr.min() < 0 or arr.max() > NUM_CLASSES:
        bad = arr[~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr > NUM_CLASSES)][0]
        raise MkeError(f"{source} holds {bad!r}; expected integers in 0..{NUM_CLASSES} (1-based, 0 = void)")
    ids = arr.astype(np.int64)
    lut = np.full(NUM_CLASSES_894 + 1, VOID, dtype=np.uint8)
    lut[1:] = np.where(ids > 0, ids - 1, VOID)
    return lut


# ---------------------------------------------------------------------------------------------
# the labeled set


class NYUv2Labeled:
    """The 1449 labeled frames of nyu_depth_v2_labeled.mat, read one at a time from the HDF5 file.

    `ds[i]` → Sample(rgb uint8 (H, W, 3), depth_m float32 (H, W), labels uint8 (H, W) 0..39 / 255),
    labels None when no `mapping` was given (see `labels_894` for the original ids).
    """

    class_names = CLASS_NAMES_40
    num_classes = NUM_CLASSES

    def __init__(self, mat_path: str | os.PathLike, splits_path: str | os.PathLike | None = None,
                 mapping: str | os.PathLike | Sequence[int] | np.ndarray | None = None):
        self.mat_path = Path(mat_path).expanduser()
        self.splits_path = Path(splits_path).expanduser() if splits_path is not None else None
        self.lut = load_class_mapping(mapping) if mapping is not None else None
        self._file = None
        try:
            self._check(self._open())
        except BaseException:
            self.close()
            raise

    def _check(self, f) -> None:
        p = self.mat_path
        for name in ("images", "depths") + (("labels",) if self.lut is not None else ()):
            if name not in f:
                raise MkeError(f"{p} has no dataset {name!r} (found {sorted(f.keys())}); expected "
                               "NYU Depth V2's nyu_depth_v2_labeled.mat")
        images = f["images"]
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
            raise MkeError(f"{p}: 'images' is {images.dtype} {images.shape}; expected uint8 "
                           "(N, 3, W, H), MATLAB's H×W×3×N with axes reversed, e.g. (1449, 3, 640, 480)")
        n, _, w, h = images.shape
        for name in ("depths", "labels"):
            if name in f and f[name].shape != (n, w, h):
                raise MkeError(f"{p}: {name!r} has shape {f[name].shape}; expected {(n, w, h)} "
                               f"(N, W, H) to match 'images' {images.shape}")
        self._len, self.image_size = n, (h, w)
        self._splits = self._read_splits() if self.splits_path is not None else None

    def _open(self):
        if self._file is None:
            h5py = _h5py()
            if not self.mat_path.is_file():
                raise MkeError(f"NYUv2 labeled file {self.mat_path} does not exist")
            try:
                self._file = h5py.File(self.mat_path, "r")
            except OSError as e:
                raise MkeError(f"{self.mat_path} is not a MATLAB v7.3 (HDF5) file as "
                               f"nyu_depth_v2_labeled.mat is ({e})") from e
        return self._file

    def _read_splits(self) -> dict[str, np.ndarray]:
        mat = _loadmat(self.splits_path, "NYUv2 splits file")
        out = {}
        for split, key in (("train", "trainNdxs"), ("test", "testNdxs")):
            if key not in mat:
                found = sorted(k for k in mat if not k.startswith("__"))
                raise MkeError(f"NYUv2 splits file {self.splits_path} has no variable {key!r} "
                               f"(found {found}); expected splits.mat with trainNdxs and testNdxs")
            idx = np.asarray(mat[key], dtype=np.float64).ravel()
            bad = idx[(idx != np.round(idx)) | (idx < 1) | (idx > self._len)]
            if bad.size:
                raise MkeError(f"NYUv2 splits file {self.splits_path}: {key} holds {bad[0]:g}; expected "
                               f"1-based indices in 1..{self._len} (the frames in {self.mat_path})")
            out[split] = idx.astype(np.int64) - 1
        return out

    def split_indices(self, split: str) -> np.ndarray:
        """0-based frame indices of "train" (795) or "test" (654)."""
        if split not in SPLITS:
            raise MkeError(f"unknown NYUv2 split {split!r}; expected one of {', '.join(SPLITS)}")
        if self._splits is None:
            raise MkeError("NYUv2 splits need splits_path= the splits.mat file (trainNdxs / testNdxs)")
        return self._splits[split].copy()

    def __len__(self) -> int:
        return self._len

    def _index(self, i: int) -> int:
        j = int(i) + self._len if int(i) < 0 else int(i)
        if not 0 <= j < self._len:
            raise IndexError(f"frame {i} out of range for {self._len} frames in {self.mat_path}")
        return j

    def rgb(self, i: int) -> np.ndarray:
        return np.ascontiguousarray(self._open()["images"][self._index(i)].transpose(2, 1, 0))

    def depth_m(self, i: int) -> np.ndarray:
        depth = np.ascontiguousarray(self._open()["depths"][self._index(i)].T, dtype=np.float32)
        depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
        return depth

    def labels_894(self, i: int) -> np.ndarray:
        """The original labels, uint16 (H, W): 0 = unlabeled, 1..894."""
        f = self._open()
        if "labels" not in f:
            raise MkeError(f"{self.mat_path} has no dataset 'labels'")
        return np.ascontiguousarray(f["labels"][self._index(i)].T)

    def labels(self, i: int) -> np.ndarray | None:
        if self.lut is None:
            return None
        raw = self.labels_894(i)
        if raw.size and int(raw.max()) > NUM_CLASSES_894:
            raise MkeError(f"{self.mat_path}: frame {i} has label {int(raw.max())}; expected 0..{NUM_CLASSES_894}")
        return self.lut[raw]

    def __getitem__(self, i: int) -> Sample:
        return Sample(self.rgb(i), self.depth_m(i), self.labels(i))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        # an open HDF5 handle cannot cross into a worker process; each opens its own
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __repr__(self) -> str:
        return f"NYUv2Labeled({str(self.mat_path)!r}, {self._len} frames, {self.image_size[1]}x{self.image_size[0]})"


# ---------------------------------------------------------------------------------------------
# the raw sequences


def raw_depth_to_metres(raw: np.ndarray) -> np.ndarray:
    """Kinect raw depth → float32 metres: 351.3 / (1092.5 − raw); 0 where that is not in (0, 10] m."""
    raw = np.asarray(raw, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = KINECT_DEPTH_PARAM_1 / (KINECT_DEPTH_PARAM_2 - raw)
    valid = (raw < KINECT_DEPTH_PARAM_2) & (depth > 0) & (depth <= MAX_DEPTH_M)
    return np.where(valid, depth, 0.0).astype(np.float32)


def read_raw_depth(path: str | os.PathLike, byte_order: str = "auto") -> np.ndarray:
    """A raw-sequence `d-*.pgm` as the Kinect's raw uint16 values (H, W).

    byte_order: "little" (what NYU's files hold: the toolbox applies swapbytes after imread),
    "big" (the PGM standard), or "auto" — the order whose values fit in 11 bits (0..2047),
    preferring "little"; neither fitting is an error.
    """
    if byte_order not in ("auto", "little", "big"):
        raise MkeError(f"byte_order {byte_order!r}: expected auto, little or big")
    cv2 = cv2_module()
    path = Path(path)
    if not path.is_file():
        raise MkeError(f"raw depth file {path} does not exist")
    as_big = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)    # OpenCV reads 16-bit PGM big-endian
    if as_big is None or as_big.dtype != np.uint16 or as_big.ndim != 2:
        got = "unreadable" if as_big is None else f"{as_big.dtype} {as_big.shape}"
        raise MkeError(f"raw depth file {path} is {got}; expected a 16-bit single-channel PGM of "
                       "Kinect raw depth")
    as_little = as_big.byteswap()
    if byte_order == "big":
        return as_big
    if byte_order == "little":
        return as_little
    for raw in (as_little, as_big):
        if raw.size == 0 or int(raw.max()) <= KINECT_RAW_MAX:
            return raw
    raise MkeError(f"raw depth file {path} holds values above {KINECT_RAW_MAX} in either byte order; "
                   "expected the Kinect's 11-bit raw depth")


def _parse_raw_name(name: str) -> tuple[str, float] | None:
    m = RAW_NAME.match(name)
    if m is None or (m.group(1) == "r") != (m.group(4) == "ppm"):
        return None
    return m.group(1), float(m.group(2))


def _scene_pairs(folder: Path, names: list[str], max_time_diff_s: float) -> tuple[list, int, int]:
    rgb, depth = [], []
    for name in names:
        parsed = _parse_raw_name(name)
        if parsed is not None:
            (rgb if parsed[0] == "r" else depth).append((parsed[1], name))
    rgb.sort()
    depth.sort()
    pairs = []
    if rgb:
        t_rgb = np.array([t for t, _ in rgb])
        for t, name in depth:
            k = int(np.searchsorted(t_rgb, t))
            best = min((j for j in (k - 1, k) if 0 <= j < len(rgb)), key=lambda j: abs(t_rgb[j] - t))
            if abs(t_rgb[best] - t) <= max_time_diff_s:
                pairs.append((folder / rgb[best][1], folder / name))
    return pairs, len(rgb), len(depth)


def raw_pairs(root: str | os.PathLike, every: int = 1,
              max_time_diff_s: float = 0.05) -> list[tuple[Path, Path]]:
    """Synchronised (rgb_path, depth_path) pairs of the raw sequences under `root`.

    `root` is one scene folder or any folder above several (searched recursively). Each depth frame
    takes the colour frame nearest in time; pairs further apart than `max_time_diff_s` seconds are
    dropped; then every `every`-th pair of each scene is kept. Scenes and frames are in time order.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MkeError(f"NYUv2 raw folder {root} does not exist")
    if int(every) != every or every < 1:
        raise MkeError(f"every must be a whole number >= 1, got {every!r}")
    if not max_time_diff_s > 0:
        raise MkeError(f"max_time_diff_s must be > 0 seconds, got {max_time_diff_s!r}")
    out: list[tuple[Path, Path]] = []
    n_rgb = n_depth = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        pairs, r, d = _scene_pairs(Path(folder), files, max_time_diff_s)
        n_rgb, n_depth = n_rgb + r, n_depth + d
        out += pairs[::int(every)]
    if not out:
        raise MkeError(f"NYUv2 raw folder {root} has no synchronised frame pairs: found {n_rgb} "
                       f"r-<time>-<n>.ppm and {n_depth} d-<time>-<n>.pgm files, none within "
                       f"{max_time_diff_s} s of each other")
    return out


def load_raw_pair(rgb_path: str | os.PathLike, depth_path: str | os.PathLike,
                  byte_order: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 (H, W, 3), depth float32 metres (H, W), 0 = invalid) of one raw pair."""
    rgb = read_rgb(rgb_path)
    depth = raw_depth_to_metres(read_raw_depth(depth_path, byte_order))
    if depth.shape != rgb.shape[:2]:
        raise MkeError(f"raw depth file {depth_path} is {depth.shape[1]}x{depth.shape[0]}; expected "
                       f"the size of {rgb_path}, {rgb.shape[1]}x{rgb.shape[0]}")
    return rgb, depth


class NYUv2Raw:
    """The raw sequences as unlabeled RGB-D samples: `ds[i]` → Sample(rgb, depth_m, None)."""

    def __init__(self, root: str | os.PathLike, every: int = 1, max_time_diff_s: float = 0.05,
                 byte_order: str = "auto"):
        self.pairs = raw_pairs(root, every=every, max_time_diff_s=max_time_diff_s)
        self.byte_order = byte_order

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Sample:
        rgb, depth = load_raw_pair(*self.pairs[i], byte_order=self.byte_order)
        return Sample(rgb, depth, None)


# ---------------------------------------------------------------------------------------------
# registering raw depth to the colour camera

# The Kinect calibration of NYU Depth V2's toolbox (camera_params.m, made with RGBDemo) for
# 640×480 images: fx, fy, cx, cy in pixels, in MATLAB's 1-based pixel coordinates.
NYU_IMAGE_SIZE = (480, 640)
RGB_INTRINSICS = (5.1885790117450188e+02, 5.1946961112127485e+02, 3.2558244941119034e+02, 2.5373616633400465e+02)
DEPTH_INTRINSICS = (5.8262448167737955e+02, 5.8269103270988637e+02, 3.1304475870804731e+02, 2.3844389626620386e+02)
# camera_params.m lists the rotation's nine entries and the translation (metres) as t_x, t_z, t_y:
_TOOLBOX_R = (9.9997798940829263e-01, 5.0518419386157446e-03, 4.3011152014118693e-03,
              -5.0359919480810989e-03, 9.9998051861143999e-01, -3.6879781309514218e-03,
              -4.3196624923060242e-03, 3.6662365748484798e-03, 9.9998394948385538e-01)
_TOOLBOX_T = (2.5031875059141302e-02, -2.9342312935846411e-04, 6.6238747008330102e-04)


def _depth_to_rgb_extrinsics() -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with p_rgb = R @ p_depth + t, metres, both cameras looking down +z.

    The toolbox builds R = inv(reshape(-r, 3, 3)') — the negated matrix read row by row, inverted —
    and maps p ↦ R p + [t_x; t_z; t_y] (depth_world2rgb_world.m). That R is close to −I, so its
    points lie behind the camera; the projection X/Z does not see the sign. Negating the whole
    result gives the same pixels with z > 0: p ↦ inv(M) p − T, M the listed matrix read row by row.
    """
    m = np.asarray(_TOOLBOX_R, np.float64).reshape(3, 3)
    return np.linalg.inv(m), -np.asarray(_TOOLBOX_T, np.float64)


DEPTH_TO_RGB_R, DEPTH_TO_RGB_T = _depth_to_rgb_extrinsics()


def scaled_intrinsics(k: Sequence[float], shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """640×480 toolbox intrinsics (1-based) → 0-based fx, fy, cx, cy for an image of `shape` (H, W)."""
    sy, sx = shape[0] / NYU_IMAGE_SIZE[0], shape[1] / NYU_IMAGE_SIZE[1]
    fx, fy, cx, cy = k
    return fx * sx, fy * sy, (cx - 1.0) * sx, (cy - 1.0) * sy


def reproject_depth(depth_m: np.ndarray, k_src: Sequence[float], k_dst: Sequence[float], rotation: np.ndarray,
                    translation: np.ndarray, out_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Depth seen by one pinhole camera → depth seen by another (float32 metres, 0 = invalid).

    Each valid source pixel is back-projected with `k_src` (0-based fx, fy, cx, cy), moved by
    p' = rotation @ p + translation (metres) and projected with `k_dst` to the nearest target
    pixel; where several land on one pixel the nearest wins (a z-buffer); where none lands, 0.
    Lens distortion is not modelled.
    """
    depth = np.asarray(depth_m, np.float32)
    if depth.ndim != 2:
        raise MkeError(f"depth must be a 2-D array of metres, got shape {depth.shape}")
    h, w = out_shape if out_shape is not None else depth.shape
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    z = depth[v, u].astype(np.float64)
    fx, fy, cx, cy = k_src
    pts = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z])
    pts = np.asarray(rotation, np.float64) @ pts + np.asarray(translation, np.float64).reshape(3, 1)
    x, y, z = pts
    front = z > 1e-6
    x, y, z = x[front], y[front], z[front]
    fx, fy, cx, cy = k_dst
    col = np.rint(x * fx / z + cx).astype(np.int64)
    row = np.rint(y * fy / z + cy).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = np.full(h * w, np.inf)
    np.minimum.at(flat, row[inside] * w + col[inside], z[inside])
    flat[~np.isfinite(flat)] = 0.0
    return flat.reshape(h, w).astype(np.float32)


def register_depth_to_rgb(depth_m: np.ndarray) -> np.ndarray:
    """Raw Kinect depth (metres, the depth camera's view) → depth on the colour camera's pixels.

    What the toolbox's project_depth_map.m does, vectorised, with its camera_params.m calibration
    scaled to the image size (any size of 4:3 aspect; 640×480 is the Kinect's). The value kept is
    the point's z in the colour camera's frame (the toolbox keeps the depth camera's z; they differ
    by millimetres); pixels nothing lands on are 0. The toolbox also undistorts both images first;
    this does not.
    """
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        raise MkeError(f"depth must be a 2-D array of metres, got shape {depth.shape}")
    return reproject_depth(depth, scaled_intrinsics(DEPTH_INTRINSICS, depth.shape),
                           scaled_intrinsics(RGB_INTRINSICS, depth.shape), DEPTH_TO_RGB_R, DEPTH_TO_RGB_T)
