"""Prompt lookup against one-token decoding: the same composer, model and turns, each turn's
candidates decoded both ways, the order alternating turn by turn.

    python bench/bench_prompt_lookup.py --model runs/bitext-r/final --pairs runs/bitext-r/pairs/valid.jsonl --lookup 4 8

For every pair (a turn of `finetune.pairs` JSON: context, evidence, target) the GPT-2
composer decodes the shipped candidates (`GPT2Composer.compose_with_candidates`, the
model's own decoding settings) with `GeneratorConfig.prompt_lookup` = 0, then with each
`--lookup K`. Per setting it reports the turn's time (p50 / p95 / mean, ms), the forward
passes of the decoder per turn, the tokens written, and against lookup 0: how many turns
sent the same reply, how many candidates came out identical, and ROUGE-L of the sent reply
against the pair's target (placeholders as text; a reply the guard refuses scores the
retrieval composer's fallback, as `bot.evaluation.heldout` does) with its paired bootstrap
95% interval. Use the run's validation pairs to choose K, never the test rows.

`--pass-widths W ...` first times one forward pass of the decoder alone (5 rows, 400
cached columns, random keys and values) feeding W tokens per row, against the one-token
pass of decoding without lookup: what a drafted position costs on this machine.

The last stdout line is JSON; `--out DIR` also keeps every turn's replies and timings
(samples.jsonl) beside it (summary.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--pairs", type=Path, required=True, help="finetune.pairs JSONL (a run's pairs/valid.jsonl)")
    ap.add_argument("--lookup", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--limit", type=int, default=None, help="the first N pairs only")
    ap.add_argument("--float32", action="store_true", help="decode in float32 (default: the shipped int8)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--pass-widths", type=int, nargs="*", default=[1, 2, 3, 5, 9])
    args = ap.parse_args()
    if any(k < 1 for k in args.lookup):
        ap.error("--lookup values must be at least 1 (0, one token a pass, is always the baseline)")
    if not (args.model / "config.json").is_file():
        ap.error(f"{args.model} holds no model (no config.json): pass a trained model's folder, e.g. runs/X/final")

    import dataclasses

    from rouge_score import rouge_scorer

    from bot.composers.generative import GPT2Composer
    from bot.composers.retrieval import RetrievalComposer
    from bot.domain import Domain
    from bot.evaluation.bootstrap import paired_bootstrap_ci
    from bot.evaluation.fallback import fallback_reply
    from bot.evaluation.heldout import request_from_pair
    from bot.settings import DialogueConfig
    from finetune.decoder import GeneratorConfig
    from finetune.guard import clean_generated_text

    if not args.pairs.is_file():
        ap.error(f"{args.pairs} is not a file: pass a run's pairs, e.g. runs/X/pairs/valid.jsonl")
    pairs = [json.loads(line) for line in args.pairs.open(encoding="utf-8") if line.strip()]
    pairs = pairs[: args.limit] if args.limit else pairs
    if not pairs:
        ap.error(f"{args.pairs} holds no pairs")
    dialogue, domain = DialogueConfig(), Domain()
    settings = [0, *args.lookup]
    base = GeneratorConfig(int8=not args.float32)
    composers = {
        k: GPT2Composer(
            args.model,
            dataclasses.replace(base, prompt_lookup=k),
            fallback=RetrievalComposer.from_config(dialogue, domain),
            company_facts=[],
            slot_questions=domain.slot_questions,
        ).load()
        for k in settings
    }
    passes = dict.fromkeys(settings, 0)
    for k, composer in composers.items():
        decoder = composer.generator.fast_decoder
        if decoder is None:
            ap.error("this model does not run on the fast decoder, which prompt lookup needs")
        forward = decoder._forward

        def counted(*a, _k=k, _forward=forward, **kw):
            passes[_k] += 1
            return _forward(*a, **kw)

        decoder._forward = counted  # type: ignore[method-assign]
    pass_ms = time_passes(composers[0].generator.fast_decoder, args.pass_widths) if args.pass_widths else {}
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    composers[0].compose_with_candidates(request_from_pair(pairs[0]))  # warm-up, not timed

    samples = []
    for n, pair in enumerate(pairs):
        request = request_from_pair(pair)
        order = settings if n % 2 == 0 else settings[::-1]
        row: dict = {"target": pair["target"], "by_lookup": {}}
        for k in order:
            before = passes[k]
            started = time.perf_counter()
            turn = composers[k].compose_with_candidates(request)
            ms = (time.perf_counter() - started) * 1000
            # what `csbot eval generation` sends: the chosen candidate if the guard passes
            # it (placeholders as text), else the retrieval composer's fallback
            final = None
            if turn.generated is not None:
                text = clean_generated_text(turn.generated.text, turn.generated.ended)
                conversation = [t["text"] for t in pair["context"]]
                evidence = [h.unit.evidence_text for h in composers[k].evidence_hits(request)]
                if composers[k].guard.check(text, conversation=conversation, evidence=evidence).ok:
                    final = text
            sent_by = "gpt2" if final is not None else "fallback"
            final = final if final is not None else fallback_reply(request, dialogue, domain)
            row["by_lookup"][str(k)] = {
                "ms": round(ms, 2),
                "passes": passes[k] - before,
                "tokens": sum(c.new_tokens for c in turn.candidates),
                "candidates": [c.text for c in turn.candidates],
                "sent": final,
                "composer": sent_by,
                "rougeL": scorer.score(pair["target"], final)["rougeL"].fmeasure,
            }
        samples.append(row)
        if (n + 1) % 10 == 0:
            print(f"{n + 1} of {len(pairs)} turns", flush=True)

    def pct(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[int(q) - 1], 1) if len(values) > 1 else values[0]

    summary: dict = {
        "model": str(args.model),
        "pairs": str(args.pairs),
        "n": len(samples),
        "int8": not args.float32,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "pass_ms": pass_ms,
        "by_lookup": {},
    }
    base_scores = [s["by_lookup"]["0"]["rougeL"] for s in samples]
    base_ms = statistics.fmean(s["by_lookup"]["0"]["ms"] for s in samples)
    for k in settings:
        rows = [s["by_lookup"][str(k)] for s in samples]
        ms = [r["ms"] for r in rows]
        scores = [r["rougeL"] for r in rows]
        entry = {
            "turn_ms_p50": pct(ms, 50),
            "turn_ms_p95": pct(ms, 95),
            "turn_ms_mean": round(statistics.fmean(ms), 1),
            "speedup_mean": round(base_ms / statistics.fmean(ms), 2),
            "passes_per_turn": round(statistics.fmean(r["passes"] for r in rows), 1),
            "tokens_per_turn": round(statistics.fmean(r["tokens"] for r in rows), 1),
            "rougeL_f1": round(statistics.fmean(scores), 4),
            "gpt2_sent": sum(r["composer"] == "gpt2" for r in rows),
        }
        if k:
            same = [s["by_lookup"][str(k)]["candidates"] == s["by_lookup"]["0"]["candidates"] for s in samples]
            entry["turns_same_candidates"] = sum(same)
            replies = [(s["by_lookup"][str(k)]["sent"], s["by_lookup"]["0"]["sent"]) for s in samples]
            entry["turns_same_reply"] = sum(a == b for a, b in replies)
            low, high = paired_bootstrap_ci(scores, base_scores)
            entry["gain_vs_lookup_0"] = round(statistics.fmean(scores) - statistics.fmean(base_scores), 4)
            entry["gain_ci"] = [round(low, 4), round(high, 4)]
        summary["by_lookup"][str(k)] = entry
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / "samples.jsonl").open("w", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps(s) + "\n")
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary))


def time_passes(decoder, widths: list[int], rows: int = 5, cached: int = 400, repeats: int = 300) -> dict[str, float]:
    """ms of one forward pass: "plain" (one token a row, as without lookup, a padding mask),
    and per width W the lookup pass (W tokens a row at each row's own columns)."""
    import torch

    def timed(run) -> float:
        for _ in range(20):
            run()
        started = time.perf_counter()
        for _ in range(repeats):
            run()
        return round((time.perf_counter() - started) / repeats * 1000, 3)

    generator = torch.Generator().manual_seed(0)
    shape = (rows, decoder.n_head, cached + max(widths) + 1, decoder.head_dim)
    keys = [torch.randn(shape, generator=generator) for _ in range(decoder.n_layer)]
    values = [torch.randn(shape, generator=generator) for _ in range(decoder.n_layer)]
    vocab = decoder.wte.shape[0]
    out: dict[str, float] = {}
    with torch.inference_mode():
        ids = torch.randint(0, vocab, (rows, 1), generator=generator)
        mask = torch.ones((rows, 1, 1, cached + 1), dtype=torch.bool)
        out["plain"] = timed(lambda: decoder._forward(ids, torch.full((rows, 1), 300), keys, values, cached, mask))
        for w in widths:
            ids = torch.randint(0, vocab, (rows, w), generator=generator)
            positions = 300 + torch.arange(w)[None].expand(rows, w)
            cols = (cached - w) + torch.arange(w)[None].expand(rows, w).contiguous()
            mask = torch.ones((rows, 1, w, cached), dtype=torch.bool)
            fed = (ids, positions, keys, values, cached, mask)
            out[f"width_{w}"] = timed(lambda fed=fed, cols=cols: decoder._forward(*fed, cols=cols))
    return out


if __name__ == "__main__":
    main()
