"""Saving and loading a trained intent classifier as plain data, without pickle.

A pickle (what joblib writes) runs code when it is loaded, so a workspace folder that
someone else can write would become a way to run code in the bot. The trained state is
only numbers and strings, so it is saved as exactly that:

    intents.json        metadata: config, labels, thresholds, calibration, and the SHA-256
                        of the two files below (a torn or corrupted write is refused)
    intents.npz         the arrays (linear model, TF-IDF idf, training vectors, OOS
                        combiner), read with `numpy.load(allow_pickle=False)`
    intents.vocab.json  the TF-IDF vocabularies, as lists of terms in column order

Loading rebuilds the classifier from those values alone: the linear models are applied
as `X @ coef.T + intercept` (`bot.intents.linear`, the same code at training and after
loading, so a load predicts exactly what training did), and the TF-IDF vectorizers are
constructed from the config with the saved vocabulary and idf (scikit-learn's public
`vocabulary=` / `idf_`). numpy arrays plus JSON were chosen over skops (a trusted-types
list to keep in step with scikit-learn's internals, and its loader still rebuilds objects)
and safetensors (tensors only: the vocabularies would need a second format anyway): both
are plain data whose readers cannot run code, and neither needs a new dependency. The
hashes guard against corruption, not against an attacker, who could rewrite them; what
such an attacker can still do is make the bot classify badly, not run code. Models saved
by earlier versions (`intents.joblib`) are refused with a message to run `csbot build` again.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import ArtifactMismatchError, WorkspaceNotBuiltError
from bot.intents.config import IntentClassifierConfig
from bot.intents.errors import IntentModelError
from bot.intents.features import FeatureBuilder
from bot.intents.linear import LinearModel
from bot.intents.scoring import N_COMBINER_FEATURES, IntentScorer, OosCombiner
from retrieval.files import write_atomic

METADATA_FILE = "intents.json"
ARRAYS_FILE = "intents.npz"
VOCAB_FILE = "intents.vocab.json"
# 1: a joblib pickle (intents.joblib), no longer loaded; 2: arrays + JSON
FORMAT_VERSION = 2
LEGACY_PICKLE_FILE = "intents.joblib"
_REBUILD = "run `csbot build` again to retrain it"

_SCORER_ARRAYS = {"coef", "intercept", "classes", "train_vectors", "train_y"}
_TEXT_ARRAYS = {"word_idf", "char_idf"}
_COMBINER_ARRAYS = {"meta_mean", "meta_scale", "meta_coef", "meta_intercept", "meta_classes"}


@dataclass(frozen=True)
class SavedModel:
    """Everything a saved classifier is rebuilt from, checked against its metadata."""

    scorer: IntentScorer
    labels: tuple[str, ...]
    config: IntentClassifierConfig
    thresholds: dict[str, float]
    nearest_floor: float
    combiner: OosCombiner | None
    metadata: dict[str, Any]


def write_model(
    directory: Path, scorer: IntentScorer, combiner: OosCombiner | None, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Write the three files of the module docstring (no pickle anywhere); returns the
    metadata as written (with the format version and the data files' hashes)."""
    directory.mkdir(parents=True, exist_ok=True)
    idf, vocab = scorer.features.state()
    arrays: dict[str, np.ndarray] = {
        "coef": scorer.model.coef,
        "intercept": scorer.model.intercept,
        "classes": scorer.model.classes_,
        "train_vectors": np.ascontiguousarray(scorer.train_vectors, dtype=np.float32),
        "train_y": np.asarray(scorer.train_y, dtype=np.int64),
        **idf,
    }
    if combiner is not None:
        arrays.update(
            meta_mean=combiner.mean,
            meta_scale=combiner.scale,
            meta_coef=combiner.model.coef,
            meta_intercept=combiner.model.intercept,
            meta_classes=combiner.model.classes_,
        )
    buf = io.BytesIO()
    # numpy's stub matches **arrays against its `allow_pickle: bool` keyword as well
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    blobs = {
        ARRAYS_FILE: buf.getvalue(),
        VOCAB_FILE: json.dumps(vocab, ensure_ascii=False).encode("utf-8"),
    }
    written = dict(metadata)
    written["format_version"] = FORMAT_VERSION
    written["files"] = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    # the data files first, the metadata (which names their hashes) last: a crash in
    # between leaves a pair that read_model() reports as mismatched
    for name, blob in blobs.items():
        write_atomic(directory / name, blob)
    write_atomic(directory / METADATA_FILE, json.dumps(written, indent=2, sort_keys=True).encode())
    (directory / LEGACY_PICKLE_FILE).unlink(missing_ok=True)
    return written


def read_model(directory: Path, *, embedder_id: str, dim: int) -> SavedModel:
    """A saved classifier's parts, rebuilt from plain data. Refuses (typed errors that say
    to run `csbot build`) a missing, corrupted, tampered, inconsistent or pickled model, and
    one trained on another embedder."""
    meta_path = directory / METADATA_FILE
    if not meta_path.is_file():
        if (directory / LEGACY_PICKLE_FILE).is_file():
            raise _legacy(directory)
        raise WorkspaceNotBuiltError(str(directory), f"intent model ({METADATA_FILE})")
    metadata = _read_metadata(meta_path)
    if metadata.get("format_version") != FORMAT_VERSION:
        if metadata.get("format_version") == 1 or metadata.get("model_file") == LEGACY_PICKLE_FILE:
            raise _legacy(directory)
        raise IntentModelError(
            f"intent model in {directory} has format version {metadata.get('format_version')!r}; "
            f"this csbot reads version {FORMAT_VERSION}: {_REBUILD}"
        )
    try:
        config = IntentClassifierConfig.from_dict(metadata["config"])
        saved_id, saved_dim = metadata["embedder_id"], int(metadata["dim"])
        labels = tuple(metadata["labels"])
        thresholds = {str(k): float(v) for k, v in metadata["thresholds"].items()}
        floor = float(metadata["nearest_floor"])
        temperature = float(metadata["temperature"])
        hashes = {name: str(metadata["files"][name]) for name in (ARRAYS_FILE, VOCAB_FILE)}
        if not all(isinstance(lab, str) for lab in labels) or config.oos_score not in thresholds:
            raise ValueError("labels must be strings and the decision score must have a threshold")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntentModelError(f"intent model metadata {meta_path} is corrupted ({exc}); {_REBUILD}") from exc
    if saved_id != embedder_id or saved_dim != dim:
        raise ArtifactMismatchError(
            f"intent model in {directory} was trained on embedder {saved_id!r} (dim {saved_dim}) "
            f"but the bot now uses {embedder_id!r} (dim {dim}); rerun `csbot build` to retrain it"
        )
    blobs = {}
    for name, digest in hashes.items():
        path = directory / name
        if not path.is_file():
            raise IntentModelError(f"intent model in {directory} has no {name}; {_REBUILD}")
        blob = path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != digest:
            raise IntentModelError(
                f"intent model file {path} does not match its metadata (corrupted, tampered with "
                f"or partially written); {_REBUILD}"
            )
        blobs[name] = blob
    try:
        arrays = _read_arrays(blobs[ARRAYS_FILE])
        vocab = _read_vocabularies(blobs[VOCAB_FILE], config)
        scorer, combiner = _restore(arrays, vocab, config, temperature, labels, saved_dim)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile, RecursionError) as exc:
        raise IntentModelError(
            f"intent model in {directory} cannot be read or is inconsistent with its metadata "
            f"({type(exc).__name__}: {exc}); {_REBUILD}"
        ) from exc
    return SavedModel(scorer, labels, config, thresholds, floor, combiner, metadata)


def _legacy(directory: Path) -> IntentModelError:
    return IntentModelError(
        f"the intent model in {directory} was saved by an earlier csbot as a pickle "
        f"({LEGACY_PICKLE_FILE}), which this version does not load because loading a pickle can "
        f"run code; run `csbot build` again to retrain it in the current format"
    )


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise IntentModelError(f"intent model metadata {path} is corrupted ({exc}); {_REBUILD}") from exc
    if not isinstance(metadata, dict):
        raise IntentModelError(f"intent model metadata {path} is corrupted (not a JSON object); {_REBUILD}")
    return metadata


def _read_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of an .npz, refusing anything but plain numeric arrays: allow_pickle=False
    makes numpy raise on an object array (the one kind whose reading unpickles)."""
    loaded = np.load(io.BytesIO(blob), allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("not an .npz archive")
    with loaded as npz:
        arrays = {name: npz[name] for name in npz.files}
    expected = _SCORER_ARRAYS | (_TEXT_ARRAYS & arrays.keys()) | (_COMBINER_ARRAYS & arrays.keys())
    if set(arrays) != expected:
        raise ValueError(f"missing or unexpected arrays: {sorted(set(arrays) ^ expected)}")
    for name, a in arrays.items():
        if a.dtype.kind not in "fiu":
            raise ValueError(f"array {name!r} has dtype {a.dtype}, expected numbers")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ValueError(f"array {name!r} holds NaN or infinite values")
    return arrays


def _read_vocabularies(blob: bytes, config: IntentClassifierConfig) -> dict[str, list[str]]:
    vocab = json.loads(blob.decode("utf-8"))
    names = {"word", "char"} if config.use_text_features else set()
    if not isinstance(vocab, dict) or set(vocab) != names:
        raise ValueError(f"vocabularies must be an object with keys {sorted(names)}")
    for name, terms in vocab.items():
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise ValueError(f"the {name} vocabulary must be a list of strings")
        if len(set(terms)) != len(terms):
            raise ValueError(f"the {name} vocabulary repeats a term")
    return vocab


def _restore(
    arrays: dict[str, np.ndarray],
    vocab: dict[str, list[str]],
    config: IntentClassifierConfig,
    temperature: float,
    labels: tuple[str, ...],
    dim: int,
) -> tuple[IntentScorer, OosCombiner | None]:
    """The scorer (and the OOS combiner) from checked arrays; every shape is checked against
    the metadata, so what predicts is exactly what was saved or nothing."""
    if config.use_text_features != (arrays.keys() >= _TEXT_ARRAYS):
        raise ValueError("TF-IDF arrays present or missing against the config")
    features = FeatureBuilder.restore(config, arrays, vocab)
    n_features = dim + features.n_text_features
    n_classes = len(labels)
    classes = arrays["classes"]
    model = LinearModel(
        arrays["coef"].astype(np.float64), arrays["intercept"].astype(np.float64), classes.astype(np.int64)
    )
    rows = 1 if n_classes == 2 else n_classes
    if not np.array_equal(classes, np.arange(n_classes)):
        raise ValueError(f"classes must be 0..{n_classes - 1}")
    if model.coef.shape != (rows, n_features) or model.intercept.shape != (rows,):
        raise ValueError(
            f"linear model has shape {model.coef.shape} / {model.intercept.shape}, "
            f"expected ({rows}, {n_features}) / ({rows},)"
        )
    train_vectors = np.ascontiguousarray(arrays["train_vectors"], dtype=np.float32)
    train_y = arrays["train_y"].astype(np.int64)
    if train_vectors.ndim != 2 or train_vectors.shape[1] != dim or train_y.shape != (len(train_vectors),):
        raise ValueError(f"training vectors have shape {train_vectors.shape}, labels {train_y.shape}")
    if len(train_y) and (train_y.min() < 0 or train_y.max() >= n_classes):
        raise ValueError("training labels out of range")
    combiner = None
    if arrays.keys() >= _COMBINER_ARRAYS:
        lr = LinearModel(
            arrays["meta_coef"].astype(np.float64),
            arrays["meta_intercept"].astype(np.float64),
            arrays["meta_classes"].astype(np.int64),
        )
        if (
            lr.coef.shape != (1, N_COMBINER_FEATURES)
            or lr.intercept.shape != (1,)
            or arrays["meta_mean"].shape != (N_COMBINER_FEATURES,)
            or arrays["meta_scale"].shape != (N_COMBINER_FEATURES,)
        ):
            raise ValueError("the OOS combiner's arrays have the wrong shapes")
        combiner = OosCombiner(arrays["meta_mean"].astype(np.float64), arrays["meta_scale"].astype(np.float64), lr)
    elif _COMBINER_ARRAYS & arrays.keys():
        raise ValueError("the OOS combiner's arrays are incomplete")
    return IntentScorer(features, model, temperature, train_vectors, train_y), combiner
