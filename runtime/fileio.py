"""Atomic file writes: a crash never leaves a half-written artifact behind.

Every artifact (checkpoint, JSON, report, model file) is written to a temporary file in the same
folder and renamed over the target only once it is complete; `os.replace` is atomic on POSIX.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, on error delete it.

    `keep_suffix` ends the temporary name with the target's suffix, for writers that insist on one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".part{target.suffix}" if keep_suffix else ".part"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the artifact gets the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_folder(root: str | os.PathLike, name: str, key: Any) -> Path:
    """`<root>/<name>-<12 hex digits>`: the digits hash `key` (the settings that change what is cached,
    as sorted JSON), so changed settings get a new folder and unchanged ones find the old one."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(str(root)).expanduser() / f"{name}-{digest}"


def cache_complete(folder: str | os.PathLike, index: str = "data.json") -> bool:
    """Whether `folder` holds a whole cache: its `index` (written last, {"files": {name: bytes}}) and
    every file that lists, at its size — a folder left by a crash is not."""
    folder = Path(folder)
    try:
        files = json.loads((folder / index).read_text())["files"]
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


@contextlib.contextmanager
def building_cache(folder: str | os.PathLike, complete: Callable[[Path], bool] = cache_complete) -> Iterator[Path]:
    """Yield a temporary folder beside `folder` to fill (its index, data.json, last). When the block ends
    without an error the folder is renamed into place — unless another process completed the same cache
    meanwhile (`complete(folder)`) — and an incomplete one found there is set aside first and removed
    after. The temporary folder never outlives the block: a crash leaves no half-written cache."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)   # mkdtemp makes 0700; the cache gets the usual permissions
        if complete(folder):
            return
        stale = None
        if folder.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".stale", dir=folder.parent))
            os.replace(folder, stale / "old")
        try:
            os.replace(tmp, folder)
        except OSError:
            if not complete(folder):   # anything but another process having finished the same cache first
                raise
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
