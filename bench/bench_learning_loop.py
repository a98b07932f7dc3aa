"""The learning loop, measured: does a round on more logged conversations beat the model
of a round on fewer, on the same held-out conversations?

    python bench/bench_learning_loop.py --minutes 3

1. `csbot build` a fresh demo workspace (retrieval only);
2. round 1: `csbot finetune round` on the first `--first-share` of data/conversations.jsonl,
   promoted whatever its score (`--min-gain -1`): the "model trained on less data";
3. round 2: `csbot finetune round` on all of them, same budget: scored against round 1's
   model on round 2's held-out pairs, promoted only if better (the normal rule).

Both rounds score on the fixed held-out set the demo ships (data/heldout.jsonl, never
trained on), so the comparison is on the same pairs. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CSBOT = Path(sys.executable).with_name("csbot")


def csbot(*args: str) -> dict:
    proc = subprocess.run([str(CSBOT), *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"csbot {' '.join(args)} failed ({proc.returncode})")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget of each round")
    parser.add_argument("--first-share", type=float, default=0.25, help="share of the conversations round 1 sees")
    parser.add_argument("--eval-limit", type=int, default=100)
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args()

    ws = args.workspace or Path(tempfile.mkdtemp(prefix="csbot-loop-")) / "ws"
    work = ws.parent
    lines = (REPO / "data" / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
    first = work / "logged-first.jsonl"
    first.write_text("\n".join(lines[: int(len(lines) * args.first_share)]) + "\n", encoding="utf-8")
    everything = work / "logged-all.jsonl"
    everything.write_text("\n".join(lines) + "\n", encoding="utf-8")

    print(f"building {ws}", file=sys.stderr)
    csbot("build", "--data", "data", "--workspace", str(ws))
    common = ["--workspace", str(ws), "--max-minutes", str(args.minutes), "--eval-limit", str(args.eval_limit)]
    print(f"round 1 on {first}", file=sys.stderr)
    r1 = csbot("finetune", "round", "--transcripts", str(first), "--min-gain", "-1", *common)
    print(f"round 2 on {everything}", file=sys.stderr)
    r2 = csbot("finetune", "round", "--transcripts", str(everything), *common)

    from bot.evaluation.heldout import retrieval_on_pairs

    # the pairs both rounds were scored on: the round's fixed held-out set
    held_path = ws / "finetune" / "rounds" / r2["round"] / "pairs" / "heldout.jsonl"
    held_out = [json.loads(line) for line in held_path.read_text(encoding="utf-8").splitlines() if line.strip()][
        : args.eval_limit
    ]
    result = {
        "minutes_per_round": args.minutes,
        "round1_pairs": r1["pairs"]["train"],
        "round2_pairs": r2["pairs"]["train"],
        "held_out_pairs": r2["held_out_pairs"],
        "round1_model_rougeL_f1": r2["current"]["rougeL_f1"],
        "round2_model_rougeL_f1": r2["candidate"]["rougeL_f1"],
        "retrieval_rougeL_f1": retrieval_on_pairs(held_out)["rougeL_f1"],
        "round1_fallback_rate": r2["current"]["fallback_rate"],
        "round2_fallback_rate": r2["candidate"]["fallback_rate"],
        "round2_promoted": r2["promoted"],
        "reason": r2["reason"],
        "workspace": str(ws),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
