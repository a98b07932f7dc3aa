"""One turn at a time through the real `Assistant` of a workspace, timed by stage.

    python bench/bench_turn.py [--workspace .csbot] [--generator DIR] [--backends torch,auto]
                               [--turns 200] [--warmup 10] [--save]

The assistant is the workspace's own (`Assistant(CsbotSettings.from_env(copy)).load()`),
on a copy of the workspace with an empty store, so the run starts alike every time and
never writes into the workspace given. It composes with whatever the copy has promoted;
`--generator DIR` registers and promotes that GPT-2 model directory in the copy first
(`csbot models add` + `promote`: `runs/bitext-b/final`, or a model under
WORKSPACE/models/), so the shipped GPT-2 path is measured even while the workspace answers
with retrieval. Decoding settings are the environment's, as for `csbot serve`.

Turns: the customer messages of data/heldout.jsonl, each held-out conversation played in
order as a new conversation (slots, clarifications, actions and handoffs happen as in
production), cycled until --turns; --warmup turns of a throwaway conversation first.

Stages, timed from outside, by wrapping the loaded components' methods on their
instances (the production code is not changed): `encode` (the embedder's `encode`),
`search` (the index's `search`/`search_batch`: the intent-filtered, knowledge-base and
unfiltered searches of one turn together), `classify` (the intent classifier's
`predict`), `compose` (the composer's `compose`: the promoted GPT-2 with its guard and
fallback, or the retrieval composer; within it `decode`, the GPT-2's `generate`) and
`turn` (`DialogueManager.handle`, store reads and writes included); `other` is the turn
less encode, search, classify and compose (policy, store, masking).
Calls are counted per turn too: one turn should encode its text once.

With several `--backends` (EmbedderConfig.backend) one assistant per backend is loaded
(the same workspace copy, each its own conversations) and they take the turns in turn,
conversation by conversation, the order alternating, so that the load of other processes
falls on each alike. ("onnx-int8" has its own model id: the demo index, built with torch,
refuses it.)

Progress on stderr; the LAST stdout line is one JSON object (keys `turn.p95_ms`,
`encode_search.p95_ms`, `compose.p95_ms`, `composer`, ... of the first backend at top
level, every backend under `backends`); --save also writes it to bench/results/turn/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_memory import workspace_copy  # noqa: E402
from bench.bench_serve_load import log, save_result, summary  # noqa: E402

CSBOT = Path(sys.executable).with_name("csbot")
STAGES = ("encode", "search", "classify", "compose")


def heldout_conversations(data: Path) -> list[list[str]]:
    """The customer messages of each held-out conversation, in order."""
    conversations = []
    with (data / "heldout.jsonl").open(encoding="utf-8") as f:
        for line in f:
            turns = [t["text"] for t in json.loads(line)["turns"] if t["role"] == "customer"]
            if turns:
                conversations.append(turns)
    return conversations


class StageClock:
    """Milliseconds and calls per stage for the turn being run, filled by `wrap`."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.calls: Counter[str] = Counter()

    def reset(self) -> None:
        self.ms = dict.fromkeys((*STAGES, "decode"), 0.0)
        self.calls = Counter()

    def wrap(self, owner: object, method: str, stage: str) -> None:
        """Time `owner.method` under `stage`: the bound method is replaced on the instance,
        so every holder of `owner` (the dialogue manager, a composer) goes through it."""
        original: Callable[..., Any] = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.ms[stage] = self.ms.get(stage, 0.0) + (time.perf_counter() - started) * 1000
                self.calls[f"{stage}:{method}"] += 1

        setattr(owner, method, timed)


class TimedAssistant:
    """An assistant of the workspace copy with its components' stages on a clock."""

    def __init__(self, workspace: Path, backend: str):
        from bot.settings import CsbotSettings
        from bot.workspace import Assistant

        settings = CsbotSettings.from_env(workspace)
        settings = settings.model_copy(update={"embedder": replace(settings.embedder, backend=backend)})
        started = time.perf_counter()
        self.assistant = Assistant(settings).load()
        self.backend = backend
        self.model_id = self.assistant.embedder.model_id
        self.runs_on = self.assistant.embedder.backend  # what "auto" resolved to
        manager = self.assistant.manager
        self.clock = StageClock()
        # the instances themselves, whoever holds them
        self.clock.wrap(self.assistant.embedder, "encode", "encode")
        # `search` calls `search_batch`: wrapping the latter times every search once
        self.clock.wrap(self.assistant.index, "search_batch", "search")
        self.clock.wrap(self.assistant.classifier, "predict", "classify")
        self.clock.wrap(manager.composer, "compose", "compose")
        # inside compose: the promoted GPT-2's decoding (loaded with the assistant)
        generator = getattr(getattr(manager.composer, "current", None), "generator", None)
        self.decodes = generator is not None
        if generator is not None:
            self.clock.wrap(generator, "generate", "decode")
        self.rows: list[dict[str, Any]] = []
        self.load_s = round(time.perf_counter() - started, 1)

    def turn(self, text: str, conversation_id: str, record: bool = True) -> None:
        self.clock.reset()
        started = time.perf_counter()
        result = self.assistant.manager.handle(text, conversation_id, channel="web")
        turn_ms = (time.perf_counter() - started) * 1000
        if not record:
            return
        ms = dict(self.clock.ms)
        self.rows.append(
            {
                "turn": turn_ms,
                **ms,
                "encode_search": ms["encode"] + ms["search"],
                "other": turn_ms - sum(ms[s] for s in STAGES),
                "calls": dict(self.clock.calls),
                "composer": result.composer,
                "action": result.action,
            }
        )

    def start_conversation(self) -> str:
        return self.assistant.manager.start_conversation(channel="web")

    def close(self) -> None:
        self.assistant.close()


# the call that says a stage ran in a turn
_STAGE_CALL = {
    "encode": "encode:encode",
    "encode_search": "encode:encode",
    "search": "search:search_batch",
    "classify": "classify:predict",
    "compose": "compose:compose",
    "decode": "decode:generate",
}


def stage_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95 per stage over the turns that ran it (every turn for `turn` and `other`),
    the calls per turn, the composers and actions."""
    out: dict[str, Any] = {}
    for stage in ("turn", "encode_search", *STAGES, "decode", "other"):
        call = _STAGE_CALL.get(stage)
        values = [r[stage] for r in rows if call is None or r["calls"].get(call, 0)]
        # a stage no turn ran (decode without a GPT-2): None, not NaN, in the JSON
        out[stage] = summary(values) if values else {"n": 0, "p50_ms": None, "p95_ms": None}
    composed = [r for r in rows if r["calls"].get("compose:compose")]
    out["compose_by_composer"] = {
        name: summary([r["compose"] for r in composed if r["composer"] == name])
        for name in sorted({r["composer"] for r in composed})
    }
    calls: Counter[str] = Counter()
    for r in rows:
        calls.update(r["calls"])
    out["calls_per_turn"] = {k: round(v / len(rows), 3) for k, v in sorted(calls.items())}
    out["max_encode_calls_in_a_turn"] = max(r["calls"].get("encode:encode", 0) for r in rows)
    out["composers"] = dict(Counter(r["composer"] for r in rows))
    out["actions"] = dict(Counter(r["action"] for r in rows))
    return out


def machine() -> dict[str, Any]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def run(args: argparse.Namespace, workspace: Path, load_before: float) -> dict[str, Any]:
    from bench.bench_serve_load import promoted_model

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    assistants = []
    for backend in backends:
        log(f"loading the assistant with the {backend} embedder")
        assistants.append(TimedAssistant(workspace, backend))
        log(f"{backend}: loaded in {assistants[-1].load_s} s ({assistants[-1].model_id})")
    conversations = heldout_conversations(args.data)
    warm_texts = [t for c in conversations for t in c][: args.warmup]
    for a in assistants:
        warm = a.start_conversation()
        for text in warm_texts:
            a.turn(text, warm, record=False)
    log(f"{args.turns} turns per backend from {len(conversations)} held-out conversations")
    done, index = 0, 0
    while done < args.turns:
        texts = conversations[index % len(conversations)][: args.turns - done]
        order = assistants if index % 2 == 0 else assistants[::-1]
        for a in order:
            conversation_id = a.start_conversation()
            for text in texts:
                a.turn(text, conversation_id)
        done += len(texts)
        index += 1
        if index % 10 == 0:
            log(f"{done}/{args.turns} turns")
    promoted = promoted_model(workspace)
    per_backend = {
        a.backend: {"model_id": a.model_id, "runs_on": a.runs_on, "load_s": a.load_s, **stage_summary(a.rows)}
        for a in assistants
    }
    for a in assistants:
        a.close()
    first = per_backend[backends[0]]
    result: dict[str, Any] = {
        "bench": "turn",
        "turns": args.turns,
        "promoted_model": promoted,
        "generator": str(args.generator) if args.generator else None,
        # what composes the turns that reach a composer: the promoted GPT-2 (retrieval its
        # fallback) or the retrieval composer; `backends.*.composers` says who answered each turn
        "composer": "gpt2" if promoted else "retrieval",
        "backend": backends[0],
        **{
            f"{stage}.{q}": first[stage][q]
            for stage in ("turn", "encode_search", "compose", "decode")
            for q in ("p50_ms", "p95_ms")
        },
        "backends": per_backend,
        "machine": {**machine(), "load_1min": round(load_before, 2)},
    }
    if len(backends) > 1:
        base = per_backend[backends[0]]
        result["ratios_vs_first"] = {
            b: {
                f"{stage}.{q}": round(per_backend[b][stage][f"{q}_ms"] / base[stage][f"{q}_ms"], 3)
                for stage in ("turn", "encode", "encode_search", "compose")
                for q in ("p50", "p95")
                if base[stage][f"{q}_ms"] and per_backend[b][stage][f"{q}_ms"] is not None
            }
            for b in backends[1:]
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, default=REPO / ".csbot")
    ap.add_argument("--data", type=Path, default=REPO / "data")
    ap.add_argument("--generator", type=Path, default=None, help="a GPT-2 model directory to promote in the copy")
    ap.add_argument("--backends", default="auto", help="embedder backends, comma-separated [auto: the default]")
    ap.add_argument("--turns", type=int, default=200, help="measured turns per backend")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--save", action="store_true", help="also write the JSON to bench/results/turn/")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    if not (args.workspace / "workspace.json").is_file():
        log(f"building {args.workspace} from {args.data}")
        subprocess.run([str(CSBOT), "build", "--data", str(args.data), "--workspace", str(args.workspace)], check=True)
    load_before = os.getloadavg()[0]
    log(f"load average {load_before:.2f}")
    with tempfile.TemporaryDirectory(prefix="csbot-turn-") as tmp:
        # the workspace's own models stay when no generator is given: what it has promoted answers
        workspace = workspace_copy(args.workspace, Path(tmp) / "ws", args.generator, keep_models=True)
        if args.generator is not None:
            log(f"promoted {args.generator} in the copy")
        result = run(args, workspace, load_before)
    result["machine"]["load_1min_after"] = round(os.getloadavg()[0], 2)
    for backend, row in result["backends"].items():
        stages = ", ".join(
            f"{s} {row[s]['p50_ms']}/{row[s]['p95_ms']}" for s in ("turn", "encode_search", *STAGES, "decode", "other")
        )
        print(f"{backend:9} p50/p95 ms: {stages}", flush=True)
        print(f"{backend:9} composers {row['composers']}; calls per turn {row['calls_per_turn']}", flush=True)
    if args.save:
        save_result(result, "turn")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
