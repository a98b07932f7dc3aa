"""Saving and loading the classifier as plain data, and refusing what cannot be trusted
(bot.intents.persistence)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from bot.errors import ArtifactMismatchError, WorkspaceNotBuiltError
from bot.intents import EmbeddingIntentClassifier, IntentClassifierConfig, IntentModelError
from tests.bot.intents.synthetic import DIM, EMBEDDER_ID, INTENTS, sample


def test_save_then_load_gives_identical_predictions(trained, tmp_path):
    trained.save(tmp_path / "intents")
    loaded = EmbeddingIntentClassifier.load(tmp_path / "intents", embedder_id=EMBEDDER_ID, dim=DIM)
    vectors, texts, _ = sample(5, seed=5)
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
    vectors, texts, labels = sample(6, seed=9)
    keep = [i for i, y in enumerate(labels) if y in intents]
    v, t, y = vectors[keep], [texts[i] for i in keep], [labels[i] for i in keep]
    clf = EmbeddingIntentClassifier.train(v, t, y, config, embedder_id=EMBEDDER_ID)
    clf.save(tmp_path)
    loaded = EmbeddingIntentClassifier.load(tmp_path, embedder_id=EMBEDDER_ID, dim=DIM)
    assert loaded.predict(vectors, texts) == clf.predict(vectors, texts)
    assert loaded.labels == tuple(sorted(intents))
