"""The intent classifier and its out-of-scope detection (bot.intents)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from bot.contracts import IntentClassifier, IntentPrediction
from bot.errors import ArtifactMismatchError, CsbotError, WorkspaceNotBuiltError
from bot.intents import (
    EmbeddingIntentClassifier,
    IntentClassifierConfig,
    IntentModelError,
    IntentTrainingError,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
DIM = 32
INTENTS = ("refund", "track_order", "cancel_order", "change_address", "payment_methods", "speak_to_human")
WORDS = {
    "refund": ["refund", "money back", "reimburse"],
    "track_order": ["track", "where is my parcel", "delivery status"],
    "cancel_order": ["cancel", "stop my order", "call off"],
    "change_address": ["change address", "new address", "move delivery"],
    "payment_methods": ["pay with card", "paypal", "payment options"],
    "speak_to_human": ["human", "real person", "agent please"],
}
EMBEDDER_ID = "synthetic@test"


def _centres(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(len(INTENTS), DIM))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _sample(n_per_intent: int, seed: int, spread: float = 0.12):
    """Gaussian clusters on the unit sphere, with short texts that fit each intent."""
    rng = np.random.default_rng(seed)
    centres = _centres()
    vectors, texts, labels = [], [], []
    for k, intent in enumerate(INTENTS):
        v = centres[k] + spread * rng.normal(size=(n_per_intent, DIM))
        vectors.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        for i in range(n_per_intent):
            texts.append(f"{WORDS[intent][i % 3]} please {rng.integers(100)}")
            labels.append(intent)
    return np.concatenate(vectors).astype(np.float32), texts, labels


@pytest.fixture(scope="module")
def trained() -> EmbeddingIntentClassifier:
    vectors, texts, labels = _sample(20, seed=1)
    return EmbeddingIntentClassifier.train(vectors, texts, labels, IntentClassifierConfig(), embedder_id=EMBEDDER_ID)


def test_classifier_implements_the_contract(trained):
    assert isinstance(trained, IntentClassifier)
    assert trained.labels == tuple(sorted(INTENTS))


def test_predicts_the_cluster_each_query_comes_from(trained):
    vectors, texts, labels = _sample(10, seed=2)
    preds = trained.predict(vectors, texts)
    assert all(isinstance(p, IntentPrediction) for p in preds)
    accuracy = np.mean([p.intent == y for p, y in zip(preds, labels)])
    assert accuracy >= 0.95
    # in-scope queries are mostly not flagged (the calibration budget is 2 points)
    assert np.mean([p.out_of_scope for p in preds]) <= 0.1


def test_ranking_is_the_top_three_sorted_and_probabilities_sum_to_at_most_one(trained):
    vectors, texts, _ = _sample(3, seed=3)
    for p in trained.predict(vectors, texts):
        assert len(p.ranking) == 3
        probs = [prob for _, prob in p.ranking]
        assert probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1.0 + 1e-9
        assert all(0.0 <= prob <= 1.0 for prob in probs)
        assert p.ranking[0] == (p.intent, p.confidence)
        assert -1.0 <= p.nearest_similarity <= 1.0 + 1e-6


def test_a_vector_far_from_every_cluster_is_out_of_scope(trained):
    centres = _centres()
    rng = np.random.default_rng(7)
    far = []
    while len(far) < 5:  # random directions with little overlap with any cluster
        v = rng.normal(size=DIM)
        v /= np.linalg.norm(v)
        if np.max(centres @ v) < 0.3:
            far.append(v)
    preds = trained.predict(np.array(far, dtype=np.float32), ["what is the weather tomorrow"] * 5)
    assert all(p.out_of_scope for p in preds)
    assert all(p.nearest_similarity < 0.5 for p in preds)


def test_a_single_vector_and_an_empty_batch_are_accepted(trained):
    vectors, texts, labels = _sample(1, seed=4)
    (pred,) = trained.predict(vectors[0], [texts[0]])
    assert pred.intent == labels[0]
    assert trained.predict(np.zeros((0, DIM), dtype=np.float32), []) == []


def test_predict_rejects_vectors_of_the_wrong_dimension(trained):
    with pytest.raises(ValueError, match="shape"):
        trained.predict(np.ones((1, DIM + 1), dtype=np.float32), ["x"])


def test_calibration_is_recorded_in_the_metadata(trained):
    meta = trained.metadata
    assert meta["embedder_id"] == EMBEDDER_ID and meta["dim"] == DIM
    assert meta["n_train"] == 20 * len(INTENTS)
    assert set(meta["thresholds"]) >= {"combined", "max_prob", "nearest"}
    assert meta["calibration"]["n_pseudo_oos"] > 0
    assert meta["temperature"] > 0
    assert len(meta["training_data_sha256"]) == 64
    assert "scikit-learn" in meta["versions"]


def test_save_then_load_gives_identical_predictions(trained, tmp_path):
    trained.save(tmp_path / "intents")
    loaded = EmbeddingIntentClassifier.load(tmp_path / "intents", embedder_id=EMBEDDER_ID, dim=DIM)
    vectors, texts, _ = _sample(5, seed=5)
    assert loaded.predict(vectors, texts) == trained.predict(vectors, texts)
    assert loaded.labels == trained.labels
    saved = json.loads((tmp_path / "intents" / "intents.json").read_text())
    assert saved["embedder_id"] == EMBEDDER_ID and saved["labels"] == list(trained.labels)
    assert not list((tmp_path / "intents").glob("*.tmp"))  # atomic writes leave no temp files


def test_load_refuses_a_model_trained_with_another_embedder(trained, tmp_path):
    trained.save(tmp_path)
    with pytest.raises(ArtifactMismatchError) as err:
        EmbeddingIntentClassifier.load(tmp_path, embedder_id="other-model@123", dim=DIM)
    message = str(err.value)
    assert EMBEDDER_ID in message and "other-model@123" in message and "csbot build" in message
    with pytest.raises(ArtifactMismatchError, match="dim"):
        EmbeddingIntentClassifier.load(tmp_path, embedder_id=EMBEDDER_ID, dim=DIM * 2)


def test_load_from_an_unbuilt_directory_says_to_build(tmp_path):
    with pytest.raises(WorkspaceNotBuiltError, match="csbot build"):
        EmbeddingIntentClassifier.load(tmp_path / "nothing", embedder_id=EMBEDDER_ID, dim=DIM)


def test_load_of_a_corrupted_model_is_a_clear_error(trained, tmp_path):
    trained.save(tmp_path)
    arrays = tmp_path / "intents.npz"
    arrays.write_bytes(arrays.read_bytes()[:100])
    with pytest.raises(IntentModelError, match="does not match its metadata") as err:
        EmbeddingIntentClassifier.load(tmp_path, embedder_id=EMBEDDER_ID, dim=DIM)
    assert "csbot build" in str(err.value)
    (tmp_path / "intents.json").write_text("{not json")
    with pytest.raises(IntentModelError, match="corrupted"):
        EmbeddingIntentClassifier.load(tmp_path, embedder_id=EMBEDDER_ID, dim=DIM)


@pytest.mark.parametrize("name", ["intents.npz", "intents.vocab.json"])
def test_a_flipped_byte_in_either_data_file_is_refused(trained, tmp_path, name):
    trained.save(tmp_path)
    path = tmp_path / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntentModelError, match=f"{name} does not match its metadata"):
        EmbeddingIntentClassifier.load(tmp_path, embedder_id=EMBEDDER_ID, dim=DIM)


def test_the_saved_model_is_plain_data_without_pickle(trained, tmp_path):
    trained.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["intents.json", "intents.npz", "intents.vocab.json"]
    with np.load(tmp_path / "intents.npz", allow_pickle=False) as npz:
        assert all(npz[name].dtype.kind in "fiu" for name in npz.files)
    vocab = json.loads((tmp_path / "intents.vocab.json").read_text(encoding="utf-8"))
    assert set(vocab) == {"word", "char"} and "refund" in vocab["word"]
    meta = json.loads((tmp_path / "intents.json").read_text())
    assert meta["format_version"] == 2
    assert meta["files"]["intents.npz"] == hashlib.sha256((tmp_path / "intents.npz").read_bytes()).hexdigest()


# ----------------------------------------------------------------- tampering: nothing runs


class _RunsCode:
    """Unpickling this creates `marker`: the proof that loading a pickle runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _rehash(directory: Path, name: str, **changes) -> None:
    """What someone who can write the folder can do: make the metadata vouch for a file."""
    meta_path = directory / "intents.json"
    meta = json.loads(meta_path.read_text())
    meta.setdefault("files", {})[name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    meta.update(changes)
    meta_path.write_text(json.dumps(meta))


def test_the_payload_used_below_does_run_code_when_unpickled(tmp_path):
    pickle.loads(pickle.dumps(_RunsCode(tmp_path / "ran")))
    assert (tmp_path / "ran").is_dir()


def test_a_pickle_in_place_of_the_arrays_is_refused_and_never_run(trained, tmp_path):
    trained.save(tmp_path / "m")
    (tmp_path / "m" / "intents.npz").write_bytes(pickle.dumps(_RunsCode(tmp_path / "ran")))
    _rehash(tmp_path / "m", "intents.npz")
    with pytest.raises(IntentModelError, match="cannot be read") as err:
        EmbeddingIntentClassifier.load(tmp_path / "m", embedder_id=EMBEDDER_ID, dim=DIM)
    assert "csbot build" in str(err.value)
    assert not (tmp_path / "ran").exists()


def test_an_npz_holding_a_pickled_object_array_is_refused_and_never_run(trained, tmp_path):
    trained.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "intents.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["coef"] = np.array([_RunsCode(tmp_path / "ran")], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # numpy pickles object arrays
    (tmp_path / "m" / "intents.npz").write_bytes(buf.getvalue())
    _rehash(tmp_path / "m", "intents.npz")
    with pytest.raises(IntentModelError, match="allow_pickle"):
        EmbeddingIntentClassifier.load(tmp_path / "m", embedder_id=EMBEDDER_ID, dim=DIM)
    assert not (tmp_path / "ran").exists()


def test_arrays_that_do_not_fit_the_metadata_are_refused(trained, tmp_path):
    trained.save(tmp_path)
    vocab_path = tmp_path / "intents.vocab.json"
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    vocab["word"] = vocab["word"][:-1]
    vocab_path.write_text(json.dumps(vocab))
    _rehash(tmp_path, "intents.vocab.json")
    with pytest.raises(IntentModelError, match="inconsistent with its metadata"):
        EmbeddingIntentClassifier.load(tmp_path, embedder_id=EMBEDDER_ID, dim=DIM)


def test_an_unknown_format_version_is_refused(trained, tmp_path):
    trained.save(tmp_path)
    _rehash(tmp_path, "intents.npz", format_version=3)
    with pytest.raises(IntentModelError, match="format version 3; this csbot reads version 2"):
        EmbeddingIntentClassifier.load(tmp_path, embedder_id=EMBEDDER_ID, dim=DIM)


def _legacy_workspace_model(directory: Path, marker: Path) -> None:
    """The files the previous csbot wrote: a joblib pickle and metadata naming it."""
    directory.mkdir()
    blob = pickle.dumps({"model": _RunsCode(marker)})
    (directory / "intents.joblib").write_bytes(blob)
    (directory / "intents.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "kind": "EmbeddingIntentClassifier",
                "embedder_id": EMBEDDER_ID,
                "dim": DIM,
                "model_file": "intents.joblib",
                "model_sha256": hashlib.sha256(blob).hexdigest(),
            }
        )
    )


@pytest.mark.parametrize("with_metadata", [True, False])
def test_a_model_saved_by_the_previous_version_as_a_pickle_says_to_rebuild_and_is_never_run(tmp_path, with_metadata):
    _legacy_workspace_model(tmp_path / "intents", tmp_path / "ran")
    if not with_metadata:
        (tmp_path / "intents" / "intents.json").unlink()
    with pytest.raises(IntentModelError) as err:
        EmbeddingIntentClassifier.load(tmp_path / "intents", embedder_id=EMBEDDER_ID, dim=DIM)
    message = str(err.value)
    assert "pickle" in message and "run `csbot build` again" in message
    assert isinstance(err.value, ArtifactMismatchError)
    assert not (tmp_path / "ran").exists()


def test_saving_over_a_previous_version_s_model_removes_its_pickle(trained, tmp_path):
    _legacy_workspace_model(tmp_path / "intents", tmp_path / "ran")
    trained.save(tmp_path / "intents")
    assert not (tmp_path / "intents" / "intents.joblib").exists()
    assert EmbeddingIntentClassifier.load(tmp_path / "intents", embedder_id=EMBEDDER_ID, dim=DIM).labels


@pytest.mark.parametrize(
    "intents, config",
    [
        (("refund", "cancel_order"), IntentClassifierConfig()),  # two classes: one decision column
        (INTENTS, IntentClassifierConfig(use_text_features=False)),  # the embedding alone
    ],
)
def test_two_intent_and_embedding_only_models_also_round_trip(tmp_path, intents, config):
    vectors, texts, labels = _sample(6, seed=9)
    keep = [i for i, y in enumerate(labels) if y in intents]
    v, t, y = vectors[keep], [texts[i] for i in keep], [labels[i] for i in keep]
    clf = EmbeddingIntentClassifier.train(v, t, y, config, embedder_id=EMBEDDER_ID)
    clf.save(tmp_path)
    loaded = EmbeddingIntentClassifier.load(tmp_path, embedder_id=EMBEDDER_ID, dim=DIM)
    assert loaded.predict(vectors, texts) == clf.predict(vectors, texts)
    assert loaded.labels == tuple(sorted(intents))


def test_too_few_examples_error_names_the_label_and_count():
    vectors, texts, labels = _sample(6, seed=6)
    keep = [i for i, y in enumerate(labels) if y != "refund"] + [labels.index("refund")] * 1
    keep += [labels.index("refund") + 1]
    with pytest.raises(IntentTrainingError) as err:
        EmbeddingIntentClassifier.train(
            vectors[keep],
            [texts[i] for i in keep],
            [labels[i] for i in keep],
            IntentClassifierConfig(),
            embedder_id=EMBEDDER_ID,
        )
    assert "'refund' (2)" in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, CsbotError)


def test_a_single_intent_is_refused():
    vectors, texts, _ = _sample(5, seed=6)
    with pytest.raises(IntentTrainingError, match="at least 2 intents"):
        EmbeddingIntentClassifier.train(vectors, texts, ["refund"] * len(texts), embedder_id=EMBEDDER_ID)


def test_mismatched_lengths_are_refused():
    vectors, texts, labels = _sample(5, seed=6)
    with pytest.raises(IntentTrainingError, match="length mismatch"):
        EmbeddingIntentClassifier.train(vectors, texts[:-1], labels, embedder_id=EMBEDDER_ID)


def test_two_intents_with_three_examples_each_still_train():
    vectors, texts, labels = _sample(3, seed=8)
    keep = [i for i, y in enumerate(labels) if y in ("refund", "cancel_order")]
    clf = EmbeddingIntentClassifier.train(
        vectors[keep], [texts[i] for i in keep], [labels[i] for i in keep], embedder_id=EMBEDDER_ID
    )
    assert clf.labels == ("cancel_order", "refund")
    assert len(clf.predict(vectors[keep], [texts[i] for i in keep])[0].ranking) == 2


def test_config_accepts_json_overrides_and_rejects_unknown_scores():
    config = IntentClassifierConfig.from_dict({"C": 0.5, "char_ngram_range": [2, 4], "unknown": 1})
    assert config.C == 0.5 and config.char_ngram_range == (2, 4)
    with pytest.raises(ValueError, match="oos_score"):
        IntentClassifierConfig(oos_score="bogus")


def test_importing_bot_intents_does_not_import_torch():
    code = "import sys, bot.intents; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------- with the real MiniLM

SMALL_SET = {
    "order_status": [
        "where is my order",
        "has my package shipped yet",
        "when will my parcel arrive",
        "track my delivery",
        "my order hasn't come",
        "what's the status of my order",
        "is my order on its way",
        "how long until my package gets here",
    ],
    "refund": [
        "I want my money back",
        "how do I get a refund",
        "refund my purchase please",
        "can I be reimbursed",
        "when will my refund arrive",
        "I was charged but want a refund",
        "return the money to my card",
        "I'd like to request a refund",
    ],
    "cancel_order": [
        "cancel my order",
        "I don't want this order anymore",
        "please stop my order",
        "can I cancel before it ships",
        "how to cancel an order",
        "call off my purchase",
        "I need to cancel what I bought",
        "undo my order",
    ],
    "change_password": [
        "I forgot my password",
        "reset my password",
        "how do I change my password",
        "can't log in, need a new password",
        "password reset link",
        "update my login password",
        "my password doesn't work",
        "help me change my account password",
    ],
    "payment_methods": [
        "can I pay with paypal",
        "which cards do you accept",
        "do you take apple pay",
        "what payment options are there",
        "can I pay by credit card",
        "do you accept mastercard",
        "is bank transfer possible",
        "can I pay with a gift card",
    ],
}


@pytest.mark.slow
def test_real_minilm_flags_off_topic_questions_but_not_in_domain_paraphrases():
    from retrieval.config import EmbedderConfig
    from retrieval.embedder import SentenceEmbedder
    from retrieval.threads import configure_threads

    configure_threads(1, 1)
    embedder = SentenceEmbedder(EmbedderConfig(torch_threads=1)).load()
    texts = [t for examples in SMALL_SET.values() for t in examples]
    labels = [label for label, examples in SMALL_SET.items() for _ in examples]
    clf = EmbeddingIntentClassifier.train(embedder.encode(texts), texts, labels, embedder_id=embedder.model_id)

    off_topic = [
        "what's the weather tomorrow",
        "should I buy Tesla stock",
        "give me a lasagna recipe",
        "who won the football game last night",
    ]
    for p in clf.predict(embedder.encode(off_topic), off_topic):
        assert p.out_of_scope, p
    paraphrases = {
        "has my parcel been sent out yet?": "order_status",
        "I'd like a refund for my purchase": "refund",
        "please cancel the order I placed": "cancel_order",
    }
    queries = list(paraphrases)
    for q, p in zip(queries, clf.predict(embedder.encode(queries), queries)):
        assert p.intent == paraphrases[q] and not p.out_of_scope, (q, p)


# ----------------------------------------------------------------- BANKING77 (shared data)


@pytest.mark.shared
@pytest.mark.slow
def test_banking77_subset_of_ten_intents_is_classified_accurately():
    path = SHARED / "banking77" / "train.csv"
    if not path.is_file():
        pytest.skip("../shared/datasets/banking77 is absent")
    from retrieval.config import EmbedderConfig
    from retrieval.embedder import SentenceEmbedder
    from retrieval.threads import configure_threads

    by: dict[str, list[str]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by[row["category"]].append(row["text"])
    chosen = sorted(by)[:10]
    rng = np.random.default_rng(0)
    train, test = [], []
    for label in chosen:
        texts = [by[label][i] for i in rng.permutation(len(by[label]))[:60]]
        train += [(t, label) for t in texts[:45]]
        test += [(t, label) for t in texts[45:]]
    configure_threads(1, 1)
    embedder = SentenceEmbedder(EmbedderConfig(torch_threads=1)).load()
    clf = EmbeddingIntentClassifier.train(
        embedder.encode([t for t, _ in train]),
        [t for t, _ in train],
        [y for _, y in train],
        embedder_id=embedder.model_id,
    )
    preds = clf.predict(embedder.encode([t for t, _ in test]), [t for t, _ in test])
    accuracy = np.mean([p.intent == y for p, (_, y) in zip(preds, test)])
    assert accuracy >= 0.85, accuracy
