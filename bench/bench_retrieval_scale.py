"""Search latency and recall of VectorIndex at 100k units: flat vs HNSW vs IVF, 1 vs 2 FAISS threads.

Run: python bench/bench_retrieval_scale.py [--n 100000] [--queries 200]

Synthetic data: seeded, clustered, L2-normalised 384-d vectors (MiniLM's dimension;
clusters because real sentence embeddings are clustered by topic, and uniform random
vectors in 384-d would make any ANN index look worse than it is in practice).
The baseline is the exact flat index in the same run; latencies are single queries
(k=10) through `VectorIndex.search`, i.e. including candidate fetch and dedup folding.
Prints a table, then one JSON line with every number.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.config import IndexConfig
from retrieval.index import VectorIndex
from retrieval.threads import configure_threads
from retrieval.types import Unit

DIM = 384
K = 10


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray, noise: float = 1.0) -> np.ndarray:
    labels = rng.integers(0, len(centres), size=n)
    v = centres[labels] + noise * rng.standard_normal((n, DIM), dtype=np.float32) / np.sqrt(DIM)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(samples, q)) * 1000, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((max(1, args.n // 50), DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered(args.n, rng, centres)
    queries = clustered(args.queries, rng, centres)
    # identical replies + a threshold above 1 keep folding off (it would only merge
    # synthetic units) while still paying its per-candidate cost
    units = [Unit(id=f"u{i}", kind="qa", text="q", reply="synthetic reply") for i in range(args.n)]
    config_common = {"dedup_jaccard": 1.01}

    configure_threads(torch_threads=1, faiss_threads=2)  # builds may use both cores
    indexes: dict[str, VectorIndex] = {}
    build_s: dict[str, float] = {}
    for kind in ("flat", "hnsw", "ivf"):
        t0 = time.perf_counter()
        indexes[kind] = VectorIndex.build(
            units, vectors, embedder_id="synthetic", config=IndexConfig(kind=kind, **config_common)
        )
        build_s[kind] = round(time.perf_counter() - t0, 2)

    truth = [{h.unit.id for h in hits} for hits in indexes["flat"].search_batch(queries, K)]
    recall = {}
    for kind in ("hnsw", "ivf"):
        got = indexes[kind].search_batch(queries, K)
        recall[kind] = round(
            float(np.mean([len({h.unit.id for h in g} & t) / K for g, t in zip(got, truth, strict=True)])), 4
        )
    recall["flat"] = 1.0

    results = []
    for threads in (1, 2):
        configure_threads(torch_threads=1, faiss_threads=threads)
        for kind, index in indexes.items():
            for q in queries[:10]:  # warm-up
                index.search(q, K)
            times = []
            for q in queries:
                t0 = time.perf_counter()
                index.search(q, K)
                times.append(time.perf_counter() - t0)
            results.append(
                {
                    "kind": kind,
                    "faiss_threads": threads,
                    "p50_ms": percentile_ms(times, 50),
                    "p95_ms": percentile_ms(times, 95),
                }
            )

    base = {r["faiss_threads"]: r["p50_ms"] for r in results if r["kind"] == "flat"}
    base1 = base[1]
    print(f"n={args.n} dim={DIM} queries={args.queries} k={K}  builds (s): {build_s}")
    print(f"{'index':6} {'threads':>7} {'p50 ms':>9} {'p95 ms':>9} {'p50 vs flat@1':>14} {'recall@10':>10}")
    for r in results:
        r["p50_vs_flat_1thread"] = round(r["p50_ms"] / base1, 3)
        print(
            f"{r['kind']:6} {r['faiss_threads']:>7} {r['p50_ms']:>9.3f} {r['p95_ms']:>9.3f} "
            f"{r['p50_vs_flat_1thread']:>14.3f} {recall[r['kind']]:>10.4f}"
        )
    cfg = IndexConfig()
    print(
        json.dumps(
            {
                "bench": "retrieval_scale",
                "n": args.n,
                "dim": DIM,
                "queries": args.queries,
                "k": K,
                "seed": args.seed,
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "hnsw": {"m": cfg.hnsw_m, "ef_construction": cfg.hnsw_ef_construction, "ef_search": cfg.hnsw_ef_search},
                "ivf": {"nlist": indexes["ivf"]._index.nlist, "nprobe": cfg.ivf_nprobe},
                "build_s": build_s,
                "recall_at_10": recall,
                "latency": results,
            }
        )
    )


if __name__ == "__main__":
    main()
