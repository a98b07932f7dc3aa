"""Intent classification with out-of-scope (OOS) detection.

The classifier reads the query vector the dialogue manager already computed for retrieval
(the shared `Embedder`, L2-normalised rows) and, cheaply, the raw text: features are the
embedding hstacked with word and character n-gram TF-IDF, fed to one linear SVM. Its
decision values become probabilities through a softmax with a fitted temperature
(temperature scaling, minimising held-out log-loss), so `confidence` can be thresholded.

OOS detection is calibrated without any OOS data. The training intents are split into
`oos_holdout_folds` folds; for each fold a model is trained on the other intents' rows
(minus an in-scope validation slice), and the held-out fold's rows play the unknown
queries. Several OOS signals are computed on those rows (max probability, energy, cosine
to the nearest training example, cosine to the predicted intent's nearest examples) and
combined by a small logistic regression; the threshold on the combined score is the one
that flags the most pseudo-OOS rows while losing at most `oos_max_inscope_loss` of the
in-scope validation accuracy. A hard floor on the nearest-example cosine, taken from the
in-scope rows alone, makes sure text that is far from everything the bot knows (weather,
stock tips, recipes) is flagged whatever the linear model says.

Saved without pickle. A pickle (what joblib writes) runs code when it is loaded, so a
workspace folder that someone else can write would become a way to run code in the bot.
The trained state is only numbers and strings, so it is saved as exactly that:

    intents.json        metadata: config, labels, thresholds, calibration, and the SHA-256
                        of the two files below (a torn or corrupted write is refused)
    intents.npz         the arrays (linear model, TF-IDF idf, training vectors, OOS
                        combiner), read with `numpy.load(allow_pickle=False)`
    intents.vocab.json  the TF-IDF vocabularies, as lists of terms in column order

Loading rebuilds the classifier from those values alone: the linear models are applied
as `X @ coef.T + intercept` here (the same code at training and after loading, so a load
predicts exactly what training did), and the TF-IDF vectorizers are constructed from the
config with the saved vocabulary and idf (scikit-learn's public `vocabulary=` / `idf_`).
numpy arrays plus JSON were chosen over skops (a trusted-types list to keep in step with
scikit-learn's internals, and its loader still rebuilds objects) and safetensors (tensors
only: the vocabularies would need a second format anyway): both are plain data whose
readers cannot run code, and neither needs a new dependency. The hashes guard against
corruption, not against an attacker, who could rewrite them; what such an attacker can
still do is make the bot classify badly, not run code. Models saved by earlier versions
(`intents.joblib`) are refused with a message to run `csbot build` again.

Importing this module does not import torch.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bot.contracts import IntentPrediction
from bot.errors import ArtifactMismatchError, CsbotError, WorkspaceNotBuiltError
from retrieval.files import write_atomic

OosScore = Literal["combined", "max_prob", "energy", "nearest", "class_nearest"]
OOS_SCORES: tuple[str, ...] = ("combined", "max_prob", "energy", "nearest", "class_nearest")

METADATA_FILE = "intents.json"
ARRAYS_FILE = "intents.npz"
VOCAB_FILE = "intents.vocab.json"
# 1: a joblib pickle (intents.joblib), no longer loaded; 2: arrays + JSON
FORMAT_VERSION = 2
LEGACY_PICKLE_FILE = "intents.joblib"
_REBUILD = "run `csbot build` again to retrain it"


class IntentTrainingError(CsbotError, ValueError):
    """The training data cannot make a classifier (too few labels or examples, bad shapes)."""


class IntentModelError(ArtifactMismatchError):
    """A saved intent model is unreadable, corrupted, inconsistent with its metadata or in
    a format this version does not load (the pickle of earlier versions)."""


@dataclass(frozen=True)
class IntentClassifierConfig:
    # LinearSVC regularisation (1.0 was best or tied on a BANKING77 held-out split)
    C: float = 1.0
    # add word (1-2) and char (3-6) n-gram TF-IDF of the raw text to the embedding
    use_text_features: bool = True
    # block weights in the concatenated feature vector (each block is L2-normalised)
    embedding_weight: float = 1.5
    word_weight: float = 0.7
    char_weight: float = 0.7
    word_ngram_range: tuple[int, int] = (1, 2)
    char_ngram_range: tuple[int, int] = (3, 6)
    char_min_df: int = 2
    # OOS calibration: folds of intents held out as pseudo-unknown
    oos_holdout_folds: int = 3
    # in-scope accuracy we accept to lose to OOS flagging (0.02 = 2 points)
    oos_max_inscope_loss: float = 0.02
    # part of that budget spent on the nearest-example cosine floor (the off-topic net)
    oos_floor_loss: float = 0.002
    # which score decides OOS (thresholds for all are calibrated and saved)
    oos_score: OosScore = "combined"
    # share of each known intent's rows kept out of calibration models (in-scope validation)
    calibration_val_fraction: float = 0.2
    # neighbours of the predicted intent averaged in the `class_nearest` score
    class_neighbors: int = 3
    min_examples_per_label: int = 3
    ranking_size: int = 3
    max_iter: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.oos_score not in OOS_SCORES:
            raise ValueError(f"oos_score must be one of {OOS_SCORES}, got {self.oos_score!r}")
        if not 0.0 <= self.oos_max_inscope_loss < 1.0:
            raise ValueError("oos_max_inscope_loss must be in [0, 1)")
        if not 0.0 <= self.oos_floor_loss <= self.oos_max_inscope_loss:
            raise ValueError("oos_floor_loss must be in [0, oos_max_inscope_loss]")
        if self.oos_holdout_folds < 2:
            raise ValueError("oos_holdout_folds must be at least 2")
        if self.min_examples_per_label < 2:
            raise ValueError("min_examples_per_label must be at least 2")
        if not 0.0 < self.calibration_val_fraction < 1.0:
            raise ValueError("calibration_val_fraction must be in (0, 1)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntentClassifierConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**kwargs)


# --------------------------------------------------------------------------- features


class _FeatureBuilder:
    """Embedding (+ TF-IDF word and char n-grams) -> one sparse row per query."""

    def __init__(self, config: IntentClassifierConfig):
        self.config = config
        self.word: Any = None
        self.char: Any = None

    def _vectorizers(self, n_texts: int = 0, vocabularies: dict[str, list[str]] | None = None):
        """The word and char TF-IDF vectorizers the config describes; with `vocabularies`
        (saved ones) they are fixed to those columns and need only their idf."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        c = self.config
        vocab = vocabularies or {}
        word = TfidfVectorizer(
            ngram_range=tuple(c.word_ngram_range),
            sublinear_tf=True,
            token_pattern=r"(?u)\b\w+\b",
            dtype=np.float32,
            vocabulary=vocab.get("word"),
        )
        char = TfidfVectorizer(
            analyzer="char",
            ngram_range=tuple(c.char_ngram_range),
            sublinear_tf=True,
            min_df=c.char_min_df if n_texts >= 50 else 1,
            dtype=np.float32,
            vocabulary=vocab.get("char"),
        )
        return word, char

    def fit_transform(self, vectors: np.ndarray, texts: Sequence[str]):
        if self.config.use_text_features:
            self.word, self.char = self._vectorizers(len(texts))
            self.word.fit(texts)
            self.char.fit(texts)
        return self.transform(vectors, texts)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        """(idf arrays, vocabularies in column order): what `restore` needs."""
        if self.word is None:
            return {}, {}
        arrays, vocab = {}, {}
        for name, vec in (("word", self.word), ("char", self.char)):
            terms = [""] * len(vec.vocabulary_)
            for term, column in vec.vocabulary_.items():
                terms[column] = term
            vocab[name] = terms
            arrays[f"{name}_idf"] = np.asarray(vec.idf_)
        return arrays, vocab

    @classmethod
    def restore(
        cls, config: IntentClassifierConfig, arrays: dict[str, np.ndarray], vocab: dict[str, list[str]]
    ) -> _FeatureBuilder:
        fb = cls(config)
        if config.use_text_features:
            fb.word, fb.char = fb._vectorizers(vocabularies=vocab)
            for name, vec in (("word", fb.word), ("char", fb.char)):
                vec.idf_ = arrays[f"{name}_idf"]  # also checks it against the vocabulary
        return fb

    @property
    def n_text_features(self) -> int:
        """Columns the TF-IDF blocks add after the embedding's."""
        return 0 if self.word is None else len(self.word.vocabulary_) + len(self.char.vocabulary_)

    def transform(self, vectors: np.ndarray, texts: Sequence[str]):
        from scipy import sparse

        c = self.config
        blocks = [sparse.csr_matrix(np.asarray(vectors, dtype=np.float32) * c.embedding_weight)]
        if self.word is not None:
            blocks.append(self.word.transform(texts) * c.word_weight)
            blocks.append(self.char.transform(texts) * c.char_weight)
        return sparse.hstack(blocks, format="csr", dtype=np.float32)


@dataclass(frozen=True)
class _Linear:
    """A fitted linear classifier reduced to its arrays, which is all its decision function
    needs: what is saved, and what predicts both right after training and after a load."""

    coef: np.ndarray  # (n_classes, n_features), or (1, n_features) for two classes
    intercept: np.ndarray  # (len(coef),)
    classes_: np.ndarray  # (n_classes,) class indices, sorted

    @classmethod
    def of(cls, fitted: Any) -> _Linear:
        return cls(
            np.asarray(fitted.coef_, dtype=np.float64),
            np.asarray(fitted.intercept_, dtype=np.float64),
            np.asarray(fitted.classes_, dtype=np.int64),
        )

    def decision_function(self, x: Any) -> np.ndarray:
        """scikit-learn's `LinearClassifierMixin.decision_function`: one column per class,
        or a single score (of classes_[1]) for two."""
        scores = np.asarray(x @ self.coef.T) + self.intercept
        return scores[:, 0] if scores.shape[1] == 1 else scores


def _fit_linear(features, y: np.ndarray, config: IntentClassifierConfig) -> _Linear:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    model = LinearSVC(C=config.C, max_iter=config.max_iter, random_state=config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, y)
    return _Linear.of(model)


def _decisions(model, features) -> np.ndarray:
    d = np.asarray(model.decision_function(features), dtype=np.float64)
    if d.ndim == 1:  # binary LinearSVC: one column for classes_[1]
        d = np.stack([-d, d], axis=1)
    return d


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def _fit_temperature(decisions: np.ndarray, y_idx: np.ndarray) -> float:
    """Temperature minimising the log-loss of softmax(decisions / T) (golden-section on log T)."""

    def nll(log_t: float) -> float:
        z = decisions / np.exp(log_t)
        return float(np.mean(_logsumexp(z) - z[np.arange(len(y_idx)), y_idx]))

    lo, hi = np.log(1e-3), np.log(1e2)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def _similarities(
    queries: np.ndarray,
    train_vectors: np.ndarray,
    train_y: np.ndarray,
    predicted: np.ndarray,
    k: int,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine to the nearest training row, and mean cosine to the k nearest rows of the
    predicted intent (vectors are L2-normalised, so inner product = cosine)."""
    n = len(queries)
    nearest = np.empty(n, dtype=np.float64)
    class_nearest = np.empty(n, dtype=np.float64)
    order = np.argsort(train_y, kind="stable")
    sorted_y = train_y[order]
    for start in range(0, n, chunk):
        q = np.asarray(queries[start : start + chunk], dtype=np.float32)
        s = q @ train_vectors.T
        nearest[start : start + len(q)] = s.max(axis=1)
        s = s[:, order]
        for i, c in enumerate(predicted[start : start + len(q)]):
            lo, hi = np.searchsorted(sorted_y, c, "left"), np.searchsorted(sorted_y, c, "right")
            row = s[i, lo:hi]
            kk = min(k, len(row))
            class_nearest[start + i] = np.partition(row, len(row) - kk)[-kk:].mean()
    return nearest, class_nearest


@dataclass
class _Core:
    """A trained feature builder + linear model + the data the OOS signals need."""

    features: _FeatureBuilder
    model: _Linear
    temperature: float
    train_vectors: np.ndarray  # (n, dim) float32, L2-normalised
    train_y: np.ndarray  # (n,) int class index into model.classes_

    @classmethod
    def fit(cls, vectors, texts, y, config, temperature=1.0) -> _Core:
        fb = _FeatureBuilder(config)
        model = _fit_linear(fb.fit_transform(vectors, texts), y, config)
        return cls(fb, model, temperature, np.ascontiguousarray(vectors, dtype=np.float32), y)

    def decisions(self, vectors, texts) -> np.ndarray:
        return _decisions(self.model, self.features.transform(vectors, texts))

    def signals(self, vectors, texts, k: int, decisions: np.ndarray | None = None) -> dict[str, np.ndarray]:
        d = self.decisions(vectors, texts) if decisions is None else decisions
        z = d / self.temperature
        probs = _softmax(z)
        predicted = probs.argmax(axis=1)
        nearest, class_nearest = _similarities(
            vectors, self.train_vectors, self.train_y, self.model.classes_[predicted], k
        )
        top2 = np.sort(z, axis=1)[:, -2:] if z.shape[1] > 1 else np.concatenate([z, z], axis=1)
        return {
            "probs": probs,
            "predicted": predicted,
            "max_prob": probs.max(axis=1),
            "energy": _logsumexp(z),
            "margin": top2[:, 1] - top2[:, 0],
            "nearest": nearest,
            "class_nearest": class_nearest,
        }


def _meta_features(sig: dict[str, np.ndarray]) -> np.ndarray:
    p = np.clip(sig["max_prob"], 1e-6, 1 - 1e-6)
    return np.stack(
        [np.log(p / (1 - p)), sig["energy"], sig["margin"], sig["nearest"], sig["class_nearest"]],
        axis=1,
    )


def _threshold_for_loss(score: np.ndarray, correct: np.ndarray, max_loss: float) -> float:
    """Largest threshold t (flag when score < t) such that the correct in-scope rows with
    score < t are at most `max_loss` of all in-scope rows."""
    n = len(score)
    allowed = int(np.floor(max_loss * n + 1e-9))
    s = np.sort(score[correct])
    if len(s) == 0:
        return -np.inf
    if allowed >= len(s):
        return float(np.inf)
    # flag rows strictly below s[allowed]: exactly `allowed` correct rows (ties aside)
    return float(s[allowed])


# --------------------------------------------------------------------------- classifier


class EmbeddingIntentClassifier:
    """Implements `bot.contracts.IntentClassifier` over the shared query embedding."""

    def __init__(
        self,
        core: _Core,
        labels: tuple[str, ...],
        config: IntentClassifierConfig,
        thresholds: dict[str, float],
        nearest_floor: float,
        meta: Any,
        metadata: dict[str, Any],
    ):
        self._core = core
        self.labels = labels
        self.config = config
        self.thresholds = dict(thresholds)
        self.nearest_floor = float(nearest_floor)
        self._meta = meta  # (mean, scale, _Linear of a LogisticRegression) or None
        self.metadata = metadata

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        vectors: np.ndarray,
        texts: list[str],
        labels: list[str],
        config: IntentClassifierConfig | None = None,
        *,
        embedder_id: str,
        progress: Callable[[str], None] | None = None,
    ) -> EmbeddingIntentClassifier:
        config = config or IntentClassifierConfig()
        say = progress or (lambda _msg: None)
        vectors, texts, labels = _validate(vectors, texts, labels, config)
        t0 = time.perf_counter()
        label_names = tuple(sorted(set(labels)))
        index = {name: i for i, name in enumerate(label_names)}
        y = np.array([index[lab] for lab in labels], dtype=np.int64)

        cal = _calibrate(vectors, texts, y, config, say)
        say("training the final model on all rows")
        core = _Core.fit(vectors, texts, y, config, temperature=cal["temperature"])
        train_seconds = time.perf_counter() - t0

        metadata = {
            "format_version": FORMAT_VERSION,
            "kind": "EmbeddingIntentClassifier",
            "config": asdict(config),
            "embedder_id": embedder_id,
            "dim": int(vectors.shape[1]),
            "labels": list(label_names),
            "n_train": len(labels),
            "label_counts": {lab: int(n) for lab, n in sorted(Counter(labels).items())},
            "training_data_sha256": _data_sha256(vectors, texts, labels),
            "temperature": cal["temperature"],
            "thresholds": cal["thresholds"],
            "nearest_floor": cal["nearest_floor"],
            "calibration": cal["report"],
            "train_seconds": round(train_seconds, 3),
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": _versions(),
        }
        say(f"trained on {len(labels)} rows, {len(label_names)} intents in {train_seconds:.1f}s")
        return cls(core, label_names, config, cal["thresholds"], cal["nearest_floor"], cal["meta"], metadata)

    # ------------------------------------------------------------------ inference
    def oos_scores(self, vectors: np.ndarray, texts: list[str]) -> dict[str, np.ndarray]:
        """All OOS signals (higher = more in-scope) plus probabilities, for analysis."""
        vectors, texts = self._check_inputs(vectors, texts)
        sig = self._core.signals(vectors, texts, self.config.class_neighbors)
        sig["combined"] = self._combined(sig)
        return sig

    def predict(self, vectors: np.ndarray, texts: list[str]) -> list[IntentPrediction]:
        if len(texts) == 0 and (vectors is None or len(vectors) == 0):
            return []
        sig = self.oos_scores(vectors, texts)
        score = sig[self.config.oos_score]
        flagged = (score < self.thresholds[self.config.oos_score]) | (sig["nearest"] < self.nearest_floor)
        probs = sig["probs"]
        k = min(self.config.ranking_size, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        out = []
        for i in range(len(probs)):
            ranking = tuple((self.labels[j], float(probs[i, j])) for j in top[i])
            out.append(
                IntentPrediction(
                    intent=ranking[0][0],
                    confidence=ranking[0][1],
                    out_of_scope=bool(flagged[i]),
                    ranking=ranking,
                    nearest_similarity=float(sig["nearest"][i]),
                )
            )
        return out

    def _combined(self, sig: dict[str, np.ndarray]) -> np.ndarray:
        if self._meta is None:
            return sig["nearest"].copy()
        mean, scale, lr = self._meta
        return lr.decision_function((_meta_features(sig) - mean) / scale)

    def _check_inputs(self, vectors, texts) -> tuple[np.ndarray, list[str]]:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        texts = [texts] if isinstance(texts, str) else list(texts)
        if vectors.ndim != 2 or vectors.shape[1] != self.metadata["dim"]:
            raise ValueError(f"expected vectors of shape (n, {self.metadata['dim']}), got {vectors.shape}")
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vectors but {len(texts)} texts")
        return vectors, texts

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write the three files of the module docstring (no pickle anywhere)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        core = self._core
        idf, vocab = core.features.state()
        arrays: dict[str, np.ndarray] = {
            "coef": core.model.coef,
            "intercept": core.model.intercept,
            "classes": core.model.classes_,
            "train_vectors": np.ascontiguousarray(core.train_vectors, dtype=np.float32),
            "train_y": np.asarray(core.train_y, dtype=np.int64),
            **idf,
        }
        if self._meta is not None:
            mean, scale, lr = self._meta
            arrays.update(
                meta_mean=mean,
                meta_scale=scale,
                meta_coef=lr.coef,
                meta_intercept=lr.intercept,
                meta_classes=lr.classes_,
            )
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        blobs = {
            ARRAYS_FILE: buf.getvalue(),
            VOCAB_FILE: json.dumps(vocab, ensure_ascii=False).encode("utf-8"),
        }
        metadata = {k: v for k, v in self.metadata.items() if k not in ("model_file", "model_sha256")}
        metadata["format_version"] = FORMAT_VERSION
        metadata["files"] = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
        # the data files first, the metadata (which names their hashes) last: a crash in
        # between leaves a pair that load() reports as mismatched
        for name, blob in blobs.items():
            write_atomic(directory / name, blob)
        write_atomic(directory / METADATA_FILE, json.dumps(metadata, indent=2, sort_keys=True).encode())
        (directory / LEGACY_PICKLE_FILE).unlink(missing_ok=True)
        self.metadata = metadata

    @classmethod
    def load(cls, directory: str | Path, *, embedder_id: str, dim: int) -> EmbeddingIntentClassifier:
        """Rebuild a saved classifier from plain data. Refuses (typed errors that say to run
        `csbot build`) a missing, corrupted, tampered, inconsistent or pickled model, and
        one trained on another embedder."""
        directory = Path(directory)
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
            core, meta = _restore(arrays, vocab, config, temperature, labels, saved_dim)
        except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile, RecursionError) as exc:
            raise IntentModelError(
                f"intent model in {directory} cannot be read or is inconsistent with its metadata "
                f"({type(exc).__name__}: {exc}); {_REBUILD}"
            ) from exc
        return cls(core, labels, config, thresholds, floor, meta, metadata)


# --------------------------------------------------------------------------- persistence


_CORE_ARRAYS = {"coef", "intercept", "classes", "train_vectors", "train_y"}
_TEXT_ARRAYS = {"word_idf", "char_idf"}
_META_ARRAYS = {"meta_mean", "meta_scale", "meta_coef", "meta_intercept", "meta_classes"}


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
    expected = _CORE_ARRAYS | (_TEXT_ARRAYS & arrays.keys()) | (_META_ARRAYS & arrays.keys())
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
) -> tuple[_Core, Any]:
    """A `_Core` (and the OOS combiner) from checked arrays; every shape is checked against
    the metadata, so what predicts is exactly what was saved or nothing."""
    if config.use_text_features != (arrays.keys() >= _TEXT_ARRAYS):
        raise ValueError("TF-IDF arrays present or missing against the config")
    features = _FeatureBuilder.restore(config, arrays, vocab)
    n_features = dim + features.n_text_features
    n_classes = len(labels)
    classes = arrays["classes"]
    model = _Linear(arrays["coef"].astype(np.float64), arrays["intercept"].astype(np.float64), classes.astype(np.int64))
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
    meta = None
    if arrays.keys() >= _META_ARRAYS:
        lr = _Linear(
            arrays["meta_coef"].astype(np.float64),
            arrays["meta_intercept"].astype(np.float64),
            arrays["meta_classes"].astype(np.int64),
        )
        n_meta = 5
        if (
            lr.coef.shape != (1, n_meta)
            or lr.intercept.shape != (1,)
            or arrays["meta_mean"].shape != (n_meta,)
            or arrays["meta_scale"].shape != (n_meta,)
        ):
            raise ValueError("the OOS combiner's arrays have the wrong shapes")
        meta = (arrays["meta_mean"].astype(np.float64), arrays["meta_scale"].astype(np.float64), lr)
    elif _META_ARRAYS & arrays.keys():
        raise ValueError("the OOS combiner's arrays are incomplete")
    return _Core(features, model, temperature, train_vectors, train_y), meta


# --------------------------------------------------------------------------- calibration


def _per_label_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = min(max(1, int(round(fraction * len(idx)))), len(idx) - 2)
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.array(sorted(train)), np.array(sorted(val))


def _calibrate(vectors, texts, y, config: IntentClassifierConfig, say) -> dict[str, Any]:
    """Hold intents out fold by fold; pool in-scope validation and pseudo-OOS signals;
    fit the temperature, the combined score and the thresholds."""
    rng = np.random.default_rng(config.seed)
    classes = np.unique(y)
    n_folds = min(config.oos_holdout_folds, len(classes))
    texts_arr = np.asarray(texts, dtype=object)
    pooled_in: list[dict[str, np.ndarray]] = []
    pooled_oos: list[dict[str, np.ndarray]] = []
    in_correct: list[np.ndarray] = []
    in_decisions: list[tuple[np.ndarray, np.ndarray]] = []

    if len(classes) - int(np.ceil(len(classes) / n_folds)) >= 2:
        folds = np.array_split(rng.permutation(classes), n_folds)
    else:
        folds = [np.array([], dtype=y.dtype)]  # too few intents to hold any out

    for f, held in enumerate(folds):
        say(f"OOS calibration fold {f + 1}/{len(folds)}: {len(held)} intents held out")
        known_mask = ~np.isin(y, held)
        known_idx = np.flatnonzero(known_mask)
        tr_rel, va_rel = _per_label_split(y[known_idx], config.calibration_val_fraction, rng)
        tr, va = known_idx[tr_rel], known_idx[va_rel]
        oos = np.flatnonzero(~known_mask)
        core = _Core.fit(vectors[tr], list(texts_arr[tr]), y[tr], config)
        d_va = core.decisions(vectors[va], list(texts_arr[va]))
        col = {c: i for i, c in enumerate(core.model.classes_)}
        y_va_idx = np.array([col[c] for c in y[va]])
        in_decisions.append((d_va, y_va_idx))
        # temperature per fold first (the signals depend on it), refitted on the pool below
        core.temperature = _fit_temperature(d_va, y_va_idx)
        sig_in = core.signals(vectors[va], list(texts_arr[va]), config.class_neighbors, d_va)
        pooled_in.append(sig_in)
        in_correct.append(sig_in["predicted"] == y_va_idx)
        if len(oos):
            pooled_oos.append(core.signals(vectors[oos], list(texts_arr[oos]), config.class_neighbors))

    temperature = float(np.exp(np.mean([np.log(_fit_temperature(d, yi)) for d, yi in in_decisions])))

    def cat(parts, key):
        return np.concatenate([p[key] for p in parts]) if parts else np.empty(0)

    keys = ("max_prob", "energy", "margin", "nearest", "class_nearest")
    s_in = {k: cat(pooled_in, k) for k in keys}
    s_oos = {k: cat(pooled_oos, k) for k in keys}
    correct = np.concatenate(in_correct)
    n_in, n_oos = len(correct), len(s_oos["nearest"])

    meta = None
    if n_oos:
        from sklearn.linear_model import LogisticRegression

        x = np.concatenate([_meta_features(s_in), _meta_features(s_oos)])
        target = np.concatenate([np.ones(n_in), np.zeros(n_oos)])
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
        fitted = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
        fitted.fit((x - mean) / scale, target)
        lr = _Linear.of(fitted)
        meta = (mean, scale, lr)
        s_in["combined"] = lr.decision_function((_meta_features(s_in) - mean) / scale)
        s_oos["combined"] = lr.decision_function((_meta_features(s_oos) - mean) / scale)
    else:
        s_in["combined"], s_oos["combined"] = s_in["nearest"], s_oos["nearest"]

    # the off-topic floor: spend `oos_floor_loss` of the budget on the nearest cosine alone
    floor = _threshold_for_loss(s_in["nearest"], correct, config.oos_floor_loss)
    if not np.isfinite(floor):
        floor = -1.0
    floor_flag = s_in["nearest"] < floor
    rest_budget = config.oos_max_inscope_loss - float(np.mean(floor_flag & correct))

    thresholds: dict[str, float] = {}
    report: dict[str, Any] = {
        "folds": len(folds),
        "n_inscope_val": int(n_in),
        "n_pseudo_oos": int(n_oos),
        "inscope_val_accuracy": round(float(correct.mean()), 4) if n_in else None,
        "scores": {},
    }
    for name in OOS_SCORES:
        # the score's threshold is chosen among rows the floor has not already flagged
        keep = ~floor_flag
        t = _threshold_for_loss(np.where(keep, s_in[name], np.inf), correct, max(rest_budget, 0.0))
        if not np.isfinite(t):
            t = float(np.min(s_in[name]) - 1.0) if t < 0 else float(np.max(s_in[name]) + 1.0)
        thresholds[name] = float(t)
        flag_in = floor_flag | (s_in[name] < t)
        entry = {
            "threshold": round(float(t), 6),
            "inscope_loss": round(float(np.mean(flag_in & correct)), 4) if n_in else None,
        }
        if n_oos:
            flag_oos = (s_oos["nearest"] < floor) | (s_oos[name] < t)
            entry["pseudo_oos_recall"] = round(float(flag_oos.mean()), 4)
        report["scores"][name] = entry
    say(
        "OOS calibration: "
        + ", ".join(f"{k} recall {v.get('pseudo_oos_recall', float('nan')):.3f}" for k, v in report["scores"].items())
    )
    return {
        "temperature": temperature,
        "thresholds": thresholds,
        "nearest_floor": float(floor),
        "meta": meta,
        "report": report,
    }


# --------------------------------------------------------------------------- helpers


def _validate(vectors, texts, labels, config: IntentClassifierConfig):
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise IntentTrainingError(f"vectors must be a 2-D array (n, dim), got shape {vectors.shape}")
    texts, labels = list(texts), [str(lab) for lab in labels]
    if not (len(vectors) == len(texts) == len(labels)):
        raise IntentTrainingError(f"length mismatch: {len(vectors)} vectors, {len(texts)} texts, {len(labels)} labels")
    if not np.all(np.isfinite(vectors)):
        raise IntentTrainingError("vectors contain NaN or infinite values")
    counts = Counter(labels)
    if len(counts) < 2:
        raise IntentTrainingError(
            f"need at least 2 intents to train a classifier, got {len(counts)}: "
            + ", ".join(f"{k!r} ({v} examples)" for k, v in counts.items())
        )
    few = {k: v for k, v in sorted(counts.items()) if v < config.min_examples_per_label}
    if few:
        raise IntentTrainingError(
            f"every intent needs at least {config.min_examples_per_label} examples; too few for "
            + ", ".join(f"{k!r} ({v})" for k, v in few.items())
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)  # the signals assume cosine = inner product
    return np.ascontiguousarray(vectors, dtype=np.float32), texts, labels


def _data_sha256(vectors: np.ndarray, texts: list[str], labels: list[str]) -> str:
    h = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        h.update(label.encode())
        h.update(b"\x1f")
        h.update(text.encode())
        h.update(b"\x1e")
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }


__all__ = [
    "OOS_SCORES",
    "EmbeddingIntentClassifier",
    "IntentClassifierConfig",
    "IntentModelError",
    "IntentTrainingError",
]
