"""Resident memory: one `csbot serve` replica with the demo models loaded, and a
1-million-unit index (flat, HNSW, IVF-PQ).

    python bench/bench_memory.py [--workspace .csbot] [--model DIR] [--n 1000000] [--skip-index]

1. Replica: the real `csbot serve` on a copy of the workspace (its store emptied), with 1 and
   with 2 inference workers, and, with --model DIR, again with that GPT-2 composer
   registered and promoted in the copy. Resident size (VmRSS and the peak VmHWM of
   /proc/PID/status) after /readyz says ready and after 20 turns through the HTTP API.
2. Index: per kind, N seeded, clustered, L2-normalised 384-d vectors (MiniLM's dimension;
   the generator of bench_retrieval_scale.py) go into a FAISS index, built in one child
   process and written to a file; reported: what loading that file adds to a fresh
   process's resident size (what a replica pays) and the file's size. Kinds: exact flat
   inner product (what `VectorIndex` builds below its HNSW threshold), HNSW (M=32,
   efConstruction 80, the `IndexConfig` defaults) and IVF-PQ (4,096 lists, 48 sub-quantisers
   of 8 bits: 48 bytes a vector; `VectorIndex` has no PQ kind yet, so this one is plain
   FAISS, trained on 100,000 of the vectors). Then the unit table: N `retrieval.types.Unit`
   rows with the demo index's mean text and reply lengths, which any kind keeps in memory
   beside the vectors.

Progress on stderr; the LAST stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_serve_load import customer_messages, free_port, start_server, wait_ready  # noqa: E402

CSBOT = Path(sys.executable).with_name("csbot")
DIM = 384
TURNS = 20

# Built in one child process per kind and written to a file; loaded in another, which
# reports what loading it adds to its resident size (what a replica pays; a build's own
# scratch memory, k-means for IVF-PQ, is not part of it).
INDEX_BUILD_CHILD = r"""
import sys, faiss, numpy as np
sys.path.insert(0, sys.argv[1])
from bench.bench_retrieval_scale import clustered
kind, n, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
faiss.omp_set_num_threads(2)
rng = np.random.default_rng(0)
centres = rng.standard_normal((max(1, n // 50), 384), dtype=np.float32)
centres /= np.linalg.norm(centres, axis=1, keepdims=True)
vectors = clustered(n, rng, centres)
if kind == "flat":
    index = faiss.IndexFlatIP(384)
elif kind == "hnsw":
    index = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
else:
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(384), 384, 4096, 48, 8, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors[: min(n, 100_000)])
index.add(vectors)
faiss.write_index(index, path)
"""

INDEX_LOAD_CHILD = r"""
import json, os, sys, faiss
path = sys.argv[1]

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

before = rss_mb()
index = faiss.read_index(path)
print(json.dumps({"index_rss_mb": round(rss_mb() - before, 1), "file_mb": round(os.path.getsize(path) / 2**20, 1),
                  "ntotal": index.ntotal}))
"""

UNITS_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from retrieval.types import Unit
n, text_len, reply_len = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

before = rss_mb()
units = [Unit(id=f"conv-{i:07d}-t{i % 9}", kind="transcript", text=("q%07d " % i) + "x" * (text_len - 9),
              reply=("r%07d " % i) + "y" * (reply_len - 9), source_id=f"conv-{i:07d}", turn=i % 9,
              intent="order_status") for i in range(n)]
print(json.dumps({"n": n, "units_rss_mb": round(rss_mb() - before, 1)}))
"""


def log(message: str) -> None:
    print(f"• {message}", file=sys.stderr, flush=True)


def proc_memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "peak_mb": fields["VmHWM"]}


async def replica_memory(workspace: Path, workers: int, texts: list[str], log_path: Path) -> dict[str, Any]:
    """RSS of one `csbot serve` when ready and after TURNS turns."""
    port = free_port()
    proc = start_server(workspace, port, workers, False, log_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            await wait_ready(client, proc, log_path)
            ready = proc_memory_mb(proc.pid)
            r = await client.post("/api/v1/conversations", json={"channel": "web"})
            r.raise_for_status()
            cid, token = r.json()["conversation_id"], {"X-Conversation-Token": r.json()["access_token"]}
            for text in texts[:TURNS]:
                reply = await client.post(f"/api/v1/conversations/{cid}/messages", json={"text": text}, headers=token)
                reply.raise_for_status()
            return {"workers": workers, "ready": ready, "after_turns": proc_memory_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def workspace_copy(source: Path, into: Path, model: Path | None, *, keep_models: bool = False) -> Path:
    """A copy of `source` with an empty store, and `model` registered and promoted. The
    copy leaves out `source`'s own models unless `keep_models` (and no `model` is given)."""
    ignored = ["store.db*", "finetune"] + ([] if keep_models and model is None else ["models"])
    shutil.copytree(source, into, ignore=shutil.ignore_patterns(*ignored))
    if model is not None:
        added = subprocess.run(
            [str(CSBOT), "models", "add", str(model), "--workspace", str(into)],
            check=True,
            capture_output=True,
            text=True,
        )
        model_id = json.loads(added.stdout.strip().splitlines()[-1])["id"]
        promote = [str(CSBOT), "models", "promote", model_id, "--workspace", str(into)]
        subprocess.run(promote, check=True, capture_output=True)
    return into


def mean_lengths(workspace: Path) -> tuple[int, int]:
    """Mean text and reply length (characters) of the workspace's index units."""
    from bot.workspace import read_manifest
    from retrieval.index import VectorIndex

    index = VectorIndex.load(workspace / "index", embedder_id=read_manifest(workspace)["embedder_id"])
    units = index.units
    return (
        round(sum(len(u.text) for u in units) / len(units)),
        round(sum(len(u.reply) for u in units) / len(units)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, default=REPO / ".csbot")
    ap.add_argument("--data", type=Path, default=REPO / "data")
    ap.add_argument("--model", type=Path, default=None, help="a GPT-2 composer to promote for the replica figure")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--skip-index", action="store_true")
    ap.add_argument("--skip-replica", action="store_true")
    args = ap.parse_args()
    if not (args.workspace / "workspace.json").is_file():
        log(f"building {args.workspace} from {args.data}")
        subprocess.run([str(CSBOT), "build", "--data", str(args.data), "--workspace", str(args.workspace)], check=True)
    result: dict[str, Any] = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    if not args.skip_replica:
        texts = customer_messages(args.data)
        replicas = []
        with tempfile.TemporaryDirectory(prefix="csbot-mem-") as tmp:
            setups = [("retrieval", None)] + ([("gpt2", args.model)] if args.model else [])
            for composer, model in setups:
                ws = workspace_copy(args.workspace, Path(tmp) / composer, model)
                for workers in (1, 2):
                    log(f"replica: {composer} composer, {workers} worker(s)")
                    row = asyncio.run(replica_memory(ws, workers, texts, Path(tmp) / f"serve-{composer}-{workers}.log"))
                    replicas.append({"composer": composer, **row})
                    print(
                        f"replica {composer:9} workers={workers}: ready {row['ready']['rss_mb']} MB, after "
                        f"{TURNS} turns {row['after_turns']['rss_mb']} MB (peak {row['after_turns']['peak_mb']} MB)",
                        flush=True,
                    )
        result["replica"] = replicas
    if not args.skip_index:
        indexes = []
        with tempfile.TemporaryDirectory(prefix="csbot-mem-index-") as tmp:
            for kind in ("flat", "hnsw", "ivfpq"):
                log(f"index: building {kind} of {args.n:,} vectors")
                path = Path(tmp) / f"{kind}.faiss"
                build = [sys.executable, "-c", INDEX_BUILD_CHILD, str(REPO), kind, str(args.n), str(path)]
                subprocess.run(build, check=True)
                out = subprocess.run(
                    [sys.executable, "-c", INDEX_LOAD_CHILD, str(path)], check=True, capture_output=True, text=True
                )
                row = {"kind": kind, "n": args.n, **json.loads(out.stdout.strip().splitlines()[-1])}
                path.unlink()
                indexes.append(row)
                print(
                    f"index {kind:6} n={args.n:,}: +{row['index_rss_mb']} MB resident once loaded, "
                    f"{row['file_mb']} MB on disk",
                    flush=True,
                )
        text_len, reply_len = mean_lengths(args.workspace)
        out = subprocess.run(
            [sys.executable, "-c", UNITS_CHILD, str(REPO), str(args.n), str(text_len), str(reply_len)],
            check=True,
            capture_output=True,
            text=True,
        )
        units = {**json.loads(out.stdout.strip().splitlines()[-1]), "text_chars": text_len, "reply_chars": reply_len}
        print(f"unit table n={args.n:,} ({text_len}+{reply_len} chars each): +{units['units_rss_mb']} MB", flush=True)
        result["index"] = indexes
        result["units"] = units
    print(json.dumps(result))


if __name__ == "__main__":
    main()
