"""The vector index: FAISS inner-product search over units, with near-duplicate folding.

Saved atomically on disk as generations (`retrieval.index_files`): a crash at any moment
leaves the previous complete, verified index in use.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.config import IndexConfig
from retrieval.dedup import jaccard, normalise
from retrieval.errors import (
    IndexMismatchError,
    RetrievalError,
)
from retrieval.index_files import FORMAT_VERSION, read_generation, write_generation
from retrieval.types import Hit, Unit

if TYPE_CHECKING:
    import numpy as np

# candidates fetched per requested hit, so folding duplicates still leaves k hits
FETCH_FACTOR = 4


def _as_matrix(vectors: Any, what: str) -> np.ndarray:
    import numpy as np

    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array (n, dim), got shape {arr.shape}")
    return np.ascontiguousarray(arr)


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
        index: faiss.Index
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            hnsw_index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw_index.hnsw.efConstruction = config.hnsw_ef_construction
            index = hnsw_index
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
        better-scoring hit (their ids in `Hit.duplicates`: those met before the k-th hit). With `intent` and/or `kind`,
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
        params: faiss.SearchParameters
        if self.kind_used == "hnsw":
            hnsw_params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # in faiss, not in its stubs
            hnsw_params.efSearch = self.config.hnsw_ef_search
            params = hnsw_params
        elif self.kind_used == "ivf":
            ivf_params = faiss.SearchParametersIVF()
            ivf_params.nprobe = self.config.ivf_nprobe
            params = ivf_params
        else:
            params = faiss.SearchParameters()
        params.sel = selector
        # the C++ side holds raw pointers to both; the proxy takes Python attributes, the stubs know none
        params._keep_alive = (selector, positions)  # type: ignore[attr-defined]
        return params

    def search_batch(
        self,
        queries: np.ndarray,
        k: int = 5,
        *,
        intent: str | None = None,
        kind: str | None = None,
        exclude_sources: Sequence[str] | None = None,
    ) -> list[list[Hit]]:
        """`search` for each row of `queries` (n, dim); one FAISS call for all of them.

        `exclude_sources` (one source id per query row): that row's hits leave out the units
        of that source before near-duplicates are folded, so a copy of the same reply from
        another source still counts, at its own rank. Pairs built from indexed conversations
        need this to see what retrieval shows a new conversation: leaving out a folded hit
        whose best copy is the source's own would drop every other copy with it.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        mat = _as_matrix(queries, "queries")
        if exclude_sources is not None and len(exclude_sources) != mat.shape[0]:
            raise ValueError(f"{mat.shape[0]} queries but {len(exclude_sources)} exclude_sources: pass one per query")
        if mat.shape[1] != self.dim:
            raise IndexMismatchError(
                f"query has dimension {mat.shape[1]} but the index has {self.dim}: "
                f"encode queries with the embedder the index was built with ({self.embedder_id})"
            )
        if not self._units or mat.shape[0] == 0:
            return [[] for _ in range(mat.shape[0])]
        excluded_units = 0
        if exclude_sources is not None:
            per_source = Counter(u.source_id for u in self._units)
            excluded_units = max((per_source[s] for s in exclude_sources), default=0)
        fetch = min(len(self._units), (k + excluded_units) * FETCH_FACTOR)
        if intent is None and kind is None:
            scores, ids = self._index.search(mat, fetch)
        else:
            params = self._selector_params(intent, kind)
            if params is None:
                return [[] for _ in range(mat.shape[0])]
            scores, ids = self._index.search(mat, fetch, params=params)
        excluded = exclude_sources if exclude_sources is not None else [None] * len(ids)
        return [
            self._fold(row_ids, row_scores, k, source)
            for row_ids, row_scores, source in zip(ids, scores, excluded, strict=True)
        ]

    def _token_set(self, pos: int) -> frozenset[str]:
        toks = self._tokens.get(pos)
        if toks is None:
            toks = self._tokens[pos] = normalise(self._units[pos].evidence_text)
        return toks

    def _fold(self, ids: Any, scores: Any, k: int, exclude_source: str | None = None) -> list[Hit]:
        kept: list[tuple[int, float, list[str]]] = []
        threshold = self.config.dedup_jaccard
        for pos, score in zip(ids.tolist(), scores.tolist(), strict=True):
            if pos < 0:  # FAISS pads with -1 when it finds fewer than asked
                continue
            if exclude_source is not None and self._units[pos].source_id == exclude_source:
                continue
            toks = self._token_set(pos)
            for kept_pos, _, dups in kept:
                if jaccard(toks, self._token_set(kept_pos)) >= threshold:
                    dups.append(self._units[pos].id)
                    break
            else:
                kept.append((pos, float(score), []))
                if len(kept) == k:
                    # the rest could only add duplicates to hits already kept, and comparing
                    # each with all k kept hits is most of a large search's cost (k = 20 for
                    # the composer's vote)
                    break
        return [Hit(unit=self._units[p], score=s, duplicates=tuple(d)) for p, s, d in kept]

    # --- persistence ---------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write a new generation under `directory` and make it current; returns its path.

        Keeps the new and the previous generation; removes older ones and any leftovers
        of interrupted saves (`retrieval.index_files.write_generation`).
        """
        gen, self._manifest = write_generation(Path(directory), self._index, self._units, self._manifest)
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
        index, units, manifest = read_generation(Path(directory), embedder_id=embedder_id, dim=dim)
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
