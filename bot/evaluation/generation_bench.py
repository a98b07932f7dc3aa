"""`csbot bench generation`: how fast the GPT-2 composer writes, like with like against the
Hugging Face pipeline on the same model and prompts, and how long the reply the product sends
takes end to end.

Prompts (`prompts_from`): "demo" (the demo conversations in `--data`: each context ends
before a conversation's first agent reply, the evidence is the first agent replies of the
next three conversations) or "pairs" (`--pairs`: the `valid.jsonl` of `csbot finetune pairs`
or of a run's `pairs/`, each pair's context and evidence). Either way the text decoded is the
composer's own prompt (`GPT2Composer.build_prompt`) for that turn.

Decoding sections: greedy, plain argmax on both sides (no banned tokens, no repetition
penalty), every prompt forced to exactly `max_new_tokens` new tokens (`min_new_tokens` on
both sides), text in and token ids out on both sides (ours also detokenises; the pipeline
returns ids). Ours is `finetune.decoding.GPT2Decoder`, what the composer runs; the baseline
is `transformers.pipeline("text-generation")`, which has no int8 path here and so runs the
float32 model in every section. One warm-up call per side and per shape is excluded; each
prompt is then timed on every side in turn (so load on the machine falls on all sides alike),
`repeats` times. Tokens/s are all new tokens over all timed seconds; a speedup is ours over
the pipeline's tokens/s; identical outputs count prompts whose tokens equal the pipeline's
(first repeat).

- `float32`: our decoder on float32 weights against the pipeline, one prompt at a time:
  `tokens_per_s`, `pipeline_tokens_per_s`, `speedup`, `identical_outputs` (greedy in the
  same precision: all of them, or the fast path would be wrong, not fast), and
  `first_token_ms_p50`/`_p95` (ours: tokenising and the prompt's forward pass).
- `int8`: our decoder on int8 weights against the same float32 pipeline figure
  (`float32_pipeline_tokens_per_s`, `speedup_vs_float32_pipeline`,
  `identical_outputs_vs_float32_pipeline`: the logits move a little, so some replies
  differ), `first_token_ms_p50`/`_p95`; `int8_weights` is false where torch has no int8
  kernels and the decoder stayed in float32.
- `batched`: all prompts as one left-padded batch: ours in float32 and in int8 against the
  pipeline given the same prompts as a list with `batch_size=len(prompts)` (its tokenizer
  pads on the left, with the model's pad token, or with eos for a tokenizer without one).
  `*_first_token_ms`: the batch's first step, ours (the median over repeats).

`shipped_reply`: the reply the product sends, end to end, per prompt: the turn's request
(the same contexts and evidence) through `GPT2Composer.compose_with_candidates` with the
default `GeneratorConfig` (as the live assistant: the model's trained reply length, stopping
at <|endofreply|>, int8, `candidates` decoded in one batch, the guard, the selection, slot
filling, and the retrieval composer's reply when the guard rejects), the domain and company
facts of `--data` where it has them. `ms_p50`/`ms_p95` over every timed call (after one
untimed pass over the turns); `generated` + `fell_back` = `n`: turns whose reply came from
GPT-2 (its answer, or the slot question its answer led to) against the retrieval
fallback's (first repeat).

The result: one JSON object, `model`, `machine`, `n`, `max_new_tokens`, `repeats`,
`prompt_tokens_mean`, `prompts_from`, and the four sections.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bot.composers.generative import GPT2Composer
from bot.composers.retrieval import RetrievalComposer
from bot.contracts import ComposeRequest, Role, Slots
from bot.domain import Domain
from bot.errors import CsbotError
from bot.evaluation.common import machine_info, percentile
from bot.settings import DialogueConfig
from bot.workspace import company_facts
from finetune.decoder import GeneratorConfig
from finetune.decoding import GPT2Decoder, UnsupportedModelError
from retrieval.progress import Progress, no_progress
from retrieval.types import Hit, Unit

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

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
    """(context, evidence texts) of the first `n` pairs with a context in `valid.jsonl`."""
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


def _request(context: list[dict[str, str]], evidence: list[str]) -> ComposeRequest:
    """The turn a context stands for: its last turn is the customer's text, the evidence the hits."""
    *history, last = context
    hits = tuple(Hit(Unit(id=f"ev{i}", kind="qa", text="", reply=e), 1.0) for i, e in enumerate(evidence))
    return ComposeRequest(
        text=last["text"],
        intent="",
        hits=hits,
        slots=Slots({}),
        # the transcripts' and pairs' roles are the store's (`Role`), as in bot.evaluation.heldout
        history=tuple((cast(Role, "bot" if t["role"] == "agent" else t["role"]), t["text"]) for t in history),
    )


@dataclass
class _Timed:
    """One side's timed calls: seconds and new tokens summed, first-token times, and the
    new token ids per prompt of the first pass (what identical outputs compare)."""

    seconds: float = 0.0
    tokens: int = 0
    first_ms: list[float] = field(default_factory=list)
    rows: list[list[int]] = field(default_factory=list)

    def add(self, seconds: float, rows: list[list[int]], first_ms: float | None, *, keep_rows: bool) -> None:
        self.seconds += seconds
        self.tokens += sum(len(r) for r in rows)
        if first_ms is not None:
            self.first_ms.append(first_ms)
        if keep_rows:
            self.rows.extend(rows)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


Decode = Callable[[list[str]], tuple[float, list[list[int]], float | None]]


def _our_side(decoder: GPT2Decoder, tok: PreTrainedTokenizerBase, max_new_tokens: int, eos_id: int) -> Decode:
    """Text in, text out, like the pipeline: tokenise, decode the batch greedily to exactly
    `max_new_tokens` tokens, detokenise. Returns (seconds, new ids per prompt, first-token ms)."""

    def decode(batch: list[str]) -> tuple[float, list[list[int]], float | None]:
        t0 = time.perf_counter()
        ids = [tok.encode(p, add_special_tokens=False) for p in batch]
        rows: list[list[int]] = [[] for _ in batch]
        first = None
        steps = decoder.generate(ids, max_new_tokens=max_new_tokens, eos_id=eos_id, min_new_tokens=max_new_tokens)
        for step in steps:
            if first is None:
                first = (time.perf_counter() - t0) * 1000
            for row, t in zip(rows, step, strict=True):
                if t is not None:
                    row.append(t)
        for r in rows:
            tok.decode(r, skip_special_tokens=True)
        return time.perf_counter() - t0, rows, first

    return decode


def _pipeline_side(tok: PreTrainedTokenizerBase, model: Any, max_new_tokens: int, eos_id: int) -> Decode:
    """`transformers.pipeline("text-generation")` on the float32 model: one prompt as a
    string, several as a list in one batch (`batch_size=len`), left-padded. Its tokenizer is
    a copy, so the padding set here does not reach our side."""
    import copy

    from transformers import pipeline

    pipe_tok = copy.deepcopy(tok)
    if pipe_tok.pad_token_id is None:  # a batch needs a pad token; masked out, so eos does
        pipe_tok.pad_token = pipe_tok.eos_token
    pipe_tok.padding_side = "left"  # a decoder-only model continues from the right edge
    # transformers' stub names only its concrete tokenizer classes; any PreTrainedTokenizerBase works
    pipe = pipeline("text-generation", model=model, tokenizer=pipe_tok, device=-1)  # type: ignore[call-overload]
    kw = {
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "return_tensors": True,
        "pad_token_id": pipe_tok.pad_token_id,
        "eos_token_id": eos_id,
    }

    def decode(batch: list[str]) -> tuple[float, list[list[int]], float | None]:
        t0 = time.perf_counter()
        # one prompt as a string, as a caller with one turn would; several as a list in one batch
        outputs = [pipe(batch[0], **kw)] if len(batch) == 1 else pipe(batch, batch_size=len(batch), **kw)
        seconds = time.perf_counter() - t0
        # each row is the (left-padded) prompt's ids, then the new ones
        padded = max(len(pipe_tok(p)["input_ids"]) for p in batch)
        return seconds, [list(out[0]["generated_token_ids"][padded:]) for out in outputs], None

    return decode


def _same(a: Sequence[list[int]], b: Sequence[list[int]]) -> int:
    """How many prompts got the same tokens on both sides."""
    return sum(x == y for x, y in zip(a, b, strict=True))


def _ms_quantiles(values: list[float], prefix: str) -> dict[str, float | None]:
    return {
        f"{prefix}_p50": round(statistics.median(values), 2) if values else None,
        f"{prefix}_p95": round(percentile(values, 95), 2) if values else None,
    }


def _shipped_replies(
    model_dir: Path, requests: list[ComposeRequest], data_dir: Path, repeats: int, progress: Progress
) -> dict[str, Any]:
    """Each request through the composer the live assistant builds (default `GeneratorConfig`,
    the retrieval composer as fallback), timed end to end, and which replies were generated."""
    domain = Domain.load(data_dir / "domain.json")
    composer = GPT2Composer(
        model_dir,
        GeneratorConfig(),
        fallback=RetrievalComposer.from_config(DialogueConfig(), domain),
        company_facts=company_facts(data_dir),
        slot_questions=domain.slot_questions,
        slot_mentions=domain.slot_mentions,
    ).load()
    progress(
        f"shipped reply: {len(requests)} turns × {repeats} through the composer "
        f"({composer.config.candidates} candidates, guard, fallback)"
    )
    # warm-up: one untimed pass, since a path first taken on a later turn (the candidate
    # selection's ROUGE scorer, seconds to import) would otherwise land in the timings
    for request in requests:
        composer.compose_with_candidates(request)
    ms: list[float] = []
    generated = 0
    for repeat in range(repeats):
        for request in requests:
            t0 = time.perf_counter()
            turn = composer.compose_with_candidates(request)
            ms.append((time.perf_counter() - t0) * 1000)
            if repeat == 0:
                generated += turn.reply.composer == composer.name
    return {
        **_ms_quantiles(ms, "ms"),
        "generated": generated,
        "fell_back": len(requests) - generated,
        "candidates": composer.config.candidates,
        "int8_weights": composer.generator.int8,
        "max_new_tokens": composer.config.max_new_tokens,
    }


def bench_generation(
    model_dir: Path,
    *,
    prompts: int = 8,
    pairs: Path | None = None,
    data_dir: Path = Path("data"),
    max_new_tokens: int = 48,
    repeats: int = 1,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Time our decoder in float32 and int8 against the float32 pipeline, one prompt at a time
    and batched, then the shipped reply end to end (see the module docstring for each key)."""
    if prompts < 1:
        raise CsbotError(f"--prompts must be at least 1; got {prompts}")
    if repeats < 1:
        raise CsbotError(f"--repeats must be at least 1; got {repeats}")
    contexts = _pair_contexts(pairs, prompts) if pairs is not None else _demo_contexts(data_dir, prompts)
    if not contexts:
        raise CsbotError("no prompts to benchmark: the source has no usable contexts")
    requests = [_request(context, evidence) for context, evidence in contexts]
    # greedy prompts sized for max_new_tokens; this composer only lays the prompts out
    layout = GPT2Composer(
        model_dir,
        GeneratorConfig(decoding="greedy", max_new_tokens=max_new_tokens, int8=False),
        fallback=RetrievalComposer.from_config(DialogueConfig(), Domain()),
        company_facts=[],
        slot_questions={},
    ).load()
    texts = [layout.build_prompt(r, layout.evidence_hits(r)) for r in requests]

    import torch

    model, tok = layout.generator.model, layout.generator.tokenizer
    assert model is not None and tok is not None  # GPT2Composer.load() loaded them
    eos_id = tok.eos_token_id
    assert isinstance(eos_id, int)  # the generator's loader checked it is <|endofreply|>
    if getattr(model.config, "csbot_pointer", False):
        raise CsbotError(
            f"{model_dir} is a pointer model (trained with --pointer): transformers' pipeline cannot "
            "decode it (its cache hands the model only the newest token, and the pointer needs them all), "
            "so there is no baseline to compare with; bench a plain GPT-2"
        )
    try:
        float32_decoder, int8_decoder = GPT2Decoder(model, int8=False), GPT2Decoder(model, int8=True)
    except UnsupportedModelError as e:
        raise CsbotError(
            f"{model_dir}: this GPT-2 variant runs on model.generate, not the fast decoder ({e}); "
            "there is nothing to compare"
        ) from e
    sides: dict[str, Decode] = {
        "float32": _our_side(float32_decoder, tok, max_new_tokens, eos_id),
        "int8": _our_side(int8_decoder, tok, max_new_tokens, eos_id),
        "pipeline": _pipeline_side(tok, model, max_new_tokens, eos_id),
    }
    single = {name: _Timed() for name in sides}
    batched = {name: _Timed() for name in sides}

    progress(
        f"warming up, then {len(texts)} prompts × {max_new_tokens} tokens × {repeats}: ours in float32 "
        f"and int8 and the float32 pipeline, one at a time, then all {len(texts)} as one batch"
    )
    with torch.inference_mode():
        for decode in sides.values():
            decode(texts[:1])
            if len(texts) > 1:
                decode(texts)
        for repeat in range(repeats):
            for prompt in texts:
                for name, decode in sides.items():
                    seconds, rows, first = decode([prompt])
                    single[name].add(seconds, rows, first, keep_rows=repeat == 0)
            for name, decode in sides.items():
                seconds, rows, first = decode(texts)
                batched[name].add(seconds, rows, first, keep_rows=repeat == 0)
    expected = len(texts) * max_new_tokens * repeats
    for name, timed in [*single.items(), *batched.items()]:
        if timed.tokens != expected:
            raise CsbotError(
                f"{name} generated {timed.tokens} tokens, not {expected}: a prompt leaves too few of the "
                f"model's positions for {max_new_tokens} new tokens; pass a smaller --max-new-tokens"
            )

    base, batch_base = single["pipeline"], batched["pipeline"]
    result: dict[str, Any] = {
        "prompts_from": "pairs" if pairs is not None else "demo",
        "n": len(texts),
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        "prompt_tokens_mean": round(statistics.fmean(len(tok.encode(t, add_special_tokens=False)) for t in texts), 1),
        "float32": {
            "tokens_per_s": round(single["float32"].tokens_per_s, 1),
            "pipeline_tokens_per_s": round(base.tokens_per_s, 1),
            "speedup": round(single["float32"].tokens_per_s / base.tokens_per_s, 2),
            "identical_outputs": _same(single["float32"].rows, base.rows),
            **_ms_quantiles(single["float32"].first_ms, "first_token_ms"),
        },
        "int8": {
            "int8_weights": int8_decoder.int8,
            "tokens_per_s": round(single["int8"].tokens_per_s, 1),
            "float32_pipeline_tokens_per_s": round(base.tokens_per_s, 1),
            "speedup_vs_float32_pipeline": round(single["int8"].tokens_per_s / base.tokens_per_s, 2),
            "identical_outputs_vs_float32_pipeline": _same(single["int8"].rows, base.rows),
            **_ms_quantiles(single["int8"].first_ms, "first_token_ms"),
        },
        "batched": {
            "pipeline_tokens_per_s": round(batch_base.tokens_per_s, 1),
            "float32_tokens_per_s": round(batched["float32"].tokens_per_s, 1),
            "float32_speedup": round(batched["float32"].tokens_per_s / batch_base.tokens_per_s, 2),
            "float32_identical_outputs": _same(batched["float32"].rows, batch_base.rows),
            "float32_first_token_ms": round(statistics.median(batched["float32"].first_ms), 2),
            "int8_tokens_per_s": round(batched["int8"].tokens_per_s, 1),
            "int8_speedup_vs_float32_pipeline": round(batched["int8"].tokens_per_s / batch_base.tokens_per_s, 2),
            "int8_identical_outputs_vs_float32_pipeline": _same(batched["int8"].rows, batch_base.rows),
            "int8_first_token_ms": round(statistics.median(batched["int8"].first_ms), 2),
        },
    }
    result["shipped_reply"] = _shipped_replies(model_dir, requests, data_dir, repeats, progress)
    result["model"] = str(model_dir)
    result["machine"] = machine_info()
    return result
