"""What a decoding step costs as more turns decode together (`finetune.decoding.DecodingSlots`).

    python bench/bench_decoding_slots.py [--model runs/bitext-r/final] [--threads 1]
                                         [--turns 1 3 4] [--candidates 5] [--tokens 80]

One Bitext-shaped prompt (a question and a knowledge passage) planned as the GPT-2
generator plans a turn (`GPT2Generator.plan`: its token rules, int8 as configured), its
`--candidates` rows added `--turns` times to one set of slots, then stepped until every row
has written `--tokens` tokens (the end token is never chosen, so every turn runs the same
number of steps). Reports, per number of turns, the time of one turn's prompt pass and of
one step; and `GPT2Decoder.generate` over one turn's rows alone for comparison. Timings are
the best of `--repeats` runs. Progress on stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPT = (
    "<|customer|> I want to cancel my order, it has not shipped yet and I need a refund of $49.99 <|knowledge|> "
    + "To cancel an order open Account > Orders and choose Cancel while it is still processing; "
    "refunds take 5-7 business days. " * 8 + "<|response|>"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "runs" / "bitext-r" / "final")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--turns", type=int, nargs="+", default=[1, 3, 4])
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (args.model / "config.json").is_file():
        raise SystemExit(f"no GPT-2 model in {args.model}: train one (csbot finetune train) or pass --model")

    import torch

    from finetune.decoder import GeneratorConfig, GPT2Generator
    from finetune.decoding import DecodingSlots

    torch.set_num_threads(args.threads)
    generator = GPT2Generator(args.model, GeneratorConfig(torch_threads=args.threads)).load()
    decoder = generator.fast_decoder
    if decoder is None:
        raise SystemExit(f"{args.model}: the fast decoder does not run this model")
    plan = generator.plan([PROMPT] * args.candidates)
    never = -1  # no token has this id: every row decodes --tokens tokens
    print(f"• {len(plan.ids[0])} prompt tokens, {args.candidates} rows a turn, int8 {decoder.int8}", file=sys.stderr)

    def timed_slots(turns: int) -> tuple[float, float]:
        slots = DecodingSlots(decoder, rows=turns * args.candidates)
        started = time.perf_counter()
        for _ in range(turns):
            slots.add(plan.ids, max_new_tokens=args.tokens, eos_id=never, sampling=plan.sampling)
        added = time.perf_counter()
        steps = 0
        while slots.calls:
            slots.step()
            steps += 1
        done = time.perf_counter()
        return (added - started) * 1000 / turns, (done - added) * 1000 / steps

    rows = []
    for turns in args.turns:
        best = min((timed_slots(turns) for _ in range(args.repeats)), key=lambda t: t[1])
        rows.append(
            {
                "turns": turns,
                "rows": turns * args.candidates,
                "pass_ms": round(best[0], 1),
                "step_ms": round(best[1], 2),
            }
        )
        print(f"• {turns} turn(s): a turn's pass {best[0]:.1f} ms, a step {best[1]:.2f} ms", file=sys.stderr)

    def timed_generate() -> float:
        started, steps = time.perf_counter(), 0
        for _ in decoder.generate(plan.ids, max_new_tokens=args.tokens, eos_id=never, sampling=plan.sampling):
            steps += 1
        return (time.perf_counter() - started) * 1000 / steps

    alone = min(timed_generate() for _ in range(args.repeats))
    print(f"• generate, one turn alone: {alone:.2f} ms a step (its pass included)", file=sys.stderr)
    print(
        json.dumps(
            {
                "bench": "decoding_slots",
                "model": str(args.model),
                "threads": args.threads,
                "prompt_tokens": len(plan.ids[0]),
                "candidates": args.candidates,
                "int8": decoder.int8,
                "slots": rows,
                "generate_alone_step_ms": round(alone, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
