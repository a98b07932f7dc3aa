"""The vector index: FAISS inner-product search over units, saved atomically on disk.

Layout of an index directory::

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
import math
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.config import IndexConfig
from retrieval.dedup import jaccard, normalise
from retrieval.errors import (
    IndexCorruptedError,
    IndexMismatchError,
    IndexNotFoundError,
    RetrievalError,
)
from retrieval.files import fsync_dir, fsync_file, write_atomic
from retrieval.ingest import sha256_file
from retrieval.types import Hit, Unit

if TYPE_CHECKING:
    import numpy as np

FORMAT_VERSION = 1
CURRENT = "CURRENT"
INDEX_FILE, UNITS_FILE, MANIFEST_FILE = "index.faiss", "units.jsonl", "manifest.json"
_GEN_RE = re.compile(r"^gen-(\d+)$")
# candidates fetched per requested hit, so folding duplicates still leaves k hits
FETCH_FACTOR = 4
_REBUILD = "rebuild it with `csbot build`"


def _as_matrix(vectors: Any, what: str) -> np.ndarray:
    import numpy as np

    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array (n, dim), got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _generations(directory: Path) -> list[int]:
    gens = []
    if directory.is_dir():
        for child in directory.iterdir():
            m = _GEN_RE.match(child.name)
            if m and child.is_dir():
                gens.append(int(m.group(1)))
    return sorted(gens)


def _read_current(directory: Path) -> str | None:
    try:
        name = (directory / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name


class VectorIndex:
    """Implements `bot.contracts.Retriever`: cosine search over units with near-duplicate folding.

    Create with `VectorIndex.build(...)` or `VectorIndex.load(...)`. Vectors must be
    L2-normalised (inner product = cosine), as `SentenceEmbedder.encode` returns them.
    Thread count for FAISS is process-wide: see `retrieval.threads.configure_threads`.
    """

    def __init__(
        self,
        faiss_index: Any,
        units: list[Unit],
        *,
        embedder_id: str,
        kind_used: str,
        config: IndexConfig,
        manifest: dict[str, Any],
    ) -> None:
        self._index = faiss_index
        self._units = list(units)
        self._by_id = {u.id: i for i, u in enumerate(self._units)}
        self._tokens: dict[int, frozenset[str]] = {}
        # (intent, kind) -> unit positions, filled by filtered searches, reset by add()
        self._filter_positions: dict[tuple[str | None, str | None], Any] | None = None
        self.embedder_id = embedder_id
        self.kind_used = kind_used
        self.config = config
        self._manifest = manifest
        self._apply_runtime_params()

    # --- construction --------------------------------------------------------------

    @classmethod
    def build(
        cls,
        units: list[Unit],
        vectors: np.ndarray,
        *,
        embedder_id: str,
        config: IndexConfig | None = None,
        sources: dict[str, str] | None = None,
    ) -> VectorIndex:
        """Build an index over `units` (row i of `vectors` embeds `units[i]`).

        Kind: `flat` (exact) when asked, or when `auto` and fewer than
        `config.ann_threshold` units; `hnsw` when `auto` and larger; `ivf` only when asked.
        `sources` maps source file names to their sha256 (recorded in the manifest).
        """
        import faiss

        config = config or IndexConfig()
        mat = _as_matrix(vectors, "vectors")
        n, dim = mat.shape
        if n != len(units):
            raise ValueError(f"{len(units)} units but {n} vectors: pass one vector per unit")
        if dim == 0:
            raise ValueError("vectors have dimension 0")
        _check_unique([u.id for u in units], set())
        kind = config.kind
        if kind == "auto":
            kind = "hnsw" if n >= config.ann_threshold else "flat"
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.hnsw_ef_construction
        elif kind == "ivf":
            if n == 0:
                raise ValueError("an ivf index must be trained: build it with at least one unit, or use kind 'flat'")
            # sqrt(n) lists by default, but at least ~39 training points per list (FAISS's
            # own minimum for stable k-means) and never more lists than points
            nlist = config.ivf_nlist or max(1, min(round(math.sqrt(n)), n // 39))
            nlist = min(nlist, n)
            index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
            index.train(mat)
        else:
            raise ValueError(f"unknown index kind {config.kind!r}; expected auto, flat, hnsw or ivf")
        if n:
            index.add(mat)
        manifest = {
            "format_version": FORMAT_VERSION,
            "embedder_id": embedder_id,
            "dim": dim,
            "index_kind": kind,
            "index_config": asdict(config),
            "n_units": n,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "sources": dict(sources or {}),
            "files": {},
        }
        return cls(index, units, embedder_id=embedder_id, kind_used=kind, config=config, manifest=manifest)

    def _apply_runtime_params(self) -> None:
        import faiss

        ps = faiss.ParameterSpace()
        if self.kind_used == "hnsw":
            ps.set_index_parameter(self._index, "efSearch", self.config.hnsw_ef_search)
        elif self.kind_used == "ivf":
            ps.set_index_parameter(self._index, "nprobe", self.config.ivf_nprobe)

    # --- contents ------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self._index.d)

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest (as saved, or as it would be saved); a copy."""
        return json.loads(json.dumps(self._manifest))

    @property
    def units(self) -> Sequence[Unit]:
        """Units by position (position = FAISS id)."""
        return tuple(self._units)

    def __len__(self) -> int:
        return len(self._units)

    def get(self, unit_id: str) -> Unit | None:
        """The unit with id `unit_id`, or None."""
        pos = self._by_id.get(unit_id)
        return None if pos is None else self._units[pos]

    def add(self, units: list[Unit], vectors: np.ndarray, *, sources: dict[str, str] | None = None) -> None:
        """Add units incrementally (no rebuild). Duplicate ids or a wrong dim raise, adding nothing.

        `sources` (file name -> sha256) are merged into the manifest's sources.
        """
        mat = _as_matrix(vectors, "vectors")
        if mat.shape[0] != len(units):
            raise ValueError(f"{len(units)} units but {mat.shape[0]} vectors: pass one vector per unit")
        if mat.shape[1] != self.dim:
            raise IndexMismatchError(
                f"vectors have dimension {mat.shape[1]} but the index has {self.dim}: "
                f"encode with the embedder the index was built with ({self.embedder_id})"
            )
        _check_unique([u.id for u in units], set(self._by_id))
        if not units:
            return
        self._index.add(mat)
        for u in units:
            self._by_id[u.id] = len(self._units)
            self._units.append(u)
        self._filter_positions = None
        self._manifest["n_units"] = len(self._units)
        self._manifest["sources"].update(sources or {})

    # --- search --------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int = 5, *, intent: str | None = None, kind: str | None = None) -> list[Hit]:
        """Up to `k` hits for one query vector (shape (dim,) or (1, dim)), best first.

        More candidates than `k` are fetched and near-duplicate replies folded into the
        better-scoring hit (their ids in `Hit.duplicates`). With `intent` and/or `kind`,
        only units with that intent/kind are searched (a FAISS ID selector, so the filter
        applies before the top-k cut, not after it).
        """
        mat = _as_matrix(query, "query")
        if mat.shape[0] != 1:
            raise ValueError(f"search() takes one query, got {mat.shape[0]}: use search_batch()")
        return self.search_batch(mat, k, intent=intent, kind=kind)[0]

    def _selector_params(self, intent: str | None, kind: str | None) -> Any | None:
        """FAISS search parameters restricting the search to units with `intent` (if
        given) and `kind` (if given), or None when no unit matches."""
        import faiss
        import numpy as np

        key = (intent, kind)
        if self._filter_positions is None:
            self._filter_positions = {}
        positions = self._filter_positions.get(key)
        if positions is None:
            positions = np.array(
                [
                    i
                    for i, u in enumerate(self._units)
                    if (intent is None or u.intent == intent) and (kind is None or u.kind == kind)
                ],
                dtype="int64",
            )
            self._filter_positions[key] = positions
        if positions.size == 0:
            return None
        selector = faiss.IDSelectorBatch(positions)
        if self.kind_used == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.config.hnsw_ef_search)
        elif self.kind_used == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.config.ivf_nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        params._keep_alive = (selector, positions)  # the C++ side holds raw pointers to both
        return params

    def search_batch(
        self, queries: np.ndarray, k: int = 5, *, intent: str | None = None, kind: str | None = None
    ) -> list[list[Hit]]:
        """`search` for each row of `queries` (n, dim); one FAISS call for all of them."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        mat = _as_matrix(queries, "queries")
        if mat.shape[1] != self.dim:
            raise IndexMismatchError(
                f"query has dimension {mat.shape[1]} but the index has {self.dim}: "
                f"encode queries with the embedder the index was built with ({self.embedder_id})"
            )
        if not self._units or mat.shape[0] == 0:
            return [[] for _ in range(mat.shape[0])]
        fetch = min(len(self._units), k * FETCH_FACTOR)
        if intent is None and kind is None:
            scores, ids = self._index.search(mat, fetch)
        else:
            params = self._selector_params(intent, kind)
            if params is None:
                return [[] for _ in range(mat.shape[0])]
            scores, ids = self._index.search(mat, fetch, params=params)
        return [self._fold(row_ids, row_scores, k) for row_ids, row_scores in zip(ids, scores)]

    def _token_set(self, pos: int) -> frozenset[str]:
        toks = self._tokens.get(pos)
        if toks is None:
            toks = self._tokens[pos] = normalise(self._units[pos].evidence_text)
        return toks

    def _fold(self, ids: Any, scores: Any, k: int) -> list[Hit]:
        kept: list[tuple[int, float, list[str]]] = []
        threshold = self.config.dedup_jaccard
        for pos, score in zip(ids.tolist(), scores.tolist()):
            if pos < 0:  # FAISS pads with -1 when it finds fewer than asked
                continue
            toks = self._token_set(pos)
            for kept_pos, _, dups in kept:
                if jaccard(toks, self._token_set(kept_pos)) >= threshold:
                    dups.append(self._units[pos].id)
                    break
            else:
                if len(kept) < k:
                    kept.append((pos, float(score), []))
                # once k hits are kept, later candidates only matter as duplicates
        return [Hit(unit=self._units[p], score=s, duplicates=tuple(d)) for p, s, d in kept]

    # --- persistence ---------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write a new generation under `directory` and make it current; returns its path.

        Keeps the new and the previous generation; removes older ones and any leftovers
        of interrupted saves.
        """
        import faiss

        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        previous = _read_current(root)
        gens = _generations(root)
        gen_name = f"gen-{(gens[-1] + 1) if gens else 1}"
        gen = root / gen_name
        gen.mkdir()

        faiss.write_index(self._index, str(gen / INDEX_FILE))
        fsync_file(gen / INDEX_FILE)
        with open(gen / UNITS_FILE, "w", encoding="utf-8") as f:
            for u in self._units:
                f.write(json.dumps(u.to_json(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        manifest = dict(self._manifest)
        manifest["n_units"] = len(self._units)
        manifest["files"] = {name: sha256_file(gen / name) for name in (INDEX_FILE, UNITS_FILE)}
        with open(gen / MANIFEST_FILE, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(gen)
        write_atomic(root / CURRENT, (gen_name + "\n").encode("utf-8"))  # the commit point
        self._manifest = manifest

        for debris in [*root.glob(f".{CURRENT}.*.tmp"), root / f"{CURRENT}.tmp"]:
            debris.unlink(missing_ok=True)  # pointer writes a crash interrupted
        keep = {gen_name, previous}
        for n in _generations(root):
            if f"gen-{n}" not in keep:
                shutil.rmtree(root / f"gen-{n}", ignore_errors=True)
        return gen

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        embedder_id: str,
        dim: int | None = None,
        config: IndexConfig | None = None,
    ) -> VectorIndex:
        """Load the current generation of the index in `directory`, verifying it.

        Raises `IndexNotFoundError` when nothing was built there, `IndexMismatchError`
        when it was built with another embedder (`embedder_id`, `dim`) or format, and
        `IndexCorruptedError` when a file is missing or does not match its hash.
        Runtime search parameters (efSearch, nprobe, dedup) come from `config`; without
        one, from the config the index was built with.
        """
        import faiss

        root = Path(directory)
        gen_name = _read_current(root)
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
        if config is None:
            known = {f.name for f in fields(IndexConfig)}
            config = IndexConfig(**{k: v for k, v in (manifest.get("index_config") or {}).items() if k in known})
        return cls(
            index,
            units,
            embedder_id=embedder_id,
            kind_used=str(manifest.get("index_kind")),
            config=config,
            manifest=manifest,
        )


def _check_unique(ids: list[str], existing: set[str]) -> None:
    seen = set(existing)
    for uid in ids:
        if uid in seen:
            where = "already in the index" if uid in existing else "given twice"
            raise RetrievalError(
                f"duplicate unit id {uid!r} ({where}): unit ids must be unique; re-ingest with distinct ids"
            )
        seen.add(uid)
