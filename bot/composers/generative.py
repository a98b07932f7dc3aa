"""The GPT-2 composer: writes the reply from the conversation and the retrieved evidence,
then lets the grounding guard decide whether it may be sent.

    composer = GPT2Composer("runs/r1/final", GeneratorConfig(min_overlap=0.11),
                            fallback=RetrievalComposer.from_config(cfg, domain),
                            company_facts=company_facts_from(company),
                            slot_questions=domain.slot_questions)
    reply = composer.compose(request)            # a ComposedReply, like any composer

Per turn:

1. the prompt is the `finetune.prompt` layout the model was trained on: the recent turns
   (bot turns read as agent turns, system turns dropped) and the current customer text,
   personal values masked as placeholders as in training, then the evidence texts of the
   top hits (replies that relied on one customer's order record are left out);
2. decoding (greedy, beam or top-p by config) with a KV cache, stopping at `<|endofreply|>`:
   greedy and top-p on `finetune.decoding.GPT2Decoder`, beam search on `model.generate`;
3. the guard checks the reply against the conversation (unmasked), the evidence and the
   company facts: an invented order number, email, amount, date, URL or phone number, or too
   little overlap with the evidence, rejects it;
4. placeholders are filled from the conversation's slots; an askable missing slot turns the
   reply into a question for it (action "clarify"); a placeholder no slot fills rejects it;
5. a rejected reply goes to the fallback (the retrieval composer), whose reply is returned
   with `composer` = "<fallback> (gpt2 rejected)" and `note` = "gpt2 reply rejected: <reason>".

Every reply carries `source_ids`: the evidence units the generator was given.

Streaming: `compose_streaming` yields text pieces as they are generated and then the final
`ComposedReply`. The guard can only judge the whole reply, so a channel that shows the
pieces must replace them with the final reply's text when they differ (a rejected reply is
replaced by the fallback's). `stream` yields only the pieces.

torch and transformers are imported inside methods, so importing this module stays light.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bot.composers.retrieval import check_slots
from bot.contracts import ComposedReply, Composer, ComposeRequest
from bot.errors import ArtifactMismatchError
from finetune.guard import GroundingGuard
from retrieval.entities import mask_entities

if TYPE_CHECKING:
    from retrieval.types import Hit

MODEL_META = "csbot_model.json"  # written by finetune.train next to the weights
# for a model whose csbot_model.json has no "generation" section (0.11: the 5% quantile of the
# demo corpus's agent replies' overlap with their evidence)
FALLBACK_GENERATION = {"max_new_tokens": 96, "evidence_k": 3, "min_overlap": 0.11}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# placeholders the bot never fills but may simply leave out ("Thanks, {{Name}}!" -> "Thanks!")
_DROPPABLE = ("{{Name}}",)


@dataclass
class GeneratorConfig:
    """How the generator decodes, and what the guard demands.

    decoding: "greedy" (deterministic, fastest), "beam" (`num_beams`; no streaming of
    pieces: the reply comes as one piece), "top_p" (nucleus sampling with `temperature`,
    seeded by `seed` when set, so a replayed turn replays alike).
    max_prompt_tokens: the prompt's budget; default the model's n_positions minus
    max_new_tokens. evidence_k: how many evidence texts go into the prompt.
    min_evidence_score: hits below it are not evidence; with none left, the fallback answers.
    min_overlap: the guard's threshold.
    candidates: with greedy decoding, how many replies are decoded per turn as one batch:
    the greedy one and `candidates - 1` nucleus samples. The guard-passed candidate that
    agrees most (ROUGE-L) with the top `consensus_k` retrieved answers and with the other
    candidates is sent (minimum-Bayes-risk selection: what agents said in similar cases is
    the stand-in for the reference). 1: the greedy reply alone, streamed as it is decoded.

    `None` (the default for max_new_tokens, evidence_k and min_overlap) means "what the model
    was trained with": `finetune.train` writes the evidence count, the reply length and the
    overlap threshold calibrated on its validation pairs into csbot_model.json, and `load()`
    takes them from there (`FALLBACK_GENERATION` for a model without them).
    """

    decoding: Literal["greedy", "beam", "top_p"] = "greedy"
    num_beams: int = 4
    top_p: float = 0.9
    temperature: float = 0.7
    max_new_tokens: int | None = None
    max_prompt_tokens: int | None = None
    min_overlap: float | None = None
    torch_threads: int | None = 2
    evidence_k: int | None = None
    min_evidence_score: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = 0
    # digits only by copying: tokens with a digit that the prompt lacks are never chosen
    copy_numbers_only: bool = True
    candidates: int = 3
    consensus_k: int = 3
    # the fast decoder's matrix products on int8 weights (finetune.decoding.GPT2Decoder): 1.8x
    # faster a token on 2 CPU cores; beam search (model.generate) stays in float32
    int8: bool = True

    def __post_init__(self) -> None:
        if self.decoding not in ("greedy", "beam", "top_p"):
            raise ValueError(f"decoding must be 'greedy', 'beam' or 'top_p'; got {self.decoding!r}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1; got {self.max_new_tokens}")
        if self.candidates < 1 or self.consensus_k < 0:
            raise ValueError(
                f"candidates must be at least 1 and consensus_k at least 0; got "
                f"{self.candidates} and {self.consensus_k}"
            )


@dataclass
class _Generated:
    text: str
    new_tokens: int
    ended: bool  # stopped at <|endofreply|> (not cut at max_new_tokens)
    prompt_tokens: int
    first_token_ms: float | None
    total_ms: float


class GPT2Composer:
    """A `Composer` (`name = "gpt2"`) backed by a fine-tuned GPT-2 in `model_dir`."""

    name = "gpt2"

    def __init__(
        self,
        model_dir: str | Path,
        config: GeneratorConfig | None = None,
        *,
        fallback: Composer,
        company_facts: Sequence[str],
        slot_questions: dict[str, str],
        slot_mentions: dict[str, list[str]] | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.config = config or GeneratorConfig()
        self.fallback = fallback
        self.slot_questions = dict(slot_questions)
        self.slot_mentions = slot_mentions or {}
        self.company_facts = list(company_facts)
        # load() remakes it with the model's calibrated threshold when none is configured
        self.guard = GroundingGuard(
            self.company_facts,
            self.config.min_overlap if self.config.min_overlap is not None else FALLBACK_GENERATION["min_overlap"],
        )
        self.model = None
        self.tokenizer = None
        self.meta: dict[str, Any] = {}
        # timings of the last generation (prompt_tokens, new_tokens, first_token_ms, total_ms, tokens_per_s)
        self.last_stats: dict[str, float] = {}
        self._lock = threading.Lock()
        self._fast = None  # finetune.decoding.GPT2Decoder once loaded; False when the model needs generate()
        self._numeric: frozenset[int] | None = None

    # -- loading ---------------------------------------------------------------------
    def load(self) -> GPT2Composer:
        """Load tokenizer and model (eval mode, local files only). Refuses, naming the
        directory, one that is not a csbot generator or whose tokenizer the model cannot embed."""
        if self.model is not None:
            return self
        d = self.model_dir
        if not d.is_dir():
            raise ArtifactMismatchError(
                f"generator model directory {d} does not exist; train one with "
                "`csbot finetune train` and pass its final/ directory"
            )
        if not (d / MODEL_META).is_file():
            raise ArtifactMismatchError(
                f"{d} has no {MODEL_META}: it is not a csbot generator "
                "(use the final/ directory that `csbot finetune train` writes)"
            )
        if not any((d / w).is_file() for w in WEIGHT_FILES):
            raise ArtifactMismatchError(
                f"{d} has no model weights ({' or '.join(WEIGHT_FILES)}); "
                "the training run did not finish or the files were removed"
            )
        import torch
        from transformers import AutoTokenizer, GPT2LMHeadModel

        from finetune.prompt import END_OF_REPLY, RESPONSE

        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)
        try:
            self.meta = json.loads((d / MODEL_META).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ArtifactMismatchError(f"{d / MODEL_META} is not readable JSON ({e})") from e
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ArtifactMismatchError(f"cannot load the tokenizer saved in {d}: {_first_line(e)}") from e
        try:
            model = GPT2LMHeadModel.from_pretrained(str(d), local_files_only=True)
        except Exception as e:  # corrupt weights raise their library's own types
            raise ArtifactMismatchError(
                f"cannot load GPT-2 weights from {d} ({type(e).__name__}: {_first_line(e)})"
            ) from e
        rows = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows:
            raise ArtifactMismatchError(
                f"{d}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary (embedding rows) "
                f"is {rows}; they are not from the same training run"
            )
        for tok in (END_OF_REPLY, RESPONSE):
            if len(tokenizer.encode(tok, add_special_tokens=False)) != 1:
                raise ArtifactMismatchError(
                    f"{d}: the tokenizer lacks csbot's layout token {tok}; it was not trained with finetune"
                )
        if tokenizer.eos_token != END_OF_REPLY:
            raise ArtifactMismatchError(f"{d}: the tokenizer's eos is {tokenizer.eos_token!r}, not {END_OF_REPLY}")
        model.eval()
        self.config = resolve_generation(self.config, self.meta)
        self.guard = GroundingGuard(self.company_facts, self.config.min_overlap)
        self.tokenizer, self.model = tokenizer, model
        return self

    # -- the Composer contract ---------------------------------------------------------
    def compose(self, request: ComposeRequest) -> ComposedReply:
        reply = None
        for item in self._run(request, stream=False):
            if isinstance(item, ComposedReply):
                reply = item
        assert reply is not None
        return reply

    def compose_streaming(self, request: ComposeRequest) -> Iterator[str | ComposedReply]:
        """Text pieces as they are generated, then the final `ComposedReply` (which may differ
        from the pieces: filled placeholders, or the fallback's reply after a rejection)."""
        yield from self._run(request, stream=True)

    def stream(self, request: ComposeRequest) -> Iterator[str]:
        """Only the generated text pieces (unguarded: show the final reply of
        `compose_streaming` when it differs)."""
        for item in self._run(request, stream=True):
            if isinstance(item, str):
                yield item

    # -- one turn ------------------------------------------------------------------------
    def evidence_hits(self, request: ComposeRequest) -> list[Hit]:
        """The hits whose text goes into the prompt, in the request's order (the dialogue
        manager puts the classified intent's units first), one per distinct text."""
        return self._usable_hits(request, self.config.evidence_k)

    def _usable_hits(self, request: ComposeRequest, limit: int | None) -> list[Hit]:
        """The request's hits in order, at most `limit`, one per distinct text, leaving out
        weak ones and replies written from one customer's order record."""
        out, seen = [], set()
        for h in request.hits:
            if h.score < self.config.min_evidence_score or h.unit.extra.get("after_lookup"):
                # an agent reading one customer's order record: not ours to repeat
                continue
            text = " ".join(h.unit.evidence_text.split())
            if text and text not in seen:
                seen.add(text)
                out.append(h)
            if len(out) == limit:
                break
        return out

    def build_prompt(self, request: ComposeRequest, hits: Sequence[Hit]) -> str:
        from finetune.prompt import format_prompt

        self.load()
        context = [
            {"role": "agent" if role in ("bot", "agent") else "customer", "text": mask_entities(text)[0]}
            for role, text in request.history
            if role in ("customer", "bot", "agent") and text.strip()
        ]
        context.append({"role": "customer", "text": mask_entities(request.text)[0]})
        budget = self.config.max_prompt_tokens or (self.model.config.n_positions - self.config.max_new_tokens)
        return format_prompt(
            context,
            [h.unit.evidence_text for h in hits],
            tokenizer=self.tokenizer,
            max_tokens=budget,
            max_evidence=self.config.evidence_k,
        )

    def _run(self, request: ComposeRequest, *, stream: bool) -> Iterator[str | ComposedReply]:
        hits = self.evidence_hits(request)
        if not hits:
            yield self._fallback(request, "no evidence to ground a reply in", skipped=True)
            return
        prompt = self.build_prompt(request, hits)
        generated: _Generated | None = None
        try:
            if self._selects():
                generated = self._select(
                    request, hits, self.generate_batch([prompt] * self.config.candidates, alternatives=True)
                )
            else:
                for item in self._generate(prompt, stream=stream):
                    if isinstance(item, str):
                        yield item
                    else:
                        generated = item
        except (RuntimeError, ValueError, IndexError) as e:  # a model failure must not lose the turn
            yield self._fallback(request, f"generation failed ({type(e).__name__}: {_first_line(e)})")
            return
        assert generated is not None
        yield self._finish(request, generated.text, hits, ended=generated.ended)

    def _finish(
        self, request: ComposeRequest, generated_text: str, hits: Sequence[Hit], *, ended: bool = True
    ) -> ComposedReply:
        """Guard, fill and mark a generated reply (the step after generation, public to tests)."""
        source_ids = tuple(h.unit.id for h in hits)
        text = clean_generated_text(generated_text, ended)
        verdict = self.guard.check(
            text, conversation=_conversation(request), evidence=[h.unit.evidence_text for h in hits]
        )
        if not verdict.ok:
            return self._fallback(request, verdict.reason or "rejected by the guard", source_ids=source_ids)
        check = check_slots(text, request.slots.values, self.slot_questions, self.slot_mentions)
        if check.reject:
            return self._fallback(request, check.reject, source_ids=source_ids)
        if check.ask:
            return ComposedReply(
                self.slot_questions[check.ask],
                "clarify",
                self.name,
                source_ids=source_ids,
                missing_slot=check.ask,
                note=f"gpt2 reply needs slot {check.ask}",
            )
        if check.asks_itself:
            return ComposedReply(
                check.text, "clarify", self.name, source_ids=source_ids, missing_slot=check.asks_itself
            )
        return ComposedReply(check.text, "answer", self.name, source_ids=source_ids)

    def _selects(self) -> bool:
        self.load()
        return self.config.candidates > 1 and self.config.decoding == "greedy" and self._decoder() is not None

    def consensus_references(self, request: ComposeRequest) -> list[str]:
        """The retrieved answers a candidate reply is compared with: the usable hits of the
        request (as for the prompt's evidence), at most `consensus_k`."""
        if self.config.consensus_k == 0:
            return []
        return [" ".join(h.unit.evidence_text.split()) for h in self._usable_hits(request, self.config.consensus_k)]

    def _select(self, request: ComposeRequest, hits: Sequence[Hit], generated: Sequence[_Generated]) -> _Generated:
        """The candidate to send: among those the guard passes, the one with the highest
        ROUGE-L summed over the retrieved answers and the other passing candidates. None
        passing: the greedy one (the first), which `_finish` then rejects with its reason."""
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rougeL"])
        evidence = [h.unit.evidence_text for h in hits]
        texts = [clean_generated_text(g.text, g.ended) for g in generated]
        passing = [
            i
            for i, t in enumerate(texts)
            if self.guard.check(t, conversation=_conversation(request), evidence=evidence).ok
        ]
        if not passing:
            self._stats_of(generated[0], len(generated), 0, 0)
            return generated[0]
        references = self.consensus_references(request)

        def agreement(i: int) -> float:
            others = references + [texts[j] for j in passing if j != i]
            return sum(scorer.score(o, texts[i])["rougeL"].fmeasure for o in others)

        best = max(passing, key=agreement)  # ties go to the earlier, the greedy reply first
        self._stats_of(generated[best], len(generated), len(passing), best)
        return generated[best]

    def _stats_of(self, chosen: _Generated, candidates: int, passing: int, index: int) -> None:
        """last_stats for the reply sent: its tokens over the whole batch's time."""
        n, first, total = chosen.new_tokens, chosen.first_token_ms, chosen.total_ms
        rate = round((n - 1) / ((total - first) / 1000), 1) if first is not None and n > 1 and total > first else None
        self.last_stats = {
            **self.last_stats,
            "new_tokens": n,
            "total_ms": round(total, 2),
            "tokens_per_s": rate,
            "candidates": candidates,
            "passing": passing,
            "chosen": index,
        }

    def _fallback(
        self, request: ComposeRequest, reason: str, *, skipped: bool = False, source_ids: tuple[str, ...] = ()
    ) -> ComposedReply:
        """The fallback composer's reply, marked: composer "<name> (gpt2 rejected)" (or
        "(gpt2 skipped)" when generation did not run) and the reason in `note`."""
        reply = self.fallback.compose(request)
        verb = "skipped" if skipped else "rejected"
        note = f"gpt2 {'not used' if skipped else 'reply rejected'}: {reason}"
        if reply.note:
            note += f"; {reply.composer}: {reply.note}"
        ids = reply.source_ids or source_ids
        return ComposedReply(
            reply.text,
            reply.action,
            f"{reply.composer} (gpt2 {verb})",
            source_ids=ids,
            missing_slot=reply.missing_slot,
            note=note,
        )

    # -- decoding --------------------------------------------------------------------------
    def generation_kwargs(self) -> dict[str, Any]:
        cfg, tok = self.config, self.tokenizer
        kw: dict[str, Any] = dict(
            max_new_tokens=cfg.max_new_tokens,
            use_cache=True,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        if cfg.repetition_penalty != 1.0:
            kw["repetition_penalty"] = cfg.repetition_penalty
        if cfg.decoding == "greedy":
            kw.update(do_sample=False, num_beams=1)
        elif cfg.decoding == "beam":
            kw.update(do_sample=False, num_beams=cfg.num_beams, early_stopping=True)
        else:
            kw.update(do_sample=True, num_beams=1, top_p=cfg.top_p, top_k=0, temperature=cfg.temperature)
        return kw

    def _generate(self, prompt: str, *, stream: bool) -> Iterator[str | _Generated]:
        """Yields decoded pieces (when `stream` and not beam search), then a `_Generated`.

        Greedy and top-p run on `finetune.decoding.GPT2Decoder` (several times faster than
        `model.generate` for small models); beam search, and GPT-2 variants that decoder
        does not reproduce, run on `model.generate`."""
        self.load()
        if self.config.decoding != "beam" and self._decoder() is not None:
            yield from self._generate_fast([prompt], stream=stream)
        else:
            yield from self._generate_hf(prompt, stream=stream)

    def _decoder(self):
        from finetune.decoding import GPT2Decoder, UnsupportedModelError

        if self._fast is None:
            try:
                self._fast = GPT2Decoder(self.model, int8=self.config.int8)
            except UnsupportedModelError:
                self._fast = False
        return self._fast or None

    def _numeric_tokens(self) -> frozenset[int]:
        from finetune.decoding import number_tokens

        if self._numeric is None:
            self._numeric = number_tokens(self.tokenizer)
        return self._numeric

    def generate_batch(self, prompts: Sequence[str], *, alternatives: bool = False) -> list[_Generated]:
        """Replies for several prompts in one batch (greedy or top-p): how concurrent turns
        share one decoding pass. `alternatives`: the first row greedy, the others nucleus
        samples (the candidates of one turn, `prompts` being copies of its prompt)."""
        self.load()
        if self.config.decoding == "beam" or self._decoder() is None:
            return [next(g for g in self._generate_hf(p, stream=False) if isinstance(g, _Generated)) for p in prompts]
        return [
            g
            for g in self._generate_fast(prompts, stream=False, alternatives=alternatives)
            if isinstance(g, _Generated)
        ]

    def _generate_fast(
        self, prompts: Sequence[str], *, stream: bool, alternatives: bool = False
    ) -> Iterator[str | _Generated]:
        from finetune.decoding import Sampling, number_tokens_not_in

        tok, cfg = self.tokenizer, self.config
        started = time.perf_counter()
        ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
        banned = None
        if cfg.copy_numbers_only:
            banned = [number_tokens_not_in(p, self._numeric_tokens()) for p in ids]
        sampled = cfg.decoding == "top_p" or alternatives
        sampling = Sampling(
            top_p=cfg.top_p if sampled else None,
            temperature=cfg.temperature,
            seed=cfg.seed,
            repetition_penalty=cfg.repetition_penalty,
            banned=banned,
            greedy_rows=1 if alternatives else 0,
        )
        rows: list[list[int]] = [[] for _ in prompts]
        first_ms: float | None = None
        shown = ""
        with self._lock:
            for step in self._fast.generate(
                ids, max_new_tokens=cfg.max_new_tokens, eos_id=tok.eos_token_id, sampling=sampling
            ):
                if first_ms is None:
                    first_ms = (time.perf_counter() - started) * 1000
                for row, t in zip(rows, step):
                    if t is not None:
                        row.append(t)
                if stream and len(prompts) == 1:
                    text = tok.decode(rows[0], skip_special_tokens=True).lstrip()
                    # a multi-byte character may be split across tokens: wait for its end
                    if text.startswith(shown) and len(text) > len(shown) and not text.endswith("\ufffd"):
                        yield text[len(shown) :]
                        shown = text
        total_ms = (time.perf_counter() - started) * 1000
        for prompt_ids, new in zip(ids, rows):
            n = len(new)
            ended = bool(new) and new[-1] == tok.eos_token_id
            self.last_stats = {
                "prompt_tokens": len(prompt_ids),
                "new_tokens": n,
                "batch": len(prompts),
                "first_token_ms": round(first_ms, 2) if first_ms is not None else None,
                "total_ms": round(total_ms, 2),
                "tokens_per_s": round((n - 1) / ((total_ms - first_ms) / 1000), 1)
                if first_ms is not None and n > 1 and total_ms > first_ms
                else None,
            }
            yield _Generated(tok.decode(new, skip_special_tokens=True), n, ended, len(prompt_ids), first_ms, total_ms)

    def _generate_hf(self, prompt: str, *, stream: bool) -> Iterator[str | _Generated]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok, model, cfg = self.tokenizer, self.model, self.config
        started = time.perf_counter()
        ids = tok.encode(prompt, add_special_tokens=False)
        input_ids = torch.tensor([ids], dtype=torch.long)
        kw = self.generation_kwargs()
        kw.update(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
        if cfg.copy_numbers_only:
            from finetune.decoding import number_tokens_not_in

            banned = number_tokens_not_in(ids, self._numeric_tokens())
            if banned:
                kw["suppress_tokens"] = sorted(banned)
        first: list[float] = []

        timer = _first_token_streamer(first)
        streamer = None
        if stream and cfg.decoding != "beam":
            streamer = _timed_text_streamer(tok, first)
            kw["streamer"] = streamer
        elif cfg.decoding != "beam":
            kw["streamer"] = timer
        cancelled = threading.Event()

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        kw["stopping_criteria"] = StoppingCriteriaList([_Cancel()])

        def run() -> Any:
            with self._lock, torch.inference_mode():
                if cfg.decoding == "top_p" and cfg.seed is not None:
                    torch.manual_seed(cfg.seed)
                return model.generate(**kw)

        if streamer is None:
            out = run()
        else:
            result: dict[str, Any] = {}

            def target() -> None:
                try:
                    result["out"] = run()
                except BaseException as e:  # re-raised in the caller's thread
                    result["error"] = e
                    streamer.end()

            thread = threading.Thread(target=target, name="csbot-generate", daemon=True)
            thread.start()
            try:
                started_text = False
                for piece in streamer:
                    if not started_text:  # the reply starts with a space (the training layout)
                        piece = piece.lstrip()
                        started_text = bool(piece)
                    if piece:
                        yield piece
            finally:
                if thread.is_alive():  # the reader stopped early: stop generating at the next token
                    cancelled.set()
                thread.join()
            if "error" in result:
                raise result["error"]
            out = result["out"]
        total_ms = (time.perf_counter() - started) * 1000
        new = out[0, len(ids) :].tolist()
        ended = bool(new) and new[-1] == tok.eos_token_id
        text = tok.decode(new, skip_special_tokens=True)
        first_ms = (first[0] - started) * 1000 if first else None
        n = len(new)
        self.last_stats = {
            "prompt_tokens": len(ids),
            "new_tokens": n,
            "first_token_ms": round(first_ms, 2) if first_ms is not None else None,
            "total_ms": round(total_ms, 2),
            # decoding speed after the first token (the prompt's forward pass is in first_token_ms)
            "tokens_per_s": round((n - 1) / ((total_ms - first_ms) / 1000), 1)
            if first_ms is not None and n > 1 and total_ms > first_ms
            else None,
        }
        yield _Generated(text, n, ended, len(ids), first_ms, total_ms)


def resolve_generation(config: GeneratorConfig, meta: dict[str, Any]) -> GeneratorConfig:
    """`config` with its unset fields taken from the model's metadata, else the fallbacks."""
    import dataclasses

    trained = meta.get("generation") or {}
    values = {}
    for name, fallback in FALLBACK_GENERATION.items():
        if getattr(config, name) is None:
            values[name] = trained.get(name) if trained.get(name) is not None else fallback
    return dataclasses.replace(config, **values)


def _first_token_streamer(first: list[float]):
    """A streamer that only notes when the first generated token arrives (generate hands a
    streamer the prompt first, then each new token)."""
    from transformers.generation.streamers import BaseStreamer

    class _Timer(BaseStreamer):
        def __init__(self):
            self.calls = 0

        def put(self, value):
            self.calls += 1
            if self.calls == 2:
                first.append(time.perf_counter())

        def end(self):
            pass

    return _Timer()


def _timed_text_streamer(tokenizer, first: list[float]):
    from transformers import TextIteratorStreamer

    class _Timed(TextIteratorStreamer):
        def put(self, value):
            if self.next_tokens_are_prompt is False and not first:
                first.append(time.perf_counter())
            super().put(value)

    return _Timed(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)


def clean_generated_text(generated_text: str, ended: bool) -> str:
    """A generated reply as the guard judges it (before placeholders are filled): whitespace
    folded, a reply cut at the token limit trimmed to its last whole sentence, droppable
    placeholders left out."""
    text = " ".join(generated_text.split())
    if not ended:
        text = _trim_to_sentence(text)
    for p in _DROPPABLE:
        text = _drop_placeholder(text, p)
    return text


def _conversation(request: ComposeRequest) -> list[str]:
    """What the customer and the bot have said, and the slot values: what a reply may repeat."""
    return [t for _, t in request.history] + [request.text] + list(request.slots.values.values())


def _drop_placeholder(text: str, placeholder: str) -> str:
    """`text` without `placeholder` and the comma or space that led to it."""
    import re

    out = re.sub(r",?\s*" + re.escape(placeholder), "", text)
    return " ".join(out.split())


def _trim_to_sentence(text: str) -> str:
    """A reply cut at max_new_tokens, back to its last full sentence (when it has one)."""
    cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    end = text.rstrip()
    if end.endswith((".", "!", "?")):
        return end
    return text[: cut + 1] if cut > 0 else text


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


__all__ = ["GPT2Composer", "GeneratorConfig"]
