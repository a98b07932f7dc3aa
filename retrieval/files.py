"""Durable and atomic file writes, shared by every artifact csbot saves (index, intent
model, pairs, registry, workspace manifest).

A crash must leave either the old file or the new one, never half of one: write to a
temporary file in the same directory, fsync it, then `os.replace` it over the target (an
atomic rename on POSIX), and fsync the directory so the rename itself survives a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make creations and renames in `path` durable (skipped where the OS cannot)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file another library wrote (FAISS, say) to disk."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def write_durable(path: str | os.PathLike[str], data: bytes) -> None:
    """Write and fsync `path` in place: for files inside a directory that is itself
    renamed into place afterwards."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_writer(path, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """A file written beside `path` (owner-only: mkstemp's mode) and renamed onto it once
    the block ends without an error; on an error nothing is left behind and `path` is as
    it was. `mode`: "wb" or "w" (text, in `encoding`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """`write_atomic` of `data` as indented, key-sorted UTF-8 JSON."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode("utf-8"))
