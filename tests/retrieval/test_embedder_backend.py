"""The embedder's backends (`EmbedderConfig.backend`): the local ONNX export, its cache, the
vectors against torch's, the model ids that keep int8 vectors out of a torch index, and
"auto" (the default), which runs ONNX and falls back on torch when it cannot.

The slow tests export the shipped MiniLM with the real onnxruntime into a temporary cache
folder (once per module) and skip, saying why, when onnxruntime or onnx is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from retrieval.config import EmbedderConfig
from retrieval.embedder import (
    SentenceEmbedder,
    backend_model_id,
    default_model_path,
    model_fingerprint,
    onnx_export_dir,
)
from retrieval.errors import EmbedderLoadError

ONNX_MISSING = [name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is None]
needs_onnx = pytest.mark.skipif(
    bool(ONNX_MISSING),
    reason=f"{' and '.join(ONNX_MISSING)} not installed (the optional ONNX embedder backends need them)",
)

TEXTS = [
    "hi",
    "Where is my parcel? It has not been delivered yet.",
    "My package still hasn't arrived, where is it?",
    "How do I change the password of my account?",
    "I want to return the hiking backpack {order_number}, the zip broke after two days. " * 30,  # > 256 tokens
    "can i pay with paypal",
]


def _exported(folder: Path) -> list[Path]:
    """What `folder` holds but the exports' lock files (`.NAME.lock`, left in place: removing
    a lock file another process may be waiting on would let two exports run at once)."""
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".lock"))


def _packaged_model() -> Path:
    try:
        return default_model_path()
    except EmbedderLoadError as exc:
        pytest.skip(str(exc))


# --- fast: nothing is exported ---------------------------------------------------------


def test_an_unknown_backend_is_refused_naming_the_ones_there_are() -> None:
    with pytest.raises(ValueError, match=r"auto, torch, onnx, onnx-int8; got 'onnx-fp16'"):
        EmbedderConfig(backend="onnx-fp16")  # type: ignore[arg-type]


def test_the_backend_is_a_setting_read_from_the_environment() -> None:
    from bot.settings import CsbotSettings, InvalidSettingsError

    settings = CsbotSettings.from_env("ws", env={"CSBOT_EMBEDDER__BACKEND": "onnx-int8"})
    assert settings.embedder.backend == "onnx-int8"
    assert CsbotSettings.from_env("ws", env={}).embedder.backend == "auto"
    with pytest.raises(InvalidSettingsError, match="backend"):
        CsbotSettings.from_env("ws", env={"CSBOT_EMBEDDER__BACKEND": "tensorrt"})


def test_float_onnx_shares_the_model_id_and_int8_gets_its_own() -> None:
    assert backend_model_id("mini@0123", "torch") == "mini@0123"
    assert backend_model_id("mini@0123", "onnx") == "mini@0123"
    assert backend_model_id("mini@0123", "onnx-int8") == "mini@0123+onnx-int8"


def test_auto_uses_the_onnx_export_folder_and_reports_no_backend_before_loading() -> None:
    auto = EmbedderConfig(onnx_cache_dir="/cache")
    assert auto.backend == "auto"
    assert onnx_export_dir(auto, "m@1") == onnx_export_dir(replace(auto, backend="onnx"), "m@1")
    assert SentenceEmbedder(auto).backend == "auto" and not SentenceEmbedder(auto).loaded


def test_exports_go_under_the_configured_folder_or_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = onnx_export_dir(EmbedderConfig(backend="onnx", onnx_cache_dir=str(tmp_path / "c")), "my model@ab12")
    assert configured.parent == tmp_path / "c"
    assert configured.name.startswith("my_model-ab12-onnx-v")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = onnx_export_dir(EmbedderConfig(backend="onnx-int8"), "m@1")
    assert default.parent == tmp_path / "xdg" / "csbot" / "embedders"
    assert "onnx-int8" in default.name


def test_without_onnxruntime_the_onnx_backend_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _packaged_model()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` does when it is absent
    config = EmbedderConfig(backend="onnx", onnx_cache_dir=str(tmp_path))
    with pytest.raises(EmbedderLoadError, match="needs onnxruntime and onnx: pip install onnxruntime onnx") as err:
        SentenceEmbedder(config).load()
    assert "CSBOT_EMBEDDER__BACKEND=torch" in str(err.value)
    assert _exported(tmp_path) == []  # nothing half-exported left behind


@pytest.mark.slow
def test_auto_without_onnxruntime_serves_on_torch_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = _packaged_model()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with caplog.at_level("WARNING", logger="csbot.retrieval"):
        embedder = SentenceEmbedder(EmbedderConfig(onnx_cache_dir=str(tmp_path))).load()
    assert embedder.backend == "torch"
    assert embedder.model_id == model_fingerprint(model)  # the id an index built with "onnx" has too
    assert embedder.fallback_reason is not None and "needs onnxruntime" in embedder.fallback_reason
    assert "running on torch, not ONNX Runtime" in caplog.text
    assert embedder.encode(["hi"]).shape == (1, 384)
    assert _exported(tmp_path) == []


# --- slow: the real export ------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def embedders(cache: Path) -> dict[str, SentenceEmbedder]:
    if ONNX_MISSING:
        pytest.skip(f"{' and '.join(ONNX_MISSING)} not installed")
    _packaged_model()
    from retrieval.threads import configure_threads

    configure_threads(2, 1)
    # batch_size 4: the six texts run in two batches, reordered by length and put back
    return {
        backend: SentenceEmbedder(EmbedderConfig(backend=backend, batch_size=4, onnx_cache_dir=str(cache))).load()
        for backend in ("torch", "onnx", "onnx-int8")
    }


@pytest.mark.slow
@needs_onnx
def test_onnx_gives_the_torch_vectors_under_the_same_model_id(embedders: dict[str, SentenceEmbedder]) -> None:
    torch_vectors = embedders["torch"].encode(TEXTS)
    onnx = embedders["onnx"]
    vectors = onnx.encode(TEXTS)
    assert onnx.backend == "onnx" and onnx.dim == 384
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.sum(vectors * torch_vectors, axis=1).min() > 0.9999
    # one text alone (the serving case) is the same vector as inside a padded batch
    assert float(onnx.encode([TEXTS[1]])[0] @ vectors[1]) > 0.9999
    assert onnx.model_id == embedders["torch"].model_id
    assert onnx.encode([]).shape == (0, 384)


@pytest.mark.slow
@needs_onnx
def test_onnx_int8_vectors_are_close_to_torch_but_carry_their_own_model_id(
    embedders: dict[str, SentenceEmbedder],
) -> None:
    torch_vectors = embedders["torch"].encode(TEXTS)
    int8 = embedders["onnx-int8"]
    vectors = int8.encode(TEXTS)
    cosine = np.sum(vectors * torch_vectors, axis=1)
    assert cosine.min() > 0.9 and cosine.mean() > 0.95
    assert cosine.min() < 0.9999  # quantized: not the float model's vectors
    parcel, parcel_again, password = vectors[1], vectors[2], vectors[3]
    assert float(parcel @ parcel_again) > float(parcel @ password) + 0.2
    assert int8.model_id == embedders["torch"].model_id + "+onnx-int8"


@pytest.mark.slow
@needs_onnx
def test_an_index_built_with_torch_takes_onnx_queries_and_refuses_int8(
    embedders: dict[str, SentenceEmbedder], tmp_path: Path
) -> None:
    from retrieval.config import IndexConfig
    from retrieval.errors import IndexMismatchError
    from retrieval.index import VectorIndex
    from retrieval.types import Unit

    replies = ["hello there", "it is on its way", "let me check the tracking", "use the reset link", "ok", "yes"]
    pairs = enumerate(zip(TEXTS, replies, strict=True))
    units = [Unit(id=f"u{i}", kind="transcript", text=t, reply=r) for i, (t, r) in pairs]
    built = VectorIndex.build(
        units, embedders["torch"].encode(TEXTS), embedder_id=embedders["torch"].model_id, config=IndexConfig()
    )
    built.save(tmp_path / "index")
    index = VectorIndex.load(tmp_path / "index", embedder_id=embedders["onnx"].model_id)
    question = ["has my parcel been delivered?"]
    found = [h.unit.id for h in index.search(embedders["onnx"].encode(question), k=3)]
    assert len(found) == 3 and found[0] in ("u1", "u2")
    assert found == [h.unit.id for h in index.search(embedders["torch"].encode(question), k=3)]
    with pytest.raises(IndexMismatchError):
        VectorIndex.load(tmp_path / "index", embedder_id=embedders["onnx-int8"].model_id)


@pytest.mark.slow
@needs_onnx
def test_the_export_is_made_once_atomically_and_reused(embedders: dict[str, SentenceEmbedder], cache: Path) -> None:
    fingerprint = model_fingerprint(default_model_path())
    folders = sorted(p.name for p in _exported(cache))
    assert folders == sorted(
        onnx_export_dir(EmbedderConfig(backend=b, onnx_cache_dir=str(cache)), fingerprint).name
        for b in ("onnx", "onnx-int8")
    )  # and no temporary folder left over
    exported = onnx_export_dir(EmbedderConfig(backend="onnx", onnx_cache_dir=str(cache)), fingerprint) / "model.onnx"
    before = exported.stat()
    again = SentenceEmbedder(EmbedderConfig(backend="onnx", onnx_cache_dir=str(cache))).load()
    assert exported.stat().st_ino == before.st_ino and exported.stat().st_mtime_ns == before.st_mtime_ns
    assert float(again.encode([TEXTS[3]])[0] @ embedders["onnx"].encode([TEXTS[3]])[0]) > 0.9999


@pytest.mark.slow
@needs_onnx
def test_a_stale_export_is_replaced_and_a_broken_one_names_the_folder_to_delete(
    embedders: dict[str, SentenceEmbedder], cache: Path, tmp_path: Path
) -> None:
    fingerprint = model_fingerprint(default_model_path())
    config = EmbedderConfig(backend="onnx", onnx_cache_dir=str(tmp_path))
    folder = onnx_export_dir(config, fingerprint)
    shutil.copytree(onnx_export_dir(replace(config, onnx_cache_dir=str(cache)), fingerprint), folder)
    # an export of some other model under this folder's name: exported again, not used
    manifest = json.loads((folder / "csbot_onnx.json").read_text())
    (folder / "csbot_onnx.json").write_text(json.dumps({**manifest, "source": "other@0000"}))
    reloaded = SentenceEmbedder(config).load()
    assert json.loads((folder / "csbot_onnx.json").read_text())["source"] == fingerprint
    reference = embedders["onnx"].encode(TEXTS[:2])
    assert np.sum(reloaded.encode(TEXTS[:2]) * reference, axis=1).min() > 0.9999
    # a finished export whose model file was damaged afterwards: a clear refusal
    (folder / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(EmbedderLoadError, match="delete that folder to export it again") as err:
        SentenceEmbedder(config).load()
    assert str(folder) in str(err.value)


@pytest.mark.slow
@needs_onnx
def test_a_model_that_is_not_mean_pooled_is_refused_for_onnx(tmp_path: Path) -> None:
    model = tmp_path / "cls-minilm"
    shutil.copytree(_packaged_model(), model)
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    embedder = SentenceEmbedder(EmbedderConfig(model_path=str(model), backend="onnx", onnx_cache_dir=str(tmp_path)))
    with pytest.raises(EmbedderLoadError, match=r"mean Pooling -> Normalize models.*use the torch backend"):
        embedder.load()
    assert [p.name for p in _exported(tmp_path)] == ["cls-minilm"]  # nothing exported


@pytest.mark.slow
@needs_onnx
def test_auto_runs_the_onnx_export_with_its_vectors(embedders: dict[str, SentenceEmbedder], cache: Path) -> None:
    auto = SentenceEmbedder(EmbedderConfig(batch_size=4, onnx_cache_dir=str(cache))).load()
    assert auto.backend == "onnx" and auto.fallback_reason is None
    assert auto.model_id == embedders["torch"].model_id
    assert np.array_equal(auto.encode(TEXTS), embedders["onnx"].encode(TEXTS))


@pytest.mark.slow
@needs_onnx
def test_auto_runs_a_model_onnx_cannot_run_on_torch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = tmp_path / "cls-minilm"
    shutil.copytree(_packaged_model(), model)
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    with caplog.at_level("WARNING", logger="csbot.retrieval"):
        embedder = SentenceEmbedder(EmbedderConfig(model_path=str(model), onnx_cache_dir=str(tmp_path))).load()
    assert embedder.backend == "torch"
    assert "mean Pooling" in caplog.text
    assert embedder.encode(["where is my parcel"]).shape == (1, 384)


@pytest.mark.slow
@needs_onnx
def test_loads_that_start_together_on_a_new_cache_export_once(tmp_path: Path, monkeypatch) -> None:
    _packaged_model()
    import threading

    import retrieval.embedder as embedder_module

    exports: list[Path] = []
    real_export = embedder_module.export_onnx

    def counted_export(*args, **kwargs):
        exports.append(args[-1])
        return real_export(*args, **kwargs)

    monkeypatch.setattr(embedder_module, "export_onnx", counted_export)
    config = EmbedderConfig(backend="onnx", onnx_cache_dir=str(tmp_path))
    loaded: list[SentenceEmbedder] = []
    start = threading.Barrier(3)

    def load() -> None:
        start.wait()
        loaded.append(SentenceEmbedder(config).load())

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 3 and len(exports) == 1
    assert {e.model_id for e in loaded} == {model_fingerprint(default_model_path())}
