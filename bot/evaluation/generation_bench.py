"""`csbot bench generation`: how fast the GPT-2 composer's decoder writes, against the
Hugging Face pipeline on the same model and prompts.

The prompts are the composer's own (`GPT2Composer.build_prompt`) for demo conversations or
validation pairs. Greedy, every reply forced to exactly `max_new_tokens` tokens
(`min_new_tokens` on both sides), text in and text out on both sides: our decoder
(`finetune.decoding.GPT2Decoder`, what the composer runs) against
`transformers.pipeline("text-generation")`, one prompt at a time, one warm-up call each
excluded from the timings. `speedup` compares those; `first_token_ms_*` time each prompt's
first token on our side (the prompt's forward pass). `batched_*` decode all the prompts as
one batch on our side, as concurrent turns would be. `identical_outputs` counts prompts
where both sides produced the same tokens (greedy: all of them, unless float ties differ).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, cast

from bot.composers.generative import GPT2Composer
from bot.composers.retrieval import RetrievalComposer
from bot.contracts import ComposeRequest, Role, Slots
from bot.domain import Domain
from bot.errors import CsbotError
from bot.evaluation.common import machine_info, percentile
from finetune.decoder import GeneratorConfig
from retrieval.progress import Progress, no_progress
from retrieval.types import Hit, Unit

Context = tuple[list[dict[str, str]], list[str]]  # (turns up to a customer turn, evidence texts)


def _demo_contexts(data_dir: Path, n: int) -> list[Context]:
    """(context up to a customer turn, evidence texts) from demo conversations: the context
    ends before each conversation's first agent reply; the evidence is the first agent
    replies of the next three conversations (any grounded-looking text does for timing)."""
    path = data_dir / "conversations.jsonl"
    if not path.is_file():
        raise CsbotError(f"{path} does not exist; pass --pairs DIR (with valid.jsonl) or --data DIR")
    convs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    firsts = []
    for c in convs:
        turns = c.get("turns", [])
        i = next((j for j, t in enumerate(turns) if t.get("role") == "agent" and j > 0), None)
        if i is not None and turns[i - 1].get("role") == "customer":
            firsts.append(([{"role": t["role"], "text": t["text"]} for t in turns[:i]], turns[i]["text"]))
    out = []
    for j, (context, _) in enumerate(firsts[:n]):
        evidence = [firsts[(j + d) % len(firsts)][1] for d in (1, 2, 3)]
        out.append((context, evidence))
    return out


def _pair_contexts(pairs_dir: Path, n: int) -> list[Context]:
    path = pairs_dir / "valid.jsonl" if pairs_dir.is_dir() else pairs_dir
    if not path.is_file():
        raise CsbotError(f"{path} does not exist; pass the directory `csbot finetune pairs` wrote")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        p = json.loads(line)
        ev = [e["text"] if isinstance(e, dict) else str(e) for e in p.get("evidence", [])]
        if p.get("context"):
            out.append((list(p["context"]), ev))
        if len(out) == n:
            break
    return out


def bench_generation(
    model_dir: Path,
    *,
    prompts: int = 8,
    pairs: Path | None = None,
    data_dir: Path = Path("data"),
    max_new_tokens: int = 48,
    int8: bool = True,
    progress: Progress = no_progress,
) -> dict[str, Any]:

    if prompts < 1:
        raise CsbotError(f"--prompts must be at least 1; got {prompts}")
    contexts = _pair_contexts(pairs, prompts) if pairs is not None else _demo_contexts(data_dir, prompts)
    if not contexts:
        raise CsbotError("no prompts to benchmark: the source has no usable contexts")
    domain = Domain()
    composer = GPT2Composer(
        model_dir,
        GeneratorConfig(decoding="greedy", max_new_tokens=max_new_tokens, int8=int8),
        fallback=RetrievalComposer(0.5, domain.slot_questions, domain.unsure_message),
        company_facts=[],
        slot_questions=domain.slot_questions,
    ).load()
    texts = []
    for context, evidence in contexts:
        *history, last = context
        hits = tuple(Hit(Unit(id=f"ev{i}", kind="qa", text="", reply=e), 1.0) for i, e in enumerate(evidence))
        request = ComposeRequest(
            text=last["text"],
            intent="",
            hits=hits,
            slots=Slots({}),
            # the transcripts' and pairs' roles are the store's (`Role`), as in bot.evaluation.heldout
            history=tuple((cast(Role, "bot" if t["role"] == "agent" else t["role"]), t["text"]) for t in history),
        )
        texts.append(composer.build_prompt(request, composer.evidence_hits(request)))

    import torch
    from transformers import pipeline

    model, tok = composer.generator.model, composer.generator.tokenizer
    assert model is not None and tok is not None  # GPT2Composer.load() loaded them
    eos_id = tok.eos_token_id
    assert isinstance(eos_id, int)  # the generator's loader checked it is <|endofreply|>
    # both sides generate exactly max_new_tokens tokens: <|endofreply|> is held back until then
    model.generation_config.min_new_tokens = max_new_tokens
    # transformers' stub names only its concrete tokenizer classes; any PreTrainedTokenizerBase works
    pipe = pipeline("text-generation", model=model, tokenizer=tok, device=-1)  # type: ignore[call-overload]
    pipe_kw = {
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "return_tensors": True,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": eos_id,
    }

    decoder = composer.generator.fast_decoder
    if decoder is None:
        raise CsbotError(
            f"{model_dir}: this GPT-2 variant runs on model.generate, not the fast decoder; there is nothing to compare"
        )

    def ours(batch: list[str]) -> tuple[float, list[list[int]], float]:
        """Text in, text out, like the pipeline: tokenise, decode the batch, detokenise."""
        t0 = time.perf_counter()
        ids = [tok.encode(p, add_special_tokens=False) for p in batch]
        rows: list[list[int]] = [[] for _ in batch]
        first = None
        for step in decoder.generate(ids, max_new_tokens=max_new_tokens, eos_id=eos_id, min_new_tokens=max_new_tokens):
            if first is None:
                first = (time.perf_counter() - t0) * 1000
            for row, t in zip(rows, step, strict=True):
                if t is not None:
                    row.append(t)
        [tok.decode(r, skip_special_tokens=True) for r in rows]
        assert first is not None  # GeneratorConfig checked max_new_tokens >= 1: at least one step
        return time.perf_counter() - t0, rows, first

    def baseline(prompt: str) -> tuple[float, list[int]]:
        t0 = time.perf_counter()
        ids = pipe(prompt, **pipe_kw)[0]["generated_token_ids"]  # the prompt's ids, then the new ones
        dt = time.perf_counter() - t0
        return dt, ids[len(tok(prompt)["input_ids"]) :]

    progress(
        f"warming up, then {len(texts)} prompts × {max_new_tokens} tokens: one at a time on each "
        f"side, then all {len(texts)} in one batch on ours"
    )
    ours(texts[:1])
    baseline(texts[0])
    our_s = base_s = 0.0
    our_tokens = base_tokens = 0
    firsts: list[float] = []
    same = 0
    with torch.inference_mode():
        for prompt in texts:
            dt, (row,), first = ours([prompt])
            our_s += dt
            our_tokens += len(row)
            firsts.append(first)
            dt, base_row = baseline(prompt)
            base_s += dt
            base_tokens += len(base_row)
            same += row == base_row
        batch_s, batch_rows, batch_first = ours(texts)
    batch_tokens = sum(len(r) for r in batch_rows)
    if our_tokens != base_tokens:
        raise CsbotError(f"the two sides generated different numbers of tokens ({our_tokens} vs {base_tokens})")
    tps, base_tps = our_tokens / our_s, base_tokens / base_s
    return {
        "tokens_per_s": round(tps, 1),
        "baseline_tokens_per_s": round(base_tps, 1),
        "speedup": round(tps / base_tps, 2),
        # the same prompts arriving together and decoded as one batch (concurrent turns)
        "batched_tokens_per_s": round(batch_tokens / batch_s, 1),
        "batched_speedup": round(batch_tokens / batch_s / base_tps, 2),
        "batched_first_token_ms": round(batch_first, 2),
        # greedy on both sides: in float32 the same tokens, or the fast path would be wrong,
        # not fast; with int8 weights the logits move a little and some replies may differ
        "identical_outputs": same,
        "int8": decoder.int8,
        "first_token_ms_p50": round(statistics.median(firsts), 2) if firsts else None,
        "first_token_ms_p95": round(percentile(firsts, 95), 2) if firsts else None,
        "n": len(texts),
        "max_new_tokens": max_new_tokens,
        "prompt_tokens_mean": round(statistics.fmean(len(tok.encode(t, add_special_tokens=False)) for t in texts), 1),
        "model": str(model_dir),
        "machine": machine_info(),
    }
