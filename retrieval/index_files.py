"""An index directory on disk: generations written atomically, read back verified.

Layout::

    DIR/CURRENT          "gen-7" - the generation readers use (replaced atomically)
    DIR/gen-7/index.faiss
    DIR/gen-7/units.jsonl
    DIR/gen-7/manifest.json   format, embedder, dim, kind, config, sources, file hashes
    DIR/gen-6/...        the previous generation, kept for one more save

A save writes a complete new generation, fsyncs it, and only then points CURRENT at it;
a crash at any moment leaves CURRENT naming a complete, verified generation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval.errors import IndexCorruptedError, IndexMismatchError, IndexNotFoundError
from retrieval.files import fsync_dir, fsync_file, write_atomic
from retrieval.ingest import sha256_file
from retrieval.types import Unit

FORMAT_VERSION = 1
CURRENT = "CURRENT"
INDEX_FILE, UNITS_FILE, MANIFEST_FILE = "index.faiss", "units.jsonl", "manifest.json"
_GEN_RE = re.compile(r"^gen-(\d+)$")
_REBUILD = "rebuild it with `csbot build`"


def generations(directory: Path) -> list[int]:
    """The generation numbers present under `directory`, oldest first."""
    gens = []
    if directory.is_dir():
        for child in directory.iterdir():
            m = _GEN_RE.match(child.name)
            if m and child.is_dir():
                gens.append(int(m.group(1)))
    return sorted(gens)


def read_current(directory: Path) -> str | None:
    """The name of the current generation ("gen-7"), or None when nothing was saved."""
    try:
        return (directory / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def write_generation(
    root: Path, faiss_index: Any, units: Sequence[Unit], manifest: dict[str, Any]
) -> tuple[Path, dict[str, Any]]:
    """Write a new generation under `root` and make it current; returns its path and the
    manifest as written (with the unit count and file hashes).

    Keeps the new and the previous generation; removes older ones and any leftovers of
    interrupted saves.
    """
    import faiss

    root.mkdir(parents=True, exist_ok=True)
    previous = read_current(root)
    gens = generations(root)
    gen_name = f"gen-{(gens[-1] + 1) if gens else 1}"
    gen = root / gen_name
    gen.mkdir()

    faiss.write_index(faiss_index, str(gen / INDEX_FILE))
    fsync_file(gen / INDEX_FILE)
    with open(gen / UNITS_FILE, "w", encoding="utf-8") as f:
        for u in units:
            f.write(json.dumps(u.to_json(), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    written = dict(manifest)
    written["n_units"] = len(units)
    written["files"] = {name: sha256_file(gen / name) for name in (INDEX_FILE, UNITS_FILE)}
    with open(gen / MANIFEST_FILE, "w", encoding="utf-8") as f:
        json.dump(written, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(gen)
    write_atomic(root / CURRENT, (gen_name + "\n").encode("utf-8"))  # the commit point

    for debris in [*root.glob(f".{CURRENT}.*.tmp"), root / f"{CURRENT}.tmp"]:
        debris.unlink(missing_ok=True)  # pointer writes a crash interrupted
    keep = {gen_name, previous}
    for n in generations(root):
        if f"gen-{n}" not in keep:
            shutil.rmtree(root / f"gen-{n}", ignore_errors=True)
    return gen, written


def read_generation(root: Path, *, embedder_id: str, dim: int | None) -> tuple[Any, list[Unit], dict[str, Any]]:
    """The FAISS index, units and manifest of the current generation under `root`, verified.

    Raises `IndexNotFoundError` when nothing was built there, `IndexMismatchError` when it
    was built with another embedder (`embedder_id`, `dim`) or format, and
    `IndexCorruptedError` when a file is missing or does not match its hash.
    """
    import faiss

    gen_name = read_current(root)
    if gen_name is None:
        raise IndexNotFoundError(f"no index in {root}: run `csbot build` first")
    if not _GEN_RE.match(gen_name) or not (root / gen_name).is_dir():
        raise IndexCorruptedError(f"{root / CURRENT} points at {gen_name!r}, which does not exist: {_REBUILD}")
    gen = root / gen_name

    manifest_path = gen / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise IndexCorruptedError(f"{manifest_path} is missing or unreadable ({exc}): {_REBUILD}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"{manifest_path} has format version {manifest.get('format_version')!r}; this csbot reads "
            f"version {FORMAT_VERSION}: {_REBUILD}"
        )
    built_with = manifest.get("embedder_id")
    if built_with != embedder_id:
        raise IndexMismatchError(
            f"the index in {root} was built with embedder {built_with!r} but the current embedder is "
            f"{embedder_id!r}: {_REBUILD} (or configure the embedder it was built with)"
        )
    if dim is not None and manifest.get("dim") != dim:
        raise IndexMismatchError(
            f"the index in {root} holds {manifest.get('dim')}-d vectors but the embedder produces "
            f"{dim}-d vectors: {_REBUILD}"
        )

    files = manifest.get("files") or {}
    for name in (INDEX_FILE, UNITS_FILE):
        path = gen / name
        if not path.is_file():
            raise IndexCorruptedError(f"{path} is missing: {_REBUILD}")
        if files.get(name) != sha256_file(path):
            raise IndexCorruptedError(
                f"{path} does not match its hash in the manifest (truncated or modified): {_REBUILD}"
            )
    try:
        index = faiss.read_index(str(gen / INDEX_FILE))
    except RuntimeError as exc:
        raise IndexCorruptedError(f"{gen / INDEX_FILE} cannot be read by FAISS ({exc}): {_REBUILD}") from exc
    try:
        with open(gen / UNITS_FILE, encoding="utf-8") as f:
            units = [Unit.from_json(json.loads(line)) for line in f if line.strip()]
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexCorruptedError(f"{gen / UNITS_FILE} is unreadable ({exc}): {_REBUILD}") from exc
    if not (index.ntotal == len(units) == manifest.get("n_units")) or index.d != manifest.get("dim"):
        raise IndexCorruptedError(
            f"{gen} is inconsistent: {index.ntotal} vectors of dim {index.d}, {len(units)} units, manifest says "
            f"{manifest.get('n_units')} of dim {manifest.get('dim')}: {_REBUILD}"
        )
    return index, units, manifest
