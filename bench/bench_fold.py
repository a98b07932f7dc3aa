"""What folding near-duplicate hits costs a search, before and after it stops at the k-th hit.

    python bench/bench_fold.py [--workspace .csbot] [--k 5 20] [--repeats 3]

`VectorIndex.search` fetches 4×k candidates and folds each near-duplicate reply into the
better-scoring hit kept before it (word-set Jaccard). It used to go on through all 4×k
candidates after k hits were kept, only to list more duplicates; now it stops at the k-th
hit. Both run here on the workspace's own index, on the customer messages of
data/heldout.jsonl encoded once with the workspace's embedder, interleaved message by
message (the order alternating): the earlier loop is this script's `full_fold`, swapped
onto the same index instance, every unit's word set made beforehand. Reported per k:
search p50/p95 in ms for each, their ratio, and the share of searches whose hits (ids,
order, scores) are the same.

Progress on stderr; the LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.settings import CsbotSettings  # noqa: E402 - after sys.path has the repo
from bot.workspace import read_manifest  # noqa: E402
from retrieval.dedup import jaccard  # noqa: E402
from retrieval.embedder import SentenceEmbedder  # noqa: E402
from retrieval.index import VectorIndex  # noqa: E402
from retrieval.types import Hit  # noqa: E402


def full_fold(index: VectorIndex, ids: Any, scores: Any, k: int) -> list[Hit]:
    """The fold as it was: every fetched candidate compared with the kept hits."""
    kept: list[tuple[int, float, list[str]]] = []
    threshold = index.config.dedup_jaccard
    for pos, score in zip(ids.tolist(), scores.tolist(), strict=True):
        if pos < 0:
            continue
        toks = index._token_set(pos)
        for kept_pos, _, dups in kept:
            if jaccard(toks, index._token_set(kept_pos)) >= threshold:
                dups.append(index._units[pos].id)
                break
        else:
            if len(kept) < k:
                kept.append((pos, float(score), []))
    return [Hit(unit=index._units[p], score=s, duplicates=tuple(d)) for p, s, d in kept]


def messages(data: Path) -> list[str]:
    out = []
    for line in (data / "heldout.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            out += [t["text"] for t in json.loads(line)["turns"] if t["role"] == "customer"]
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, default=REPO / ".csbot")
    ap.add_argument("--data", type=Path, default=REPO / "data")
    ap.add_argument("--k", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not (args.workspace / "index").is_dir():
        sys.exit(f"error: {args.workspace} has no index; build it with `csbot build --workspace {args.workspace}`")
    if any(k < 1 for k in args.k) or args.repeats < 1:
        sys.exit("error: --k values and --repeats must be at least 1")
    config = CsbotSettings.from_env(args.workspace)
    embedder = SentenceEmbedder(config.embedder).load()
    index = VectorIndex.load(
        args.workspace / "index", embedder_id=read_manifest(args.workspace)["embedder_id"], config=config.index
    )
    texts = messages(args.data)
    print(f"• encoding {len(texts)} messages", file=sys.stderr, flush=True)
    vectors = embedder.encode(texts)
    # every unit's word set made once first: a serving index has them after its first turns,
    # and a cold cache would charge whichever fold touches more units first
    for pos in range(len(index._units)):
        index._token_set(pos)
    stopping = index._fold
    result: dict[str, Any] = {"machine": platform.machine(), "messages": len(texts), "repeats": args.repeats}
    for k in args.k:
        times: dict[str, list[float]] = {"full": [], "stops": []}
        same = 0
        for r in range(args.repeats):
            for i, vec in enumerate(vectors):
                hits = {}
                order = ("full", "stops") if (i + r) % 2 == 0 else ("stops", "full")
                for name in order:
                    full = lambda ids, s, kk, _source=None: full_fold(index, ids, s, kk)  # noqa: E731
                    index._fold = full if name == "full" else stopping  # type: ignore[method-assign]
                    started = time.perf_counter()
                    found = index.search(vec, k)
                    times[name].append((time.perf_counter() - started) * 1000)
                    hits[name] = [(h.unit.id, h.score) for h in found]
                same += hits["full"] == hits["stops"]
        index._fold = stopping  # type: ignore[method-assign]
        result[f"k{k}"] = {
            "full_fold_ms": {"p50": pct(times["full"], 0.5), "p95": pct(times["full"], 0.95)},
            "stops_at_k_ms": {"p50": pct(times["stops"], 0.5), "p95": pct(times["stops"], 0.95)},
            "ratio_p50": round(statistics.median(times["stops"]) / statistics.median(times["full"]), 3),
            "same_hits": round(same / (len(vectors) * args.repeats), 4),
        }
        print(f"• k={k}: {result[f'k{k}']}", file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
