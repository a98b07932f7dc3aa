"""retrieval.index.VectorIndex with real FAISS on small seeded random vectors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval.config import IndexConfig
from retrieval.errors import (
    IndexCorruptedError,
    IndexMismatchError,
    IndexNotFoundError,
    RetrievalError,
)
from retrieval.index import VectorIndex
from retrieval.types import Unit

DIM = 32
EMBEDDER = "test-embedder@0123456789ab"
VOCAB = [f"{a}{b}{c}" for a in "bcdfg" for b in "aeiou" for c in "klmnp"]


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_units(n: int, prefix: str = "u") -> list[Unit]:
    """Units whose replies share no wording (so nothing folds unless a test wants it)."""
    rng = np.random.default_rng(1)
    return [
        Unit(
            id=f"{prefix}{i}", kind="qa", text=f"question {i}", reply=" ".join(rng.choice(VOCAB, size=6, replace=False))
        )
        for i in range(n)
    ]


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return list(np.argsort(-(vectors @ query), kind="stable")[:k])


@pytest.fixture
def corpus() -> tuple[list[Unit], np.ndarray]:
    return make_units(200), unit_vectors(200)


def flat(units: list[Unit], vecs: np.ndarray, **cfg) -> VectorIndex:
    return VectorIndex.build(units, vecs, embedder_id=EMBEDDER, config=IndexConfig(kind="flat", **cfg))


# --- build and search --------------------------------------------------------------


def test_flat_search_returns_the_exact_nearest_units_best_first_with_cosine_scores(corpus) -> None:
    units, vecs = corpus
    index = flat(units, vecs)
    query = unit_vectors(1, seed=9)[0]
    hits = index.search(query, k=5)
    assert [h.unit.id for h in hits] == [f"u{i}" for i in exact_top(vecs, query, 5)]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(type(h.score) is float for h in hits)
    assert hits[0].score == pytest.approx(float(vecs[exact_top(vecs, query, 1)[0]] @ query), abs=1e-5)


def test_a_units_own_vector_finds_it_first_with_score_one(corpus) -> None:
    units, vecs = corpus
    hits = flat(units, vecs).search(vecs[17].reshape(1, -1), k=3)
    assert hits[0].unit.id == "u17" and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_auto_kind_is_flat_below_the_threshold_and_hnsw_at_or_above_it(corpus) -> None:
    units, vecs = corpus
    small = VectorIndex.build(units, vecs, embedder_id=EMBEDDER, config=IndexConfig(ann_threshold=201))
    large = VectorIndex.build(units, vecs, embedder_id=EMBEDDER, config=IndexConfig(ann_threshold=200))
    assert (small.kind_used, large.kind_used) == ("flat", "hnsw")
    assert large.manifest["index_kind"] == "hnsw"


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_find_nearly_all_exact_neighbours(corpus, kind: str) -> None:
    units, vecs = corpus
    index = VectorIndex.build(
        units, vecs, embedder_id=EMBEDDER, config=IndexConfig(kind=kind, ivf_nprobe=4, hnsw_ef_search=64)
    )
    assert index.kind_used == kind
    queries = unit_vectors(20, seed=5)
    found = sum(
        len({h.unit.id for h in hits} & {f"u{i}" for i in exact_top(vecs, q, 5)})
        for q, hits in zip(queries, index.search_batch(queries, k=5), strict=True)
    )
    assert found / (20 * 5) >= 0.9


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_an_intent_filter_searches_only_that_intents_units_before_the_top_k_cut(corpus, kind: str) -> None:
    units, vecs = corpus
    labelled = [dataclasses.replace(u, intent="refund" if i % 4 == 0 else "other") for i, u in enumerate(units)]
    index = VectorIndex.build(
        labelled, vecs, embedder_id=EMBEDDER, config=IndexConfig(kind=kind, ivf_nlist=4, ivf_nprobe=4)
    )
    query = vecs[1]  # an "other" unit: its own neighbours are mostly "other"
    hits = index.search(query, k=5, intent="refund")
    refund_positions = [i for i in range(len(units)) if i % 4 == 0]
    expected = [refund_positions[j] for j in exact_top(vecs[refund_positions], query, 5)]
    assert [h.unit.id for h in hits] == [units[i].id for i in expected]
    assert index.search(query, k=5, intent="no-such-intent") == []


def test_a_kind_filter_combines_with_the_intent_filter(corpus) -> None:
    units, vecs = corpus
    mixed = [
        dataclasses.replace(u, intent="refund" if i % 2 else "other", kind="kb" if i % 3 == 0 else "qa")
        for i, u in enumerate(units)
    ]
    index = flat(mixed, vecs)
    hits = index.search(vecs[0], k=10, intent="refund", kind="kb")
    assert hits and all(h.unit.intent == "refund" and h.unit.kind == "kb" for h in hits)
    assert all(h.unit.kind == "kb" for h in index.search(vecs[0], k=10, kind="kb"))


def test_an_intent_filter_sees_units_added_later(corpus) -> None:
    units, vecs = corpus
    index = flat(units[:100], vecs[:100])
    assert index.search(vecs[0], k=3, intent="late") == []
    index.add([dataclasses.replace(units[150], intent="late")], vecs[150:151])
    assert [h.unit.id for h in index.search(vecs[0], k=3, intent="late")] == [units[150].id]


def test_search_batch_gives_the_same_hits_as_one_search_per_query(corpus) -> None:
    units, vecs = corpus
    index = flat(units, vecs)
    queries = unit_vectors(4, seed=3)
    assert index.search_batch(queries, k=4) == [index.search(q, k=4) for q in queries]


def test_search_returns_fewer_hits_when_the_index_is_smaller_than_k() -> None:
    index = flat(make_units(3), unit_vectors(3))
    assert len(index.search(unit_vectors(1, seed=4)[0], k=10)) == 3


def test_search_on_an_empty_index_returns_no_hits() -> None:
    index = flat([], np.zeros((0, DIM), dtype=np.float32))
    assert len(index) == 0 and index.search(unit_vectors(1)[0]) == []


def test_search_rejects_a_query_of_the_wrong_dimension_or_several_queries(corpus) -> None:
    index = flat(*corpus)
    with pytest.raises(IndexMismatchError, match="dimension 16 but the index has 32"):
        index.search(unit_vectors(1, dim=16)[0])
    with pytest.raises(ValueError, match="search_batch"):
        index.search(unit_vectors(2))
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search(unit_vectors(1)[0], k=0)


def test_build_refuses_mismatched_counts_duplicate_ids_and_unknown_kinds(corpus) -> None:
    units, vecs = corpus
    with pytest.raises(ValueError, match="200 units but 199 vectors"):
        flat(units, vecs[:199])
    with pytest.raises(RetrievalError, match="duplicate unit id 'u0'"):
        flat([*units[:2], units[0]], vecs[:3])
    with pytest.raises(ValueError, match="unknown index kind 'lsh'"):
        VectorIndex.build(units, vecs, embedder_id=EMBEDDER, config=IndexConfig(kind="lsh"))  # type: ignore[arg-type] - a wrong value on purpose


# --- near-duplicate folding --------------------------------------------------------


def near(v: np.ndarray, seed: int, eps: float = 0.01) -> np.ndarray:
    w = v + eps * unit_vectors(1, seed=seed, dim=v.shape[0])[0]
    return w / np.linalg.norm(w)


def test_search_folds_near_duplicate_replies_into_one_hit() -> None:
    base = unit_vectors(50, seed=2)
    units = make_units(50)
    units[1] = Unit(
        id="dup-a",
        kind="transcript",
        text="where is 40318275",
        reply="Your order #40318275 has shipped and arrives Monday!",
    )
    units[2] = Unit(
        id="dup-b",
        kind="transcript",
        text="where is 11112222",
        reply="your order {{Order Number}} has shipped, and arrives monday.",
    )
    base[2] = near(base[1], seed=7)
    index = flat(units, base)
    hits = index.search(base[1], k=3)
    assert hits[0].unit.id == "dup-a" and hits[0].duplicates == ("dup-b",)
    assert "dup-b" not in [h.unit.id for h in hits]
    assert len(hits) == 3  # folding does not cost the caller a hit


def test_search_keeps_similar_but_different_replies_apart() -> None:
    base = unit_vectors(10, seed=2)
    units = make_units(10)
    units[1] = Unit(id="a", kind="qa", text="q", reply="Your refund was issued to your card today.")
    units[2] = Unit(id="b", kind="qa", text="q", reply="Your refund was declined; please contact your bank.")
    base[2] = near(base[1], seed=7)
    hits = flat(units, base).search(base[1], k=3)
    assert [h.unit.id for h in hits[:2]] == ["a", "b"] and hits[0].duplicates == ()


def test_an_excluded_source_leaves_before_folding_so_another_sources_copy_keeps_its_own_rank() -> None:
    base = unit_vectors(50, seed=2)
    units = make_units(50)
    units[1] = Unit(id="own", kind="transcript", text="q", reply="Same reply.", source_id="c-own")
    units[2] = Unit(id="twin", kind="transcript", text="q", reply="Same reply.", source_id="c-twin")
    base[2] = near(base[1], seed=7)
    index = flat(units, base)
    query = np.stack([base[1], base[1]])
    folded, excluded = index.search_batch(query, k=3, exclude_sources=["c-none", "c-own"])
    assert folded[0].unit.id == "own" and folded[0].duplicates == ("twin",)
    # the own copy gone, the other conversation's copy is a hit of its own, at its own score
    assert excluded[0].unit.id == "twin" and excluded[0].duplicates == ()
    assert excluded[0].score == pytest.approx(float(base[2] @ base[1]), abs=1e-5)
    assert "own" not in [h.unit.id for h in excluded] and len(excluded) == 3
    with pytest.raises(ValueError, match="one per query"):
        index.search_batch(query, k=3, exclude_sources=["c-own"])


def test_a_dedup_threshold_above_one_disables_folding() -> None:
    base = unit_vectors(10, seed=2)
    units = make_units(10)
    units[1] = Unit(id="a", kind="qa", text="q", reply="Same reply.")
    units[2] = Unit(id="b", kind="qa", text="q", reply="Same reply.")
    base[2] = near(base[1], seed=7)
    assert [h.unit.id for h in flat(units, base, dedup_jaccard=1.01).search(base[1], k=2)] == ["a", "b"]


# --- incremental add ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_added_units_are_searchable_without_a_rebuild(corpus, kind: str) -> None:
    units, vecs = corpus
    index = VectorIndex.build(units, vecs, embedder_id=EMBEDDER, config=IndexConfig(kind=kind, ivf_nprobe=16))
    new_units, new_vecs = make_units(5, prefix="new"), unit_vectors(5, seed=42)
    index.add(new_units, new_vecs, sources={"more.csv": "abc"})
    assert len(index) == 205 and index.manifest["n_units"] == 205
    assert index.get("new3") == new_units[3] and index.units[203] == new_units[3]
    assert index.search(new_vecs[3], k=1)[0].unit.id == "new3"
    assert index.manifest["sources"] == {"more.csv": "abc"}


def test_add_refuses_a_duplicate_id_naming_it_and_adds_nothing(corpus) -> None:
    units, vecs = corpus
    index = flat(units, vecs)
    with pytest.raises(RetrievalError, match="duplicate unit id 'u5' \\(already in the index\\)"):
        index.add([*make_units(1, prefix="fresh"), units[5]], unit_vectors(2, seed=8))
    assert len(index) == 200 and index.get("fresh0") is None
    assert index.search(unit_vectors(1, seed=8)[0], k=1)[0].unit.id != "fresh0"


def test_add_refuses_vectors_of_another_dimension(corpus) -> None:
    index = flat(*corpus)
    with pytest.raises(IndexMismatchError, match="dimension 8 but the index has 32"):
        index.add(make_units(1, prefix="x"), unit_vectors(1, dim=8))
    assert len(index) == 200


# --- save and load -----------------------------------------------------------------


def test_save_then_load_gives_the_same_units_hits_and_manifest(tmp_path: Path, corpus) -> None:
    units, vecs = corpus
    index = VectorIndex.build(
        units, vecs, embedder_id=EMBEDDER, config=IndexConfig(kind="flat"), sources={"convs.jsonl": "f" * 64}
    )
    gen = index.save(tmp_path / "idx")
    assert gen.name == "gen-1" and (tmp_path / "idx" / "CURRENT").read_text().strip() == "gen-1"
    loaded = VectorIndex.load(tmp_path / "idx", embedder_id=EMBEDDER, dim=DIM)
    queries = unit_vectors(5, seed=11)
    assert loaded.search_batch(queries, 5) == index.search_batch(queries, 5)
    assert list(loaded.units) == units and loaded.get("u42") == units[42] and len(loaded) == 200
    m = loaded.manifest
    assert (m["format_version"], m["embedder_id"], m["dim"], m["index_kind"], m["n_units"]) == (
        1,
        EMBEDDER,
        DIM,
        "flat",
        200,
    )
    assert m["sources"] == {"convs.jsonl": "f" * 64} and set(m["files"]) == {"index.faiss", "units.jsonl"}
    assert m["index_config"]["kind"] == "flat" and m["built_at"].endswith("+00:00")


def test_load_takes_runtime_search_parameters_from_the_given_config(tmp_path: Path, corpus) -> None:
    units, vecs = corpus
    VectorIndex.build(units, vecs, embedder_id=EMBEDDER, config=IndexConfig(kind="hnsw", hnsw_ef_search=16)).save(
        tmp_path
    )
    loaded = VectorIndex.load(tmp_path, embedder_id=EMBEDDER, config=IndexConfig(kind="hnsw", hnsw_ef_search=99))
    assert loaded.kind_used == "hnsw" and loaded._index.hnsw.efSearch == 99
    assert VectorIndex.load(tmp_path, embedder_id=EMBEDDER)._index.hnsw.efSearch == 16


def test_save_keeps_the_current_and_previous_generation_only(tmp_path: Path, corpus) -> None:
    index = flat(*corpus)
    for _ in range(4):
        index.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "gen-3", "gen-4"]
    assert (tmp_path / "CURRENT").read_text().strip() == "gen-4"


def test_load_without_an_index_says_to_run_build(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError) as err:
        VectorIndex.load(tmp_path / "nothing", embedder_id=EMBEDDER)
    assert str(err.value) == f"no index in {tmp_path / 'nothing'}: run `csbot build` first"


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "delete"])
def test_load_refuses_a_damaged_index_file_naming_it(tmp_path: Path, corpus, damage: str) -> None:
    gen = flat(*corpus).save(tmp_path)
    target = gen / "index.faiss"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "flip_byte":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    with pytest.raises(IndexCorruptedError) as err:
        VectorIndex.load(tmp_path, embedder_id=EMBEDDER)
    assert str(target) in str(err.value) and "csbot build" in str(err.value)


def test_load_refuses_edited_units_or_manifest(tmp_path: Path, corpus) -> None:
    gen = flat(*corpus).save(tmp_path)
    with (gen / "units.jsonl").open("a") as f:
        f.write(json.dumps(make_units(1, prefix="sneaky")[0].to_json()) + "\n")
    with pytest.raises(IndexCorruptedError, match=r"units\.jsonl does not match its hash"):
        VectorIndex.load(tmp_path, embedder_id=EMBEDDER)
    (gen / "manifest.json").write_text("{truncated")
    with pytest.raises(IndexCorruptedError, match=r"manifest\.json is missing or unreadable"):
        VectorIndex.load(tmp_path, embedder_id=EMBEDDER)


def test_load_refuses_an_index_built_with_another_embedder_naming_both(tmp_path: Path, corpus) -> None:
    flat(*corpus).save(tmp_path)
    with pytest.raises(IndexMismatchError) as err:
        VectorIndex.load(tmp_path, embedder_id="other-model@ffffffffffff")
    msg = str(err.value)
    assert EMBEDDER in msg and "other-model@ffffffffffff" in msg and "csbot build" in msg
    with pytest.raises(IndexMismatchError, match="32-d vectors but the embedder produces 384-d"):
        VectorIndex.load(tmp_path, embedder_id=EMBEDDER, dim=384)


def test_a_partial_generation_left_by_a_crashed_save_is_ignored_then_cleaned_up(tmp_path: Path, corpus) -> None:
    units, vecs = corpus
    flat(units, vecs).save(tmp_path)
    # a save that died after writing part of gen-2, before CURRENT was switched
    partial = tmp_path / "gen-2"
    partial.mkdir()
    (partial / "index.faiss").write_bytes(b"\x00" * 10)
    (tmp_path / ".CURRENT.x1y2z3.tmp").write_text("gen-2")
    loaded = VectorIndex.load(tmp_path, embedder_id=EMBEDDER)
    assert len(loaded) == 200 and loaded.manifest["files"]
    # the next save skips the debris's number, and removes the debris
    loaded.add(make_units(1, prefix="n"), unit_vectors(1, seed=3))
    assert loaded.save(tmp_path).name == "gen-3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "gen-1", "gen-3"]
    assert len(VectorIndex.load(tmp_path, embedder_id=EMBEDDER)) == 201


def test_load_refuses_a_current_pointer_to_a_missing_generation(tmp_path: Path, corpus) -> None:
    gen = flat(*corpus).save(tmp_path)
    shutil.rmtree(gen)
    with pytest.raises(IndexCorruptedError, match="points at 'gen-1', which does not exist"):
        VectorIndex.load(tmp_path, embedder_id=EMBEDDER)


def test_the_index_is_a_retriever(corpus) -> None:
    from bot.contracts import Retriever

    assert isinstance(flat(*corpus), Retriever)
