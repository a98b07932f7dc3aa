"""`csbot eval generation` and `csbot bench generation`: what the GPT-2 composer writes, and
how fast it writes it.

eval generation (Bitext-style CSVs): CORPUS's rows become instruction -> response units
(through `retrieval.importers.load_import(path, "bitext")`, as `csbot eval retrieval` does),
embedded with the real MiniLM in one batched encode and indexed with `VectorIndex.build`.
For each of the first `limit` rows of TEST, the masked question retrieves the top k units
(`index.search`), a `ComposeRequest` (the question, the row's intent, no history, the hits,
no slots) goes to `GPT2Composer.compose` (the live path: evidence selection, prompt,
generation), and:

- the *generated* reply is the model's text before the guard (whitespace normalised, cut
  back to its last sentence when it hit max_new_tokens, as the composer does);
- the *final* reply is the generated one when the composer's own `GroundingGuard` lets it
  through, else the fallback's: `RetrievalComposer`'s best candidate (its `prefer_intent`
  order over the hits at or above its `answer_min_score`), or its unsure message when none
  qualifies;
- placeholders are text on both sides: Bitext references contain `{{Order Number}}`,
  `{{Online Company Portal Info}}` ..., and so do the units; nothing is filled (there are no
  slots), and a placeholder is neither a reason to fall back nor an entity. rouge-score's
  tokenizer lowercases and keeps letters and digits only, so `{{Order Number}}` is scored as
  the words "order number" in reply and reference alike.

Keys: `rougeL_f1` (final replies vs TEST's reference responses, rouge-score's ROUGE-L
F-measure, mean), `retrieval_only_rougeL_f1` (the top hit's response vs the reference, same
rows), `hallucinated_entity_rate` (share of generated replies naming an entity, per
`finetune.guard.extract_entities`, that is in neither the question nor the evidence: the guard's
own entity check with no company facts), `grounded_share` (mean `finetune.guard.overlap` of the
generated replies with the question and the evidence), `fallback_rate` (share of rows whose
final reply is the fallback's: guard rejected, no evidence, or generation failed),
`tokens_per_s` (generated tokens / generation seconds, from `GPT2Composer.last_stats`), `n`.
`live_fallback_rate` is the share the live composer itself fell back on, which also rejects
replies with placeholders that no slot fills (with no slots, nearly every Bitext reply).

bench generation: the same model and prompts (`GPT2Composer.build_prompt`), greedy, every
reply forced to exactly `max_new_tokens` tokens (`min_new_tokens` on both sides), text in and
text out on both sides: our decoder (`finetune.decoding.GPT2Decoder`, what the composer runs)
against `transformers.pipeline("text-generation")`, one prompt at a time, one warm-up call
each excluded from the timings. `speedup` compares those. `batched_*` decode all the prompts
as one batch on our side, as concurrent turns would be. `identical_outputs` counts prompts
where both sides produced the same tokens (greedy: all of them, unless float ties differ).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bot.config import CsbotConfig
from bot.errors import CsbotError
from bot.evaluation.intents_and_retrieval import Progress, _load_embedder, _percentile, _quiet
from retrieval.entities import mask_entities


def _machine() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def evaluate_generation(
    config: CsbotConfig,
    model_dir: Path,
    corpus_csv: Path,
    test_csv: Path,
    *,
    limit: int | None = None,
    k: int | None = None,
    max_new_tokens: int | None = None,
    min_overlap: float | None = None,
    decoding: str = "greedy",
    repetition_penalty: float = 1.0,
    seed: int = 0,
    candidates: int = 3,
    int8: bool = True,
    report_dir: Path | None = None,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    from rouge_score import rouge_scorer
    from tqdm import tqdm

    from bot.composers.generative import GeneratorConfig, GPT2Composer, clean_generated_text
    from bot.composers.retrieval import RetrievalComposer, prefer_intent
    from bot.contracts import ComposeRequest, Slots
    from bot.domain import Domain
    from finetune.guard import GroundingGuard, overlap
    from retrieval.importers import load_import
    from retrieval.index import VectorIndex

    if limit is not None and limit < 1:
        raise CsbotError(f"--limit must be at least 1; got {limit}")
    k = k or config.dialogue.retrieval_k
    domain = Domain()
    fallback = RetrievalComposer.from_config(config.dialogue, domain)
    composer = GPT2Composer(
        model_dir,
        GeneratorConfig(
            max_new_tokens=max_new_tokens,
            min_overlap=min_overlap,
            decoding=decoding,
            repetition_penalty=repetition_penalty,
            seed=seed,
            candidates=candidates,
            int8=int8,
        ),
        fallback=fallback,
        company_facts=[],
        slot_questions=domain.slot_questions,
    )
    composer.load()  # a bad model directory fails before the minute of embedding
    max_new_tokens, min_overlap = composer.config.max_new_tokens, composer.config.min_overlap

    corpus = load_import(corpus_csv, "bitext")
    rows = [(u.text, u.intent or "", u.reply) for u in load_import(test_csv, "bitext").units]
    if limit is not None:
        rows = rows[:limit]
    if not corpus.units or not rows:
        raise CsbotError(
            f"nothing to evaluate: {len(corpus.units)} corpus rows in {corpus_csv}, {len(rows)} test rows in {test_csv}"
        )
    embedder = _load_embedder(config)
    progress(f"embedding {len(corpus.units)} corpus units and {len(rows)} test questions")
    vectors = embedder.encode([u.text for u in corpus.units], progress=True)
    index = VectorIndex.build(corpus.units, vectors, embedder_id=embedder.model_id, config=config.index)
    queries = embedder.encode([mask_entities(q)[0] for q, _, _ in rows])
    if composer.config.torch_threads:  # the embedder set its own thread count; generate as the live bot does
        import torch

        torch.set_num_threads(composer.config.torch_threads)

    # the text the composer generated for the current turn, caught on its way to the guard
    caught: dict[str, Any] = {}
    finish = composer._finish

    def spy(request, generated_text, hits, *, ended=True):
        caught.update(text=generated_text, ended=ended, stats=dict(composer.last_stats))
        return finish(request, generated_text, hits, ended=ended)

    composer._finish = spy  # type: ignore[method-assign]
    entity_guard = GroundingGuard([], 0.0)
    scorer = rouge_scorer.RougeScorer(["rougeL"])

    progress(f"generating {len(rows)} replies")
    final_scores, retrieval_scores, grounded, samples = [], [], [], []
    hallucinated = generated_n = fallbacks = live_fallbacks = new_tokens = 0
    gen_seconds = 0.0
    for (question, intent, reference), q in tqdm(
        list(zip(rows, queries)), desc="eval generation", file=sys.stderr, unit="row"
    ):
        hits = tuple(index.search(q, k=k))
        request = ComposeRequest(text=question, intent=intent, history=(), hits=hits, slots=Slots({}))
        caught.clear()
        live = composer.compose(request)
        live_fallbacks += live.composer != composer.name
        evidence = [h.unit.evidence_text for h in composer.evidence_hits(request)]
        generated = verdict = None
        if caught:
            generated_n += 1
            stats = caught["stats"]
            new_tokens += int(stats.get("new_tokens") or 0)
            gen_seconds += float(stats.get("total_ms") or 0.0) / 1000
            generated = clean_generated_text(caught["text"], caught["ended"])
            hallucinated += entity_guard.check(generated, conversation=[question], evidence=evidence).rule == "entity"
            grounded.append(overlap(generated, [question, *evidence]))
            verdict = composer.guard.check(generated, conversation=[question], evidence=evidence)
        if verdict is not None and verdict.ok:
            final = generated
        else:
            fallbacks += 1
            ranked = prefer_intent(hits, intent, fallback.min_score)
            final = ranked[0].unit.evidence_text if ranked else domain.unsure_message
        top = hits[0].unit.evidence_text if hits else ""
        final_scores.append(scorer.score(reference, final)["rougeL"].fmeasure)
        retrieval_scores.append(scorer.score(reference, top)["rougeL"].fmeasure)
        if report_dir is not None:
            samples.append(
                {
                    "question": question,
                    "intent": intent,
                    "reference": reference,
                    "generated": generated,
                    "final": final,
                    "fallback": not (verdict is not None and verdict.ok),
                    "guard": None if verdict is None else verdict.reason,
                    "live_composer": live.composer,
                    "top_retrieved": top,
                    "retrieved": [h.unit.evidence_text for h in hits[:3]],
                    "rougeL_f1": round(final_scores[-1], 4),
                }
            )
    n = len(rows)
    result: dict[str, Any] = {
        "rougeL_f1": round(statistics.fmean(final_scores), 4),
        "retrieval_only_rougeL_f1": round(statistics.fmean(retrieval_scores), 4),
        "hallucinated_entity_rate": round(hallucinated / generated_n, 4) if generated_n else 0.0,
        "grounded_share": round(statistics.fmean(grounded), 4) if grounded else 0.0,
        "fallback_rate": round(fallbacks / n, 4),
        "live_fallback_rate": round(live_fallbacks / n, 4),
        "tokens_per_s": round(new_tokens / gen_seconds, 1) if gen_seconds > 0 else 0.0,
        "n": n,
        "n_generated": generated_n,
        "n_corpus": len(corpus.units),
        "k": k,
        "max_new_tokens": max_new_tokens,
        "min_overlap": min_overlap,
        "decoding": decoding,
        "repetition_penalty": repetition_penalty,
        "seed": seed,
        "candidates": composer.config.candidates if composer._selects() else 1,
        "int8": bool(composer._decoder() and composer._decoder().int8),
        "model": str(model_dir),
        "machine": _machine(),
    }
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        with (report_dir / "samples.jsonl").open("w", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps(s, ensure_ascii=False) + "\n")
    return result


# -- bench generation ------------------------------------------------------------------------
def _demo_contexts(data_dir: Path, n: int) -> list[tuple[list[dict[str, str]], list[str]]]:
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


def _pair_contexts(pairs_dir: Path, n: int) -> list[tuple[list[dict[str, str]], list[str]]]:
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
    progress: Progress = _quiet,
) -> dict[str, Any]:
    from bot.composers.generative import GeneratorConfig, GPT2Composer
    from bot.composers.retrieval import RetrievalComposer
    from bot.contracts import ComposeRequest, Slots
    from bot.domain import Domain
    from retrieval.types import Hit, Unit

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
            history=tuple(("bot" if t["role"] == "agent" else t["role"], t["text"]) for t in history),
        )
        texts.append(composer.build_prompt(request, composer.evidence_hits(request)))

    import torch
    from transformers import pipeline

    model, tok = composer.model, composer.tokenizer
    # both sides generate exactly max_new_tokens tokens: <|endofreply|> is held back until then
    model.generation_config.min_new_tokens = max_new_tokens
    pipe = pipeline("text-generation", model=model, tokenizer=tok, device=-1)
    pipe_kw = {
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "return_tensors": True,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
    }

    decoder = composer._decoder()
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
        for step in decoder.generate(
            ids, max_new_tokens=max_new_tokens, eos_id=tok.eos_token_id, min_new_tokens=max_new_tokens
        ):
            if first is None:
                first = (time.perf_counter() - t0) * 1000
            for row, t in zip(rows, step):
                if t is not None:
                    row.append(t)
        [tok.decode(r, skip_special_tokens=True) for r in rows]
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
        "first_token_ms_p95": round(_percentile(firsts, 95), 2) if firsts else None,
        "n": len(texts),
        "max_new_tokens": max_new_tokens,
        "prompt_tokens_mean": round(statistics.fmean(len(tok.encode(t, add_special_tokens=False)) for t in texts), 1),
        "model": str(model_dir),
        "machine": _machine(),
    }


# -- on validation pairs (the learning loop's held-out set) ---------------------------------------
def retrieval_on_pairs(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The same figures for the retrieval composer alone: the top evidence is the reply."""
    from rouge_score import rouge_scorer

    from bot.domain import Domain

    if not pairs:
        raise CsbotError("no validation pairs to evaluate on; build pairs with a validation share")
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    unsure = Domain().unsure_message
    scores = [
        scorer.score(p["target"], p["evidence"][0]["text"] if p.get("evidence") else unsure)["rougeL"].fmeasure
        for p in pairs
    ]
    return {
        "rougeL_f1": round(statistics.fmean(scores), 4),
        "fallback_rate": 1.0,
        "hallucinated_entity_rate": 0.0,
        "grounded_share": 1.0,
        "n": len(pairs),
    }


def evaluate_on_pairs(
    model_dir: Path, pairs: list[dict[str, Any]], *, batch_size: int = 8, progress: Progress = _quiet
) -> dict[str, Any]:
    """How a generator does on held-out pairs (`finetune.pairs` JSON objects): each pair's
    context and evidence make the prompt, the reply is generated (greedy, batched), the
    guard decides, and the final reply (the generated one, or the top evidence when the
    guard rejects it, as the retrieval composer would answer) is scored against the pair's
    target with ROUGE-L. Placeholders are text on both sides, as in `evaluate_generation`.

    Keys: rougeL_f1, fallback_rate, hallucinated_entity_rate, grounded_share, n.
    """
    from rouge_score import rouge_scorer

    from bot.composers.generative import GeneratorConfig, GPT2Composer, clean_generated_text
    from bot.composers.retrieval import RetrievalComposer
    from bot.contracts import ComposeRequest, Slots
    from bot.domain import Domain
    from finetune.guard import GroundingGuard, overlap
    from retrieval.types import Hit, Unit

    if not pairs:
        raise CsbotError("no validation pairs to evaluate on; build pairs with a validation share")
    domain = Domain()
    composer = GPT2Composer(
        model_dir,
        GeneratorConfig(decoding="greedy"),
        fallback=RetrievalComposer(0.0, domain.slot_questions, domain.unsure_message),
        company_facts=[],
        slot_questions=domain.slot_questions,
    ).load()
    items = []
    for p in pairs:
        *history, last = p["context"]
        hits = tuple(
            Hit(Unit(id=e.get("id", f"ev{i}"), kind="qa", text="", reply=e["text"]), float(e.get("score", 1.0)))
            for i, e in enumerate(p.get("evidence", []))
        )
        request = ComposeRequest(
            text=last["text"],
            intent="",
            hits=hits,
            slots=Slots({}),
            history=tuple(("bot" if t["role"] == "agent" else t["role"], t["text"]) for t in history),
        )
        used = composer.evidence_hits(request)
        items.append(
            (
                p,
                [t["text"] for t in p["context"]],
                [h.unit.evidence_text for h in used],
                composer.build_prompt(request, used) if used else None,
            )
        )
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    entity_guard = GroundingGuard([], 0.0)
    scores, grounded = [], []
    fallbacks = hallucinated = 0
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        progress(f"{model_dir}: pairs {start + 1}-{start + len(chunk)} of {len(items)}")
        prompts = [prompt for *_, prompt in chunk if prompt is not None]
        generated = iter(composer.generate_batch(prompts) if prompts else [])
        for pair, conversation, evidence, prompt in chunk:
            final = None
            if prompt is not None:
                g = next(generated)
                text = clean_generated_text(g.text, g.ended)
                hallucinated += entity_guard.check(text, conversation=conversation, evidence=evidence).rule == "entity"
                grounded.append(overlap(text, [*conversation, *evidence]))
                if composer.guard.check(text, conversation=conversation, evidence=evidence).ok:
                    final = text
            if final is None:
                fallbacks += 1
                final = evidence[0] if evidence else domain.unsure_message
            scores.append(scorer.score(pair["target"], final)["rougeL"].fmeasure)
    n = len(items)
    return {
        "rougeL_f1": round(statistics.fmean(scores), 4),
        "fallback_rate": round(fallbacks / n, 4),
        "hallucinated_entity_rate": round(hallucinated / len(grounded), 4) if grounded else 0.0,
        "grounded_share": round(statistics.fmean(grounded), 4) if grounded else 0.0,
        "n": n,
    }
