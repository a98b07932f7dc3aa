"""The model side of the GPT-2 composer: load a csbot model directory, decode prompts with it,
and choose among candidate replies.

    generator = GPT2Generator("runs/r1/final", GeneratorConfig()).load()
    [reply] = generator.generate([prompt])           # a Generated: text, tokens, timings
    choice = select_candidate(texts, passing, references)

- `GeneratorConfig`: every decoding option (greedy, beam or top-p, temperature, candidates,
  int8, ...) and what the guard demands; `resolve_generation` fills the fields left unset
  from the values the model was trained with (csbot_model.json), else `FALLBACK_GENERATION`.
- `GPT2Generator`: refuses a directory that is not a csbot generator, then decodes a batch
  of prompts: greedy and top-p on `finetune.decoding.GPT2Decoder` (the fast path), beam
  search and GPT-2 variants that decoder does not reproduce on `model.generate`.
- `select_candidate`: minimum-Bayes-risk choice among the replies of one turn (pure).

torch, transformers and rouge_score are imported inside functions, so importing this module
stays light.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from finetune.checkpoint import MODEL_META, WEIGHT_FILES
from finetune.decoding import (
    GPT2Decoder,
    NumberPieces,
    Sampling,
    UnsupportedModelError,
    copy_only_tokens_not_in,
    number_tokens,
    placeholder_tokens,
)
from finetune.prompt import END_OF_REPLY, KNOWLEDGE, RESPONSE, SEP
from retrieval.errors import ArtifactMismatchError
from retrieval.threads import MODEL_CONSTRUCTION_LOCK, import_torch

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerBase

    from finetune.decoding import GPT2Decoder

T = TypeVar("T")

# for a model whose csbot_model.json has no "generation" section (0.11: the 5% quantile of the
# demo corpus's agent replies' overlap with their evidence)
FALLBACK_GENERATION: dict[str, int | float] = {
    "max_new_tokens": 96,
    "evidence_k": 3,
    "min_overlap": 0.11,
    "consensus_k": 3,
    "min_agreement": 0.0,
}

# how many of each pair's retrieved answers may vote on which one leads the evidence
# (`choose_evidence_order`); 1 is no vote: the best-ranked answer leads
VOTE_SIZES: tuple[int, ...] = (1, 3, 5, 10, 20)


@dataclass(frozen=True)
class GeneratorConfig:
    """How the generator decodes, and what the guard demands.

    decoding: "greedy" (deterministic, fastest), "beam" (`num_beams`, on `model.generate`),
    "top_p" (nucleus sampling with `temperature`, seeded by `seed` when set, so a replayed
    turn replays alike).
    max_prompt_tokens: the prompt's budget; default the model's n_positions minus
    max_new_tokens. evidence_k: how many evidence texts go into the prompt.
    min_evidence_score: hits below it are not evidence; with none left, the fallback answers.
    min_overlap: the guard's threshold.
    candidates: with greedy decoding, how many replies are decoded per turn as one batch:
    the greedy one and `candidates - 1` nucleus samples (`top_p`, `temperature`) of one
    prompt, or with `candidate_evidence` "votes" one greedy reply per prompt, each led by
    another of the most agreed-on retrieved answers. The
    guard-passed candidate that agrees most (ROUGE-L) with the top `consensus_k` retrieved
    answers and with the other candidates is sent (`select_candidate`). 1: the greedy reply alone.

    `None` (the default for max_new_tokens, evidence_k and min_overlap) means "what the model
    was trained with": `finetune.train` writes the evidence count, the reply length and the
    overlap threshold calibrated on its validation pairs into csbot_model.json, and
    `GPT2Generator.load()` takes them from there (`FALLBACK_GENERATION` for a model without them).
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
    # placeholders only by copying: a token opening a {{Placeholder}} that the prompt lacks is
    # never chosen (a reply that promised "{{Customer Support Phone Number}}" the evidence
    # never gave would state a fact nobody supplied)
    copy_placeholders_only: bool = True
    # numbers copied whole (the fast decoder only): inside a number, a digit glued on
    # ("$" "99", "4." "00"), and after a digit any token, only where the number so far stands
    # in the prompt followed by it, so copying can neither splice two of the prompt's numbers
    # into a new one nor cut one short (`finetune.decoding.NumberRun`)
    copy_numbers_whole: bool = True
    # the greedy reply and nucleus samples, one batch; the most agreed-on one the guard passes is
    # sent. 5 won on the Bitext development split over 1 and 3 (docs/benchmarks.md)
    candidates: int = 5
    # how many of the top retrieved answers the candidates are compared with, and with
    # evidence_order "consensus" the vote is taken over. None: what the model's training
    # chose on its validation pairs (csbot_model.json), 3 for a model that does not say
    consensus_k: int | None = None
    # the chosen reply is sent only when its ROUGE-L F1 against one of the top `consensus_k`
    # retrieved answers reaches this, else the fallback answers: the model may reword, adapt
    # and fill in what agents said in similar cases, not say something else. None: what the
    # learning round chose on the model's validation pairs (csbot_model.json), 0 (off) for a
    # model that does not say. Checked on the whole reply, so a reply that streams with it on
    # is sent whole (`GPT2Composer.compose_stream`)
    min_agreement: float | None = None
    # the guard's claim check: a reply saying an action is done ("I've cancelled ...") is
    # sent only where the evidence or the conversation claims the same (finetune.guard)
    check_claims: bool = True
    # which retrieved answer leads the prompt's evidence: "retrieval", the best-ranked one;
    # "consensus", of the top `consensus_k`, the one agreeing most (ROUGE-L) with the others
    # (the retrieval vote), the rest after it in their order. None: the order the model was
    # trained with (csbot_model.json), "retrieval" for a model that does not say
    evidence_order: Literal["retrieval", "consensus"] | None = None
    # what the candidates read: "same", every candidate the same prompt (the greedy reply and
    # samples); "votes", candidate i greedy on a prompt led by the i-th most agreed-on of the
    # top `consensus_k` retrieved answers (`votes_ranked`), so candidates differ by their
    # evidence. None: "votes" when the evidence order is "consensus" (+0.011 ROUGE-L on the
    # Bitext development split, docs/benchmarks.md), else "same"
    candidate_evidence: Literal["same", "votes"] | None = None
    # added to the logit of a token that continues, in the prompt, the reply's last tokens
    # (`copy_span` of them; `finetune.decoding.Sampling.copy_bias`); 0: off. The fast decoder only
    copy_bias: float = 0.0
    # the copy bias aligns the reply with the longest of its last `copy_span` ... 2 tokens that
    # the prompt holds (`finetune.decoding.CopyFollower`); 2: the last two tokens only
    copy_span: int = 2
    # a reply whose quote reaches the end of an evidence passage is nudged to end there
    copy_to_end: bool = False
    # a reply's first token is biased towards the first tokens of the evidence passages
    copy_from_start: bool = False
    # prompt lookup (the fast decoder, greedy rows): each forward pass also checks up to this
    # many draft tokens, the prompt's continuation of the reply's last tokens, and keeps those
    # greedy decoding would have chosen, so a reply quoting its evidence costs fewer passes
    # (`finetune.decoding.Sampling.lookup`); 0: off, one token a pass
    prompt_lookup: int = 0
    # the fast decoder's matrix products on int8 weights (finetune.decoding.GPT2Decoder): 1.8x
    # faster a token on 2 CPU cores; beam search (model.generate) stays in float32
    int8: bool = True

    def __post_init__(self) -> None:
        if self.decoding not in ("greedy", "beam", "top_p"):
            raise ValueError(f"decoding must be 'greedy', 'beam' or 'top_p'; got {self.decoding!r}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1; got {self.max_new_tokens}")
        if self.evidence_order not in (None, "retrieval", "consensus"):
            raise ValueError(f"evidence_order must be 'retrieval' or 'consensus'; got {self.evidence_order!r}")
        if not 0 <= self.copy_bias <= 20:
            raise ValueError(f"copy_bias must be between 0 and 20 (a logit bonus); got {self.copy_bias}")
        if not 2 <= self.copy_span <= 32:
            raise ValueError(f"copy_span must be between 2 and 32 tokens; got {self.copy_span}")
        if not 0 <= self.prompt_lookup <= 32:
            raise ValueError(f"prompt_lookup must be between 0 and 32 draft tokens; got {self.prompt_lookup}")
        if self.candidate_evidence not in (None, "same", "votes"):
            raise ValueError(f"candidate_evidence must be 'same' or 'votes'; got {self.candidate_evidence!r}")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be between 0 and 1 (a ROUGE-L F1); got {self.min_agreement}")
        if self.candidates < 1 or (self.consensus_k is not None and self.consensus_k < 0):
            raise ValueError(
                f"candidates must be at least 1 and consensus_k at least 0; got "
                f"{self.candidates} and {self.consensus_k}"
            )


def resolve_generation(config: GeneratorConfig, meta: dict[str, Any]) -> GeneratorConfig:
    """`config` with its unset fields taken from the model's metadata, else the fallbacks."""
    trained = meta.get("generation") or {}

    def chosen(name: str) -> float:
        configured = getattr(config, name)
        if configured is not None:
            return float(configured)
        return float(trained[name] if trained.get(name) is not None else FALLBACK_GENERATION[name])

    order = config.evidence_order or trained.get("evidence_order") or "retrieval"
    if order not in ("retrieval", "consensus"):
        raise UnsupportedModelError(
            f"the model's csbot_model.json asks for evidence_order {order!r}; this csbot knows "
            "'retrieval' and 'consensus': set GeneratorConfig.evidence_order, or retrain the model"
        )
    return dataclasses.replace(
        config,
        max_new_tokens=int(chosen("max_new_tokens")),
        evidence_k=int(chosen("evidence_k")),
        min_overlap=chosen("min_overlap"),
        evidence_order=order,
        consensus_k=int(chosen("consensus_k")),
        min_agreement=chosen("min_agreement"),
        candidate_evidence=config.candidate_evidence or ("votes" if order == "consensus" else "same"),
    )


@dataclass(frozen=True)
class DecodePlan:
    """One `generate` call as the fast decoder takes it (`GPT2Generator.plan`)."""

    ids: list[list[int]]  # each prompt's token ids
    sampling: Sampling
    max_new_tokens: int
    eos_id: int


@dataclass(frozen=True)
class Generated:
    """One decoded reply and how long its batch took."""

    text: str
    new_tokens: int
    ended: bool  # stopped at <|endofreply|> (not cut at max_new_tokens)
    prompt_tokens: int
    first_token_ms: float | None  # None where generate() does not say (beam search)
    total_ms: float  # the whole batch's decoding time

    @property
    def tokens_per_s(self) -> float | None:
        """Decoding speed after the first token (the prompt's forward pass is in first_token_ms)."""
        n, first, total = self.new_tokens, self.first_token_ms, self.total_ms
        if first is None or n < 2 or total <= first:
            return None
        return round((n - 1) / ((total - first) / 1000), 1)


class GPT2Generator:
    """A csbot GPT-2 model directory that decodes prompts; `load()` before `generate`."""

    def __init__(self, model_dir: str | Path, config: GeneratorConfig | None = None):
        self.model_dir = Path(model_dir)
        self.config = config or GeneratorConfig()  # resolved against the model's metadata by load()
        self.model: GPT2LMHeadModel | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.meta: dict[str, Any] = {}
        self._fast: GPT2Decoder | Literal[False] | None = None  # False: the model needs model.generate
        self._numeric: frozenset[int] | None = None
        self._number_pieces: NumberPieces | None = None
        self._placeholders: frozenset[int] | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def fast_decoder(self) -> GPT2Decoder | None:
        """The fast decoder over the loaded weights; None for a GPT-2 variant it does not
        reproduce (decoded on `model.generate`). Made on first use, from the weights as they
        are then (its int8 copies do not follow later changes)."""

        if self._fast is None:
            self.load()
            with MODEL_CONSTRUCTION_LOCK:  # the int8 copies are new modules: see the lock's note
                if self._fast is None:
                    try:
                        self._fast = GPT2Decoder(self.model, int8=self.config.int8)
                    except UnsupportedModelError:
                        self._fast = False
        return self._fast or None

    @property
    def int8(self) -> bool:
        """Whether decoding runs on int8 weights (the fast decoder, where the kernels exist)."""
        return self.fast_decoder is not None and self.fast_decoder.int8

    @property
    def selects_candidates(self) -> bool:
        """Whether a turn decodes several candidates (greedy, `candidates` > 1, on the fast decoder)."""
        return self.config.candidates > 1 and self.config.decoding == "greedy" and self.fast_decoder is not None

    def load(self) -> GPT2Generator:
        """Load tokenizer and model (eval mode, local files only). Refuses, naming the
        directory, one that is not a csbot generator or whose tokenizer the model cannot embed."""
        if self.model is not None:
            return self
        meta, tokenizer, model = _load_model_dir(self.model_dir, self.config.torch_threads)
        self.config = resolve_generation(self.config, meta)
        self.meta, self.tokenizer, self.model = meta, tokenizer, model
        return self

    def numeric_tokens(self) -> frozenset[int]:
        """Ids of the vocabulary's tokens that contain a digit (worked out once)."""

        if self._numeric is None:
            self.load()
            self._numeric = number_tokens(self.tokenizer)
        return self._numeric

    def number_pieces(self) -> NumberPieces:
        """The vocabulary's tokens by their part in a number (worked out once)."""
        if self._number_pieces is None:
            self.load()
            self._number_pieces = NumberPieces.of(self.tokenizer)
        return self._number_pieces

    def placeholder_tokens(self) -> frozenset[int]:
        """Ids of the vocabulary's tokens that open a {{Placeholder}} (worked out once)."""

        if self._placeholders is None:
            self.load()
            self._placeholders = placeholder_tokens(self.tokenizer)
        return self._placeholders

    @property
    def streams(self) -> bool:
        """Whether `token_steps` can decode step by step here (the fast decoder, greedy
        decoding: beam search knows its reply only at the end)."""
        return self.config.decoding == "greedy" and self.fast_decoder is not None

    def encode(self, text: str) -> list[int]:
        """`text` as the model's token ids (no special tokens added)."""
        self.load()
        assert self.tokenizer is not None
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids back to text, special tokens left out."""
        self.load()
        assert self.tokenizer is not None
        return _decode(self.tokenizer, list(ids))

    @property
    def eos_id(self) -> int:
        """The token that ends a reply (<|endofreply|>)."""
        self.load()
        assert self.tokenizer is not None
        return _eos_id(self.tokenizer)

    def token_steps(
        self,
        rows: Sequence[Sequence[int]],
        *,
        sampled: bool,
        greedy_rows: int = 0,
        copy_from: Sequence[Sequence[int]] | None = None,
        max_new_tokens: int | None = None,
    ) -> Generator[list[int | None], None, None]:
        """Decode `rows` (token ids) in one batch of the fast decoder, one list per step: each
        row's new token, or None once it ended (`GPT2Decoder.generate`). What `generate` does,
        as it happens: the streaming composer reads replies while they are decoded.
        `copy_from`: per row, the ids copy-only tokens may be copied from (default: the row
        itself; a row that continues a partly decoded reply passes its prompt alone).
        `sampled`: nucleus samples except the first `greedy_rows` rows (else all greedy).
        Holds the generator until closed."""
        cfg = self.config
        if self.fast_decoder is None or not self.streams:
            raise ValueError("step-by-step decoding needs the fast decoder and greedy decoding (not beam search)")
        assert cfg.max_new_tokens is not None  # load() set it
        sampling = self._sampling(copy_from if copy_from is not None else rows, sampled, greedy_rows)
        limit = cfg.max_new_tokens if max_new_tokens is None else max_new_tokens
        yield from self.plan_steps(DecodePlan([list(r) for r in rows], sampling, limit, self.eos_id))

    def plan_steps(self, plan: DecodePlan) -> Generator[list[int | None], None, None]:
        """Each step of a planned decode, as `token_steps` yields them (the server's batching
        decodes them beside other turns' instead). Holds the generator until closed."""
        decoder = self.fast_decoder
        assert decoder is not None  # token_steps checked
        with self._lock:
            yield from decoder.generate(
                plan.ids, max_new_tokens=plan.max_new_tokens, eos_id=plan.eos_id, sampling=plan.sampling
            )

    def generate(self, prompts: Sequence[str], *, alternatives: bool = False) -> list[Generated]:
        """Replies for several prompts in one batch (greedy or top-p): how concurrent turns
        share one decoding pass. `alternatives`: the first row greedy, the others nucleus
        samples (the candidates of one turn, `prompts` being copies of its prompt). Beam
        search, and models the fast decoder does not reproduce, decode one prompt at a time."""
        self.load()
        if self.config.decoding == "beam" or self.fast_decoder is None:
            return [self._generate_hf(p) for p in prompts]
        return self._generate_fast(prompts, alternatives=alternatives)

    @property
    def copies_only(self) -> bool:
        """Whether some tokens may only be copied from the prompt (digits, placeholders)."""
        return self.config.copy_numbers_only or self.config.copy_placeholders_only

    def _banned(self, prompt_ids: Sequence[int]) -> frozenset[int]:
        copy_only: frozenset[int] = frozenset()
        if self.config.copy_numbers_only:
            copy_only |= self.numeric_tokens()
        if self.config.copy_placeholders_only:
            copy_only |= self.placeholder_tokens()
        return copy_only_tokens_not_in(prompt_ids, copy_only)

    def _token_ids(self, tokens: Sequence[str]) -> frozenset[int]:
        """The ids of the layout tokens `tokens` (SEP, RESPONSE, ...)."""
        assert self.tokenizer is not None  # load() set it
        ids = self.tokenizer.convert_tokens_to_ids(list(tokens))
        return frozenset(ids if isinstance(ids, list) else [ids])

    def _sampling(self, copy_sources: Sequence[Sequence[int]], sampled: bool, greedy_rows: int) -> Sampling:
        """How the fast decoder picks tokens: nucleus sampling when `sampled` (the first
        `greedy_rows` rows greedy), copy-only tokens banned per row unless in its source ids."""
        cfg = self.config
        return Sampling(
            top_p=cfg.top_p if sampled else None,
            temperature=cfg.temperature,
            seed=cfg.seed,
            repetition_penalty=cfg.repetition_penalty,
            banned=[self._banned(p) for p in copy_sources] if self.copies_only else None,
            greedy_rows=greedy_rows,
            copy_bias=cfg.copy_bias,
            copy_span=cfg.copy_span,
            # a passage closes before <|sep|> or <|response|> and opens after <|knowledge|> or <|sep|>
            copy_ends=self._token_ids([SEP, RESPONSE]) if cfg.copy_to_end else (),
            copy_starts=self._token_ids([KNOWLEDGE, SEP]) if cfg.copy_from_start else (),
            copy_sources=copy_sources if cfg.copy_bias or cfg.copy_numbers_whole else None,
            numbers=self.number_pieces() if cfg.copy_numbers_whole else None,
            lookup=cfg.prompt_lookup,
        )

    def plan(self, prompts: Sequence[str], *, alternatives: bool = False) -> DecodePlan:
        """What the fast decoder is asked to do for `generate(prompts, alternatives=...)`:
        the prompts' token ids, the token rules, the token limit and the end token. The
        server's decoding thread runs plans of many turns in one `DecodingSlots`."""
        self.load()
        tok, cfg = self.tokenizer, self.config
        assert tok is not None and cfg.max_new_tokens is not None  # load() set them
        sampled = cfg.decoding == "top_p" or alternatives
        ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
        sampling = self._sampling(ids, sampled, 1 if alternatives else 0)
        return DecodePlan(ids, sampling, cfg.max_new_tokens, _eos_id(tok))

    def replies(
        self, plan: DecodePlan, rows: Sequence[Sequence[int]], first_ms: float | None, total_ms: float
    ) -> list[Generated]:
        """The `Generated` replies of a plan's decoded rows (new token ids per prompt)."""
        assert self.tokenizer is not None  # a plan comes from a loaded generator
        return [
            Generated(
                _decode(self.tokenizer, list(new)),
                len(new),
                bool(new) and new[-1] == plan.eos_id,
                len(prompt_ids),
                first_ms,
                total_ms,
            )
            for prompt_ids, new in zip(plan.ids, rows, strict=True)
        ]

    def _generate_fast(self, prompts: Sequence[str], *, alternatives: bool) -> list[Generated]:
        decoder = self.fast_decoder
        assert decoder is not None  # generate() checked
        started = time.perf_counter()
        plan = self.plan(prompts, alternatives=alternatives)
        rows: list[list[int]] = [[] for _ in prompts]
        first_ms: float | None = None
        with self._lock:
            for step in decoder.generate(
                plan.ids, max_new_tokens=plan.max_new_tokens, eos_id=plan.eos_id, sampling=plan.sampling
            ):
                if first_ms is None:
                    first_ms = (time.perf_counter() - started) * 1000
                for row, t in zip(rows, step, strict=True):
                    if t is not None:
                        row.append(t)
        return self.replies(plan, rows, first_ms, (time.perf_counter() - started) * 1000)

    def _generate_hf(self, prompt: str) -> Generated:
        import torch

        tok, model, cfg = self.tokenizer, self.model, self.config
        assert tok is not None and model is not None  # load() set them
        started = time.perf_counter()
        ids = tok.encode(prompt, add_special_tokens=False)
        input_ids = torch.tensor([ids], dtype=torch.long)
        kw = _generate_kwargs(cfg, tok)
        kw.update(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
        banned = self._banned(ids)
        if banned:
            kw["suppress_tokens"] = sorted(banned)
        with self._lock, torch.inference_mode():
            if cfg.decoding == "top_p" and cfg.seed is not None:
                torch.manual_seed(cfg.seed)
            out = model.generate(**kw)
        total_ms = (time.perf_counter() - started) * 1000
        new = out[0, len(ids) :].tolist()
        ended = bool(new) and new[-1] == _eos_id(tok)
        return Generated(_decode(tok, new), len(new), ended, len(ids), None, total_ms)


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert isinstance(text, str)  # one sequence of ids decodes to one string
    return text


def _eos_id(tokenizer: PreTrainedTokenizerBase) -> int:
    eos = tokenizer.eos_token_id
    assert isinstance(eos, int)  # _load_model_dir checked it is <|endofreply|>
    return eos


def _generate_kwargs(cfg: GeneratorConfig, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """`model.generate`'s arguments for `cfg`'s decoding."""
    kw: dict[str, Any] = {
        "max_new_tokens": cfg.max_new_tokens,
        "use_cache": True,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if cfg.repetition_penalty != 1.0:
        kw["repetition_penalty"] = cfg.repetition_penalty
    if cfg.decoding == "greedy":
        kw.update(do_sample=False, num_beams=1)
    elif cfg.decoding == "beam":
        kw.update(do_sample=False, num_beams=cfg.num_beams, early_stopping=True)
    else:
        kw.update(do_sample=True, num_beams=1, top_p=cfg.top_p, top_k=0, temperature=cfg.temperature)
    return kw


def _load_model_dir(
    d: Path, torch_threads: int | None
) -> tuple[dict[str, Any], PreTrainedTokenizerBase, GPT2LMHeadModel]:
    """(metadata, tokenizer, model in eval mode) of a csbot model directory, or
    `ArtifactMismatchError` saying what is wrong with it."""
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
    # sized as the process's configure_threads asked (inter-op 1 included), then this
    # generator's own intra-op count
    torch = import_torch()
    from transformers import AutoTokenizer

    from finetune.model import model_class

    if torch_threads:
        torch.set_num_threads(torch_threads)
    try:
        meta = json.loads((d / MODEL_META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ArtifactMismatchError(f"{d / MODEL_META} is not readable JSON ({e})") from e
    try:
        with MODEL_CONSTRUCTION_LOCK:
            tokenizer = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ArtifactMismatchError(f"cannot load the tokenizer saved in {d}: {_first_line(e)}") from e
    try:
        with MODEL_CONSTRUCTION_LOCK:
            model = model_class(d).from_pretrained(str(d), local_files_only=True)
    except Exception as e:  # corrupt weights raise their library's own types
        raise ArtifactMismatchError(f"cannot load GPT-2 weights from {d} ({type(e).__name__}: {_first_line(e)})") from e
    rows = model.transformer.wte.num_embeddings
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
    return meta, tokenizer, model


# -- choosing among the candidates of one turn ---------------------------------------------------
@dataclass(frozen=True)
class CandidateChoice:
    """Which candidate reply to send, and how many the guard passed."""

    index: int
    candidates: int
    passing: int


def select_candidate(texts: Sequence[str], passing: Sequence[bool], references: Sequence[str]) -> CandidateChoice:
    """Minimum-Bayes-risk selection: among the candidates the guard passed (`passing[i]`), the
    one with the highest ROUGE-L F1 summed over the `references` (the retrieved answers: what
    agents said in similar cases stands in for the reference) and the other passing
    candidates. Ties go to the earlier, the greedy reply first. None passing: the first (the
    greedy one), which the guard then rejects with its reason."""
    if len(texts) != len(passing):
        raise ValueError(f"{len(texts)} candidates but {len(passing)} guard verdicts")
    ok = [i for i, passed in enumerate(passing) if passed]
    if len(ok) < 2:
        return CandidateChoice(ok[0] if ok else 0, len(texts), len(ok))
    from finetune.rouge import rouge_tokens

    scores = _agreements([rouge_tokens(texts[i]) for i in ok], [rouge_tokens(r) for r in references])
    return CandidateChoice(ok[max(range(len(ok)), key=scores.__getitem__)], len(texts), len(ok))


def _agreements(tokens: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> list[float]:
    """Each tokenized text's ROUGE-L F1 summed over the `references` and the other texts."""
    from finetune.rouge import rouge_l_f1

    return [
        sum(rouge_l_f1(o, mine) for o in [*references, *(t for j, t in enumerate(tokens) if j != i)])
        for i, mine in enumerate(tokens)
    ]


def vote_first(items: Sequence[T], consensus_k: int = 3, text: Callable[[T], str] | None = None) -> list[T]:
    """`items` (retrieved answers, best-ranked first) with the retrieval vote first: of the
    top `consensus_k` distinct texts, the one agreeing most (ROUGE-L) with the others; the
    rest follow in their order. `text(item)` gives an item's text (default: a dict's "text",
    or the item itself). The composer orders a prompt's evidence this way when
    `evidence_order` is "consensus", and training orders each pair's evidence the same way."""
    ranked = _votes_ranked(items, consensus_k, text)
    if len(ranked) < 2:
        return list(items)
    first = ranked[0]
    return [items[first], *(item for i, item in enumerate(items) if i != first)]


def votes_ranked(items: Sequence[T], consensus_k: int = 3, text: Callable[[T], str] | None = None) -> list[T]:
    """Of `items`' top `consensus_k` distinct texts (best-ranked first), those items ordered
    by their agreement (ROUGE-L summed) with the others, most agreed-on first, ties in their
    order: the first is the retrieval vote."""
    return [items[i] for i in _votes_ranked(items, consensus_k, text)]


def _votes_ranked(items: Sequence[T], consensus_k: int, text: Callable[[T], str] | None) -> list[int]:
    read = text or _item_text
    seen: set[str] = set()
    voters: list[int] = []
    for i, item in enumerate(items):
        said = " ".join(read(item).split())
        if said and said not in seen and len(voters) < consensus_k:
            seen.add(said)
            voters.append(i)
    if len(voters) < 2:
        return voters
    from finetune.rouge import rouge_tokens

    agreement = _agreements([rouge_tokens(" ".join(read(items[i]).split())) for i in voters], [])
    return [voters[i] for i in sorted(range(len(voters)), key=lambda i: -agreement[i])]


@dataclass(frozen=True)
class EvidenceChoice:
    """Which retrieved answer leads a model's evidence: "retrieval" (the best-ranked) or
    "consensus" (the vote of the top `consensus_k`), and what each option scored."""

    evidence_order: Literal["retrieval", "consensus"]
    consensus_k: int
    scores: dict[int, float]  # vote size -> mean ROUGE-L F1 of the leading answer (1: no vote)


def choose_evidence_order(pairs: Sequence[dict[str, Any]], sizes: Sequence[int] = VOTE_SIZES) -> EvidenceChoice:
    """Pick, on `pairs` (validation pairs: "target" and their retrieved "evidence", best
    first), the evidence order whose leading answer agrees best (mean ROUGE-L F1) with the
    targets: the best-ranked answer (size 1), or the retrieval vote over each size. A tie
    goes to the smaller vote. Where retrieved answers are near-copies of each other's
    wording (Bitext) the vote over 20 wins; where the best-ranked answer is usually the
    right template and the rest belong to other topics (the demo), no vote does."""
    from finetune.rouge import rouge_l_f1, rouge_tokens

    if not pairs:
        raise ValueError("choosing the evidence order needs validation pairs")
    targets = [rouge_tokens(p["target"]) for p in pairs]
    scores: dict[int, float] = {}
    for size in sorted(set(sizes)):
        if size < 1:
            raise ValueError(f"vote sizes must be at least 1; got {size}")
        total = 0.0
        for pair, target in zip(pairs, targets, strict=True):
            evidence = list(pair.get("evidence", []))
            leading = vote_first(evidence, size)[0] if size > 1 and evidence else (evidence or [""])[0]
            total += rouge_l_f1(target, rouge_tokens(_item_text(leading)))
        scores[size] = round(total / len(pairs), 4)
    best = max(scores, key=lambda size: (scores[size], -size))
    if best == 1:
        return EvidenceChoice("retrieval", int(FALLBACK_GENERATION["consensus_k"]), scores)
    return EvidenceChoice("consensus", best, scores)


def _item_text(item: Any) -> str:
    return item["text"] if isinstance(item, dict) else str(item)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
