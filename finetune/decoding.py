"""Fast decoding for a GPT-2: the model's own weights, a preallocated KV cache, one small
forward per token, and several prompts in one batch.

    decoder = GPT2Decoder(model)                       # any transformers GPT2LMHeadModel
    for step in decoder.generate([ids_a, ids_b], max_new_tokens=96, eos_id=eor):
        ...                                            # step[i]: row i's new token, or None when done

Why not `model.generate`: for the small GPT-2 that csbot trains for CPUs, the arithmetic of a
decoding step is tiny and the time goes to Python around it (cache objects growing by
`torch.cat`, mask building, logits processors, stopping criteria), so a loop that writes
keys and values into tensors allocated once, and runs only the ops of the forward pass,
is several times faster. Batching concurrent prompts then costs little more than one.

Prompt lookup (`Sampling.lookup`): a reply that quotes its evidence is predictable from
the prompt, so each pass may also feed, per greedy row, the tokens that follow the reply's
last few tokens in its prompt, and keep those the row would have chosen one at a time, so
such a reply costs fewer passes. It pays only where a wider pass costs little more than a
narrow one: on 2 CPU cores it does not (docs/benchmarks.md, "Prompt lookup"), so it is off
by default. The tokens are greedy decoding's own (in float32
exactly; with int8 weights the activations' scale spans the whole pass, so a near-tie
can fall the other way, as batching other rows can already make it).

The forward pass is GPT-2's (pre-LayerNorm blocks, fused QKV `Conv1D`, learned positions,
tied LM head), read from the loaded `GPT2LMHeadModel`, so it serves a checkpoint trained
by csbot and `gpt2`/`distilgpt2` alike; `tests/finetune/test_decoding.py` checks it against
`model.generate` token for token. Configurations it does not reproduce (cross-attention,
layer-index scaling, other activations) raise `UnsupportedModelError`, and
`finetune.decoder.GPT2Generator` then uses `model.generate`.

torch is imported inside functions, so importing this module stays light.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from retrieval.errors import CsbotError

_ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}


class UnsupportedModelError(CsbotError):
    """A GPT-2 variant this decoder does not reproduce exactly (use `model.generate`)."""


@dataclass(frozen=True)
class Sampling:
    """Greedy when `top_p` is None; else nucleus sampling at `temperature`, seeded."""

    top_p: float | None = None
    temperature: float = 1.0
    seed: int | None = None
    repetition_penalty: float = 1.0
    # token ids never to choose, per prompt (one collection per row), e.g. numbers the
    # prompt does not contain: see `copy_only_tokens_not_in`
    banned: Sequence[Collection[int]] | None = None
    # with top_p: the first `greedy_rows` rows still take their most likely token, so one
    # batch holds the greedy reply and sampled alternatives to it
    greedy_rows: int = 0
    # copying from the prompt: where a row's last tokens (`copy_span`) also stand somewhere in its
    # `copy_sources` row (the prompt: question and evidence), each token that follows them
    # there gets `copy_bias` added to its logit, so a reply that has started quoting the
    # evidence tends to go on quoting it instead of drifting (see `CopyFollower`)
    copy_bias: float = 0.0
    copy_sources: Sequence[Sequence[int]] | None = None
    # how far back the copy bias aligns the reply with its source: the followers of the
    # longest of the reply's last `copy_span` ... 2 tokens that stands in the source, so a
    # quote of a templated passage goes on where it stands, not wherever its last two tokens
    # recur; 2: the last two tokens only
    copy_span: int = 2
    # source tokens that close a quotable passage (the evidence's separators): a reply whose
    # quote reaches one is nudged to end there (its follower counts as the end token)
    copy_ends: Collection[int] = ()
    # source tokens that open a quotable passage: the reply's first token is biased towards
    # the tokens that follow them (a reply that starts as a passage starts, then goes on
    # quoting it)
    copy_starts: Collection[int] = ()
    # numbers copied whole (`NumberPieces`; the rows' sources are `copy_sources`): inside a
    # number the reply writes, a digit glued on, and after a digit any token, may come only
    # where the number so far stands in the row's source followed by it, so a reply can
    # neither splice the "$4.99" and "$50.00" of its evidence into "$4.00" nor cut "$24.99"
    # to "$2"; a number that starts a word is `banned`'s business (copy-only tokens)
    numbers: NumberPieces | None = None
    # prompt lookup: each pass also feeds up to `lookup` draft tokens per greedy row, the
    # tokens that follow the reply's last few tokens where they stand in the row's prompt,
    # and keeps the drafts the row would have chosen itself (the same rules applied at each
    # position), so one forward pass can write several tokens of a reply that quotes its
    # evidence. The tokens are those of plain greedy decoding, up to float rounding of
    # the wider pass (see `GPT2Decoder.generate`); 0: off, one token per pass
    lookup: int = 0


class GPT2Decoder:
    """Greedy or nucleus decoding of a batch of prompts with a GPT-2's weights.

    `int8`: the matrix products run on int8 copies of the weights (per-channel, dynamic
    quantization of the activations, torch's x86/fbgemm kernels). A decoding step of a small
    GPT-2 on a CPU is bound by reading its weights (17 MB in float32 for 4 × 256 with a
    4,000-token vocabulary, far more than L2), so a quarter of the bytes makes a token
    about 1.7× faster; the logits move slightly, so greedy output can differ from the
    float32 model's (`csbot bench generation` counts how often). Where the kernels are
    missing the decoder stays in float32 (`self.int8` says which).
    """

    def __init__(self, model: Any, *, int8: bool = False):
        cfg = model.config
        if getattr(cfg, "add_cross_attention", False):
            raise UnsupportedModelError("GPT-2 with cross-attention is not supported by the fast decoder")
        if getattr(cfg, "scale_attn_by_inverse_layer_idx", False) or not getattr(cfg, "scale_attn_weights", True):
            raise UnsupportedModelError("non-standard attention scaling is not supported by the fast decoder")
        if cfg.activation_function not in _ACTIVATIONS:
            raise UnsupportedModelError(f"activation {cfg.activation_function!r} is not supported by the fast decoder")
        self.model = model
        self.n_layer, self.n_head, self.d = cfg.n_layer, cfg.n_head, cfg.n_embd
        self.head_dim = self.d // self.n_head
        self.eps = cfg.layer_norm_epsilon
        self.gelu = _ACTIVATIONS[cfg.activation_function]
        self.max_positions = cfg.n_positions
        t = model.transformer
        self.wte, self.wpe = t.wte.weight, t.wpe.weight
        self.blocks = [
            (
                b.ln_1.weight,
                b.ln_1.bias,
                b.attn.c_attn.weight,
                b.attn.c_attn.bias,
                b.attn.c_proj.weight,
                b.attn.c_proj.bias,
                b.ln_2.weight,
                b.ln_2.bias,
                b.mlp.c_fc.weight,
                b.mlp.c_fc.bias,
                b.mlp.c_proj.weight,
                b.mlp.c_proj.bias,
            )
            for b in t.h
        ]
        self.ln_f = (t.ln_f.weight, t.ln_f.bias)
        self.lm_head = model.lm_head.weight
        # a pointer model (finetune.pointer) mixes in copying from the earlier tokens: the
        # decoder then keeps every position's last hidden state and token beside the KV cache
        self.pointer = None
        if getattr(cfg, "csbot_pointer", False):
            self.pointer = (model.copy_query.weight, model.copy_gate.weight, model.copy_gate.bias)
        self.linears = _int8_linears(self.blocks, self.lm_head) if int8 else None
        self.int8 = self.linears is not None

    def _forward(self, ids, positions, keys, values, start: int, mask, sources=None, cols=None):
        """Logits of each row's last position; keys/values of `ids` written at `start`.

        cols (prompt lookup): [rows, width] columns each row's `ids` are written at instead,
        rows at different columns; attention then reads the first `start` columns through
        `mask`, and the result is the logits of every position, [rows, width, vocab].

        ids, positions: [rows, width]; keys/values: per layer [rows, heads, max_len, head_dim];
        mask: bool [rows, 1, width, start + width], True where a query may attend a key; None when no
        row is padded (plain causal attention: no mask to build and apply at every layer).
        sources (pointer models only): (hidden [rows, max_len, d], token ids [rows, max_len],
        key_ok [rows, max_len]); `ids` and their hidden states are written at `start`, and the
        result is the pointer mixture's log-probabilities instead of the LM head's logits.
        """
        import torch
        from torch.nn import functional

        rows, width = ids.shape  # prompts, and tokens fed per prompt
        d, heads, hd = self.d, self.n_head, self.head_dim
        h = functional.embedding(ids, self.wte) + functional.embedding(positions, self.wpe)
        end = start + width if cols is None else start
        if mask is None and width > 1 and start != 0:
            raise ValueError("a mask is needed to feed several tokens after a cached prefix")
        causal = mask is None and width > 1
        q8 = self.linears

        def linear(x, i, w, b):  # the layer's i-th matrix product: int8 or float32
            return q8[i](x) if q8 is not None else torch.addmm(b, x, w)

        for layer, (l1w, l1b, aw, ab, pw, pb, l2w, l2b, fw, fb, mw, mb) in enumerate(self.blocks):
            a = functional.layer_norm(h, (d,), l1w, l1b, self.eps)
            qkv = linear(a.reshape(rows * width, d), 4 * layer, aw, ab).view(rows, width, 3, heads, hd)
            q = qkv[:, :, 0].transpose(1, 2)
            if cols is None:
                keys[layer][:, :, start:end] = qkv[:, :, 1].transpose(1, 2)
                values[layer][:, :, start:end] = qkv[:, :, 2].transpose(1, 2)
            else:
                at = cols[:, None, :, None].expand(rows, heads, width, hd)
                keys[layer].scatter_(2, at, qkv[:, :, 1].transpose(1, 2))
                values[layer].scatter_(2, at, qkv[:, :, 2].transpose(1, 2))
            o = functional.scaled_dot_product_attention(
                q, keys[layer][:, :, :end], values[layer][:, :, :end], attn_mask=mask, is_causal=causal
            )
            h = h + linear(o.transpose(1, 2).reshape(rows * width, d), 4 * layer + 1, pw, pb).view(rows, width, d)
            m = functional.layer_norm(h, (d,), l2w, l2b, self.eps)
            m = functional.gelu(linear(m.reshape(rows * width, d), 4 * layer + 2, fw, fb), approximate=self.gelu)
            h = h + linear(m, 4 * layer + 3, mw, mb).view(rows, width, d)
        if cols is not None:
            normed = functional.layer_norm(h, (d,), self.ln_f[0], self.ln_f[1], self.eps).reshape(rows * width, d)
            return (q8[-1](normed) if q8 is not None else normed @ self.lm_head.T).view(rows, width, -1)
        if self.pointer is None:
            last = functional.layer_norm(h[:, -1], (d,), self.ln_f[0], self.ln_f[1], self.eps)
            return q8[-1](last) if q8 is not None else last @ self.lm_head.T
        from finetune.pointer import pointer_mixture

        source_hidden, token_ids, key_ok = sources
        normed = functional.layer_norm(h, (d,), self.ln_f[0], self.ln_f[1], self.eps)
        source_hidden[:, start:end] = normed
        token_ids[:, start:end] = ids
        # every earlier position s, with the token that followed it (s + 1 < end)
        has_next = key_ok[:, : end - 1] & key_ok[:, 1:end]
        return pointer_mixture(
            normed[:, -1:],
            token_ids[:, 1:end],
            source_hidden[:, : end - 1],
            has_next[:, None],
            *self.pointer,
            lm_logits=(lambda x: q8[-1](x)) if q8 is not None else (lambda x: x @ self.lm_head.T),
        )[:, 0]

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        eos_id: int,
        sampling: Sampling | None = None,
        min_new_tokens: int = 0,
    ) -> Iterator[list[int | None]]:
        """One list per decoding step: each row's new token id, or None once the row has
        ended (its `eos_id` is yielded as its last token). Stops when every row has ended or
        after `max_new_tokens` steps. Prompts are left-padded into one batch. Before
        `min_new_tokens` steps `eos_id` is never chosen (as `generate(min_new_tokens=...)`)."""
        import torch

        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        longest = max(len(p) for p in prompts)
        steps = min(max_new_tokens, self.max_positions - longest)
        if steps < 1:
            raise ValueError(
                f"a prompt of {longest} tokens leaves no room to generate in the model's {self.max_positions} positions"
            )
        sampling = sampling or Sampling()
        generator = None
        if sampling.top_p is not None and sampling.seed is not None:
            generator = torch.Generator().manual_seed(sampling.seed)

        # prompt lookup needs its own loop; a pointer model's sources and the repetition
        # penalty's history are kept per column, which that loop does not do
        lookup = sampling.lookup if self.pointer is None and sampling.repetition_penalty == 1.0 else 0
        with torch.inference_mode():
            # a pass writes up to `lookup` drafts past the last token: room for them
            batch, total = len(prompts), longest + steps + lookup
            pad = [longest - len(p) for p in prompts]
            ids = torch.zeros((batch, longest), dtype=torch.long)
            key_ok = torch.zeros((batch, total), dtype=torch.bool)
            for i, p in enumerate(prompts):
                ids[i, pad[i] :] = torch.tensor(list(p), dtype=torch.long)
                key_ok[i, pad[i] :] = True
            positions = (key_ok[:, :longest].long().cumsum(1) - 1).clamp(min=0)
            shape = (batch, self.n_head, total, self.head_dim)
            dtype = self.wte.dtype
            # with prompt lookup, attention spans columns some rows never wrote: masked, but
            # a masked NaN left in memory would still poison the weighted sum (0 * NaN)
            cache = torch.zeros if lookup else torch.empty
            keys = [cache(shape, dtype=dtype) for _ in range(self.n_layer)]
            values = [cache(shape, dtype=dtype) for _ in range(self.n_layer)]
            padded = any(pad)
            mask = None
            if padded:
                causal = torch.ones((longest, longest), dtype=torch.bool).tril()
                mask = causal[None, None] & key_ok[:, None, None, :longest]
                # a padded query row attends nothing: let it see itself so softmax stays finite
                mask |= torch.eye(longest, dtype=torch.bool)[None, None]
            sources = None
            if self.pointer is not None:
                sources = (
                    torch.zeros((batch, total, self.d), dtype=dtype),
                    torch.zeros((batch, total), dtype=torch.long),
                    key_ok,
                )
            logits = self._forward(ids, positions, keys, values, 0, mask, sources)
            seen = ids if sampling.repetition_penalty != 1.0 else None
            banned = None
            if sampling.banned is not None:
                banned = torch.zeros((batch, logits.shape[-1]), dtype=torch.bool)
                for i, row in enumerate(sampling.banned):
                    if row:
                        banned[i, list(row)] = True
            next_pos = positions[:, -1] + 1
            if lookup:
                yield from self._lookup_steps(
                    prompts, logits, keys, values, key_ok, next_pos, longest, steps, eos_id,
                    sampling, generator, banned, min_new_tokens,
                )  # fmt: skip
                return
            done = [False] * batch
            follows = None
            if sampling.copy_bias and sampling.copy_sources is not None:
                follows = [
                    CopyFollower(src, row, sampling.copy_span, sampling.copy_ends, eos_id, sampling.copy_starts)
                    for src, row in zip(sampling.copy_sources, prompts, strict=True)
                ]
            runs = None
            if sampling.numbers is not None and sampling.copy_sources is not None:
                runs = [
                    NumberRun(src, sampling.numbers, row)
                    for src, row in zip(sampling.copy_sources, prompts, strict=True)
                ]
            for step in range(steps):
                if step < min_new_tokens:
                    logits[:, eos_id] = float("-inf")
                if follows is not None:
                    where = [(i, t) for i in range(batch) for t in follows[i].after()]
                    if where:
                        rows_at, cols_at = zip(*where, strict=True)
                        logits[list(rows_at), list(cols_at)] += sampling.copy_bias
                if banned is not None:
                    logits = logits.masked_fill(banned, float("-inf"))
                if runs is not None:
                    for i, run in enumerate(runs):
                        run.restrict(logits[i])
                token = _pick(logits, sampling, generator, seen)
                if follows is not None:
                    for follow, t in zip(follows, token.tolist(), strict=True):
                        follow.push(int(t))
                if runs is not None:
                    for run, t in zip(runs, token.tolist(), strict=True):
                        run.push(int(t))
                out: list[int | None] = []
                for i in range(batch):
                    if done[i]:
                        out.append(None)
                        continue
                    t = int(token[i])
                    out.append(t)
                    if t == eos_id:
                        done[i] = True
                yield out
                if all(done) or step == steps - 1:
                    return
                col = longest + step
                key_ok[:, col] = True
                if seen is not None:
                    seen = torch.cat([seen, token[:, None]], 1)
                logits = self._forward(
                    token[:, None],
                    next_pos[:, None],
                    keys,
                    values,
                    col,
                    key_ok[:, None, None, : col + 1] if padded else None,
                    sources,
                )
                next_pos = next_pos + 1

    def _lookup_steps(
        self, prompts, logits, keys, values, key_ok, next_pos, longest: int, steps: int, eos_id: int,
        sampling: Sampling, generator, banned, min_new_tokens: int,
    ) -> Iterator[list[int | None]]:  # fmt: skip
        """`generate` after the prompt's pass, with prompt lookup (`Sampling.lookup`).

        Each pass feeds every live row its last chosen token and up to `lookup` drafts (the
        prompt's continuation of the row's last tokens, `_Lookup`); the row then chooses at
        each fed position as one-token decoding would (end token, copy bias, banned tokens,
        numbers copied whole), keeps the drafts it agrees with and its own choice after
        them. Rows keep different numbers of tokens, so each writes its keys and values at
        its own columns; a column of a refused draft stays masked until overwritten. A row
        that ends leaves the batch. One list is yielded per token position, None where a
        row wrote fewer tokens in this pass or has ended."""
        import torch

        batch, k = len(prompts), sampling.lookup
        one_row = dataclasses.replace(sampling, greedy_rows=0)  # a sampled row, picked alone
        greedy = [sampling.top_p is None or i < sampling.greedy_rows for i in range(batch)]
        drafts = [_Lookup(p) if greedy[i] else None for i, p in enumerate(prompts)]
        tails = [list(p[-_Lookup.LONGEST :]) for p in prompts]
        follows = runs = None
        if sampling.copy_bias and sampling.copy_sources is not None:
            follows = [
                CopyFollower(src, row, sampling.copy_span, sampling.copy_ends, eos_id, sampling.copy_starts)
                for src, row in zip(sampling.copy_sources, prompts, strict=True)
            ]
        if sampling.numbers is not None and sampling.copy_sources is not None:
            runs = [
                NumberRun(src, sampling.numbers, row) for src, row in zip(sampling.copy_sources, prompts, strict=True)
            ]
        live = list(range(batch))  # the original row of each row of the tensors
        ends = [longest] * batch  # per tensor row: the column its next fed token goes to
        written = [0] * batch  # per original row: tokens chosen so far
        done = [False] * batch
        fed: list[list[int]] = [[] for _ in range(batch)]  # per tensor row: drafts fed last pass
        at = logits[:, None]  # [rows, positions, vocab]: what each fed position predicts
        first_pass = True
        while True:
            chosen: list[list[int]] = [[] for _ in range(batch)]
            for r, i in enumerate(live):
                for j in range(len(fed[r]) + 1):
                    x = at[r, j].clone()  # this row's rules, as in one-token decoding
                    if written[i] < min_new_tokens:
                        x[eos_id] = float("-inf")
                    if follows is not None:
                        after = follows[i].after()
                        if after:
                            x[list(after)] += sampling.copy_bias
                    if banned is not None:
                        x.masked_fill_(banned[i], float("-inf"))
                    if runs is not None:
                        runs[i].restrict(x)
                    t = int(x.argmax()) if greedy[i] else int(_pick(x[None], one_row, generator, None)[0])
                    chosen[i].append(t)
                    written[i] += 1
                    tails[i] = [*tails[i][1:], t]
                    if follows is not None:
                        follows[i].push(t)
                    if runs is not None:
                        runs[i].push(t)
                    if t == eos_id or written[i] >= steps:
                        done[i] = True
                        break
                    if j == len(fed[r]) or t != fed[r][j]:
                        break
            for j in range(max(len(c) for c in chosen)):
                yield [c[j] if j < len(c) else None for c in chosen]
            if all(done):
                return
            # the chosen tokens' keys and values are in the cache from the pass just made
            # (all but each row's last), and refused drafts' columns stay masked
            for r, i in enumerate(live):
                kept = 0 if first_pass else len(chosen[i])
                key_ok[r, ends[r] : ends[r] + kept] = True
                ends[r] += kept
                next_pos[r] += kept
            first_pass = False
            if any(done[i] for i in live):
                keep = [r for r, i in enumerate(live) if not done[i]]
                where = torch.tensor(keep)
                keys = [x.index_select(0, where) for x in keys]
                values = [x.index_select(0, where) for x in values]
                key_ok, next_pos = key_ok.index_select(0, where), next_pos.index_select(0, where)
                live, ends = [live[r] for r in keep], [ends[r] for r in keep]
            fed = [
                look.after(tails[i], min(k, steps - written[i] - 1)) if (look := drafts[i]) is not None else []
                for i in live
            ]
            width = 1 + max(len(f) for f in fed)
            rows = len(live)
            ids = torch.empty((rows, width), dtype=torch.long)
            for r, i in enumerate(live):
                row = [chosen[i][-1], *fed[r]]
                ids[r] = torch.tensor(row + [row[-1]] * (width - len(row)))
            offsets = torch.arange(width)
            start = torch.tensor(ends)
            cols = start[:, None] + offsets
            positions = (next_pos[:, None] + offsets).clamp(max=self.max_positions - 1)
            span = max(ends) + width
            column = torch.arange(span)
            history = key_ok[:, None, :span] & (column < start[:, None])[:, None]
            block = (column[None, None] >= start[:, None, None]) & (column[None, None] <= cols[:, :, None])
            at = self._forward(ids, positions, keys, values, span, (history | block)[:, None], cols=cols)


@dataclass(eq=False)
class SlotCall:
    """One call's rows in `DecodingSlots`: what `GPT2Decoder.generate` would decode for its
    prompts alone, written step by step while other calls' rows share the passes.

    `tokens[i]`: row i's new tokens so far (its `eos_id` last once it ended); `latest`: what
    the last step gave each row (None for a row that had already ended), as one step of
    `generate` yields; `finished`: every row ended, or the call reached its token limit."""

    prompts: list[list[int]]
    sampling: Sampling
    eos_id: int
    limit: int  # tokens at most: max_new_tokens, or less where the longest prompt leaves less room
    longest: int
    tokens: list[list[int]]
    done: list[bool]
    latest: list[int | None] = dataclasses.field(default_factory=list)
    steps: int = 0  # tokens picked so far (the prompt's pass picks the first)
    finished: bool = False
    start: int = 0  # the slot of its first row; its rows are the next len(prompts)
    # the decoder's state for the call: last picked tokens, next positions, per-row rules
    _last: Any = None
    _next_pos: Any = None
    _banned: Any = None
    _runs: list[NumberRun] | None = None
    _generator: Any = None


class DecodingSlots:
    """Continuous (iteration-level) batching on a `GPT2Decoder`: calls join the running
    batch between two steps and leave as soon as their own rows have ended.

        slots = DecodingSlots(decoder, rows=20)
        call = slots.add(prompts, max_new_tokens=96, eos_id=eor, sampling=Sampling(...))
        while not call.finished:
            slots.step()                # one token for every row of every call in the slots

    Why: batching whole calls (`generate` over several turns' prompts) makes a turn that
    arrives during a pass wait for all of it, and every row in it wait for the longest. Here a
    new call's prompts run their own pass into free rows of one preallocated KV cache at the
    next step, and a call that ends hands its rows back at once (the calls after it move
    down, so the live rows stay one block). Each call keeps its own columns (its prompts
    left-padded to its longest, then one column a step), positions, token rules and seeded
    generator, so its tokens are those `generate` gives its prompts alone, up to float
    rounding (with int8 weights each pass quantizes the activations of all its rows together,
    as `generate` already does over one call's rows).

    Rules supported: greedy and nucleus sampling (`top_p`, `greedy_rows`), `banned`,
    `numbers`. `supports(sampling)` says no for the others (the copy bias, a repetition
    penalty, prompt lookup) and for pointer models: decode those with `generate`.
    Not thread-safe: one thread owns the slots (the server's decoding thread).
    """

    def __init__(self, decoder: GPT2Decoder, *, rows: int):
        import torch

        if rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        self.decoder, self.rows = decoder, rows
        self.length = decoder.max_positions
        shape = (rows, decoder.n_head, self.length, decoder.head_dim)
        dtype = decoder.wte.dtype
        # empty: the memory is the operating system's until a row is first used (a GPT-2 of
        # 12 × 768 with 1,024 positions needs 75 MB a row); `add` zeroes a row before it is
        # used, as a masked column still enters attention's weighted sum (0 * NaN is NaN)
        self.keys = [torch.empty(shape, dtype=dtype) for _ in range(decoder.n_layer)]
        self.values = [torch.empty(shape, dtype=dtype) for _ in range(decoder.n_layer)]
        self._zeroed = 0  # rows below this were zeroed once; rows only ever hold finite values after
        self.key_ok = torch.zeros((rows, self.length), dtype=torch.bool)
        self.calls: list[SlotCall] = []

    @property
    def used(self) -> int:
        """Rows held by the calls in the slots."""
        return sum(len(c.prompts) for c in self.calls)

    @property
    def free(self) -> int:
        return self.rows - self.used

    def supports(self, sampling: Sampling) -> bool:
        """Whether calls with these rules can decode here (else: `GPT2Decoder.generate`)."""
        return (
            self.decoder.pointer is None
            and not sampling.copy_bias
            and sampling.repetition_penalty == 1.0
            and not sampling.lookup
        )

    def add(
        self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, eos_id: int, sampling: Sampling
    ) -> SlotCall:
        """Run the prompts' pass into free rows and pick each row's first token. The call
        is returned `finished` at once when that token ends every row or its limit is 1;
        else it decodes on with every `step`. Raises ValueError, leaving the slots as they
        were, for what `generate` refuses, for rules `supports` refuses, and for more rows
        than are free."""
        import torch

        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        if not self.supports(sampling):
            raise ValueError(
                "these decoding rules need GPT2Decoder.generate (copy bias, repetition penalty, lookup, pointer)"
            )
        k = len(prompts)
        if k > self.free:
            raise ValueError(f"{k} rows asked, {self.free} of {self.rows} free")
        longest = max(len(p) for p in prompts)
        limit = min(max_new_tokens, self.length - longest)
        if limit < 1:
            raise ValueError(
                f"a prompt of {longest} tokens leaves no room to generate in the model's {self.length} positions"
            )
        first = self.used
        rows = slice(first, first + k)
        if first + k > self._zeroed:
            for t in (*self.keys, *self.values):
                t[self._zeroed : first + k].zero_()
            self._zeroed = first + k
        pad = [longest - len(p) for p in prompts]
        ids = torch.zeros((k, longest), dtype=torch.long)
        self.key_ok[rows] = False
        ok = self.key_ok[rows]
        for i, p in enumerate(prompts):
            ids[i, pad[i] :] = torch.tensor(list(p), dtype=torch.long)
            ok[i, pad[i] : longest] = True
        positions = (ok[:, :longest].long().cumsum(1) - 1).clamp(min=0)
        mask = None
        if any(pad):
            causal = torch.ones((longest, longest), dtype=torch.bool).tril()
            mask = causal[None, None] & ok[:, None, None, :longest]
            mask |= torch.eye(longest, dtype=torch.bool)[None, None]  # a padded query attends itself
        call = SlotCall(
            prompts=[list(p) for p in prompts],
            sampling=sampling,
            eos_id=eos_id,
            limit=limit,
            longest=longest,
            tokens=[[] for _ in prompts],
            done=[False] * k,
            start=first,
        )
        if sampling.top_p is not None and sampling.seed is not None:
            call._generator = torch.Generator().manual_seed(sampling.seed)
        if sampling.banned is not None:
            call._banned = torch.zeros((k, self.decoder.wte.shape[0]), dtype=torch.bool)
            for i, banned in enumerate(sampling.banned):
                if banned:
                    call._banned[i, list(banned)] = True
        if sampling.numbers is not None and sampling.copy_sources is not None:
            call._runs = [
                NumberRun(src, sampling.numbers, row) for src, row in zip(sampling.copy_sources, prompts, strict=True)
            ]
        call._next_pos = positions[:, -1] + 1
        with torch.inference_mode():
            logits = self.decoder._forward(
                ids, positions, [t[rows] for t in self.keys], [t[rows] for t in self.values], 0, mask
            )
            self._choose(call, logits)
        if not call.finished:
            self.calls.append(call)
        return call

    def step(self) -> list[SlotCall]:
        """One token for every row in the slots; returns the calls that finished with it
        (their rows are free again)."""
        import torch

        if not self.calls:
            return []
        n = self.used
        ids = torch.cat([c._last for c in self.calls])[:, None]
        positions = torch.cat([c._next_pos for c in self.calls])[:, None]
        # the token picked last goes in the column after the call's last one
        cols = torch.tensor([[c.longest + c.steps - 1] for c in self.calls for _ in c.prompts])
        self.key_ok[torch.arange(n), cols[:, 0]] = True
        span = int(cols.max()) + 1
        with torch.inference_mode():
            logits = self.decoder._forward(
                ids,
                positions,
                [t[:n] for t in self.keys],
                [t[:n] for t in self.values],
                span,
                self.key_ok[:n, None, None, :span],
                cols=cols,
            )[:, 0]
            for call in self.calls:
                call._next_pos = call._next_pos + 1
                self._choose(call, logits[call.start : call.start + len(call.prompts)])
        ended = [c for c in self.calls if c.finished]
        if ended:
            self._release()
        return ended

    def cancel(self, call: SlotCall) -> None:
        """Stop decoding `call` (its caller went away): its rows are free at once."""
        if call in self.calls:
            call.finished = True
            self._release()

    def clear(self) -> list[SlotCall]:
        """Drop every call (after a failed step): they are returned, unfinished."""
        dropped, self.calls = self.calls, []
        self.key_ok[:] = False
        return dropped

    def _choose(self, call: SlotCall, logits: Any) -> None:
        """The rules and the pick of one step of `GPT2Decoder.generate`, for one call."""
        if call._banned is not None:
            logits = logits.masked_fill(call._banned, float("-inf"))
        if call._runs is not None:
            for i, run in enumerate(call._runs):
                run.restrict(logits[i])
        token = _pick(logits, call.sampling, call._generator, None)
        picked = token.tolist()
        if call._runs is not None:
            for run, t in zip(call._runs, picked, strict=True):
                run.push(int(t))
        latest: list[int | None] = []
        for i, t in enumerate(picked):
            if call.done[i]:
                latest.append(None)
                continue
            latest.append(int(t))
            call.tokens[i].append(int(t))
            call.done[i] = t == call.eos_id
        call.latest, call._last, call.steps = latest, token, call.steps + 1
        call.finished = all(call.done) or call.steps >= call.limit

    def _release(self) -> None:
        """Hand back the rows of finished calls: the calls after them move down."""
        keep, at = [], 0
        for call in self.calls:
            if call.finished:
                continue
            k = len(call.prompts)
            if call.start != at:
                width = call.longest + call.steps  # the columns it has written
                src, dst = slice(call.start, call.start + k), slice(at, at + k)
                for t in (*self.keys, *self.values):
                    t[dst, :, :width] = t[src, :, :width].clone()  # the blocks may overlap
                self.key_ok[dst] = self.key_ok[src].clone()
                call.start = at
            keep.append(call)
            at += k
        self.key_ok[at:] = False
        self.calls = keep


def _int8_linears(blocks, lm_head):
    """Dynamically quantized int8 copies of every block's four matrix products and of the
    LM head, in `_forward`'s order; None off x86 (torch's quantized engine there is another
    one, and we have not measured it)."""
    import warnings

    import torch
    from torch import nn

    if torch.backends.quantized.engine not in ("x86", "fbgemm"):  # measured on x86 only
        return None

    def linear(w, b):  # GPT-2's Conv1D keeps its weight as [in, out]; nn.Linear wants [out, in]
        layer = nn.Linear(w.shape[0], w.shape[1], bias=b is not None)
        layer.weight.data = w.detach().T.contiguous()
        if b is not None:
            layer.bias.data = b.detach().clone()
        return layer

    layers = nn.ModuleList()
    for _, _, aw, ab, pw, pb, _, _, fw, fb, mw, mb in blocks:
        layers.extend([linear(aw, ab), linear(pw, pb), linear(fw, fb), linear(mw, mb)])
    layers.append(linear(lm_head.T, None))
    with warnings.catch_warnings():  # torch.ao's eager API is deprecated upstream in favour of torchao
        warnings.simplefilter("ignore")
        try:
            spec = {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
            return torch.ao.quantization.quantize_dynamic(layers, spec, dtype=torch.qint8).eval()
        except (RuntimeError, AttributeError, ImportError):
            return None


def _pick(logits, sampling: Sampling, generator, seen):
    import torch

    if seen is not None:
        picked = logits.gather(1, seen)
        logits = logits.scatter(
            1, seen, torch.where(picked > 0, picked / sampling.repetition_penalty, picked * sampling.repetition_penalty)
        )
    if sampling.top_p is None:
        return logits.argmax(-1)
    probs = torch.softmax(logits / max(sampling.temperature, 1e-5), -1)
    sorted_p, order = probs.sort(-1, descending=True)
    # keep the smallest head whose mass reaches top_p (always at least the top token)
    drop = sorted_p.cumsum(-1) - sorted_p > sampling.top_p
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    choice = torch.multinomial(sorted_p, 1, generator=generator)
    token = order.gather(1, choice).squeeze(1)
    if sampling.greedy_rows:
        token[: sampling.greedy_rows] = logits[: sampling.greedy_rows].argmax(-1)
    return token


class _Lookup:
    """Draft tokens for prompt lookup: where a reply's last tokens (the longest of its last
    3, 2 or 1 that the prompt holds) stand in the prompt, the tokens that follow them there,
    at their last place (the evidence comes after the conversation)."""

    LONGEST = 3

    def __init__(self, prompt: Sequence[int]):
        self.prompt = list(prompt)
        self.follow: dict[tuple[int, ...], int] = {}  # n-gram -> index of the token after its last place
        for n in range(1, self.LONGEST + 1):
            for end in range(n, len(self.prompt)):
                self.follow[tuple(self.prompt[end - n : end])] = end

    def after(self, tail: Sequence[int], most: int) -> list[int]:
        """Up to `most` tokens that may follow `tail` (the prompt and reply so far, last)."""
        if most < 1:
            return []
        for n in range(min(self.LONGEST, len(tail)), 0, -1):
            end = self.follow.get(tuple(tail[-n:]))
            if end is not None:
                return self.prompt[end : end + most]
        return []


class CopyFollower:
    """One row's copy bias: the tokens that follow, in `source`, the longest of the reply's
    last `span` ... 2 tokens that stands there (`Sampling.copy_span`). A follower in `ends`
    (a separator closing an evidence passage) counts as `eos_id`: the quote ends the reply.
    Before the reply's first token, the bias goes to the tokens that follow one of `starts`
    (the openings of the passages). `written`: the tokens before the reply (the prompt)."""

    def __init__(
        self,
        source: Sequence[int],
        written: Sequence[int],
        span: int,
        ends: Collection[int],
        eos_id: int,
        starts: Collection[int] = (),
    ):
        if span < 2:
            raise ValueError(f"copy_span must be at least 2 tokens; got {span}")
        self.span = span
        follows: dict[tuple[int, ...], dict[int, None]] = {}
        for n in range(2, span + 1):
            for end in range(n, len(source)):
                nxt = eos_id if source[end] in ends else source[end]
                follows.setdefault(tuple(source[end - n : end]), {})[nxt] = None
        self.follows = {gram: tuple(nxt) for gram, nxt in follows.items()}
        self.tail = list(written[-span:])
        # each passage's first token, with the token that opens the passage before it
        self.openings: dict[int, int] = {}
        for a, b in itertools.pairwise(source):
            if a in starts:
                self.openings.setdefault(b, a)
        self.started = False

    def after(self) -> tuple[int, ...]:
        """The tokens the bias goes to now."""
        if not self.started and self.openings:
            return tuple(self.openings)
        for n in range(min(self.span, len(self.tail)), 1, -1):
            nxt = self.follows.get(tuple(self.tail[-n:]))
            if nxt:
                return nxt
        return ()

    def push(self, token: int) -> None:
        """The row chose `token`."""
        if not self.started and token in self.openings:  # the quote goes on from that passage
            self.tail = [self.openings[token], token]
        else:
            self.tail = [*self.tail[1 - self.span :], token]
        self.started = True


@dataclass(frozen=True)
class NumberPieces:
    """The vocabulary's tokens by their part in a number: `digits` hold a digit; `joints`
    are made of digits and "$.,:-/%" only; `glued` join the token before them (no leading
    space). A token of either set starts a number, or goes on with it when glued on."""

    digits: frozenset[int]
    joints: frozenset[int]
    glued: frozenset[int]

    @classmethod
    def of(cls, tokenizer: Any) -> NumberPieces:
        marks = set("0123456789$.,:-/%")
        digits, joints, glued = set(), set(), set()
        for tok, i in tokenizer.get_vocab().items():
            text = tokenizer.convert_tokens_to_string([tok])
            if any(c.isdigit() for c in text):
                digits.add(i)
            if text.strip() and set(text.strip()) <= marks:
                joints.add(i)
            if text and not text[0].isspace():
                glued.add(i)
        return cls(frozenset(digits), frozenset(joints), frozenset(glued & (digits | joints)))


class NumberRun:
    """One row's number in progress, and what may follow it: where the reply's number so far
    (its tokens since the number started) also stands in `source`, the tokens that follow it
    there. Inside a number, a glued-on digit must be one of them, and after a digit every
    token must (a number ends where it ends in the source), as after a mark that the source
    only ever follows with more of the number; where the number so far stands nowhere in
    the source, glued-on digits are refused and the rest is free."""

    def __init__(self, source: Sequence[int], pieces: NumberPieces, written: Sequence[int] = ()):
        self.source, self.pieces = list(source), pieces
        self.at: dict[int, list[int]] = {}
        for i, t in enumerate(self.source[:-1]):
            self.at.setdefault(t, []).append(i)
        self.run: list[int] = []
        for t in written[-32:]:  # a row that goes on with a reply goes on with its number
            self.push(t)

    def push(self, token: int) -> None:
        """The row chose `token`."""
        p = self.pieces
        if token in p.digits or token in p.joints:
            self.run = [*self.run, token] if self.run and token in p.glued else [token]
        else:
            self.run = []

    def following(self) -> set[int]:
        """The tokens that follow the number so far where it stands in the source."""
        n, run, src = len(self.run), self.run, self.source
        return {src[i + 1] for i in self.at.get(run[-1], ()) if i + 1 >= n and src[i + 1 - n : i + 1] == run}

    def restrict(self, logits: Any) -> None:
        """Set to -inf, in this row's `logits`, the tokens the number so far may not take."""
        if not self.run:
            return
        nxt, p = self.following(), self.pieces
        # after a digit, or after a mark where the source's number never ends ("$24." of
        # "$24.99"), the number goes on as it does there; after the "1." of "1. Log in" the
        # next word is the reply's own
        held = self.run[-1] in p.digits or (any(t in p.digits for t in self.run) and nxt <= p.glued)
        if nxt and held:
            keep = logits.new_full(logits.shape, float("-inf"))
            keep[sorted(nxt)] = 0.0
            logits += keep
        else:
            cut = sorted((p.glued & p.digits) - nxt)
            if cut:
                logits[cut] = float("-inf")


def number_tokens(tokenizer: Any) -> frozenset[int]:
    """Ids of the vocabulary's tokens that contain a digit."""
    return frozenset(
        i
        for tok, i in tokenizer.get_vocab().items()
        if any(c.isdigit() for c in tokenizer.convert_tokens_to_string([tok]))
    )


def placeholder_tokens(tokenizer: Any) -> frozenset[int]:
    """Ids of the vocabulary's tokens that open a `{{Placeholder}}` (their text holds "{{").

    The customer's own values are no exception: a reply to "where is my order?" that writes
    `{{Order Number}}` or "call us at `{{Phone Number}}`" states a value nobody gave (the
    slot step would fill in the customer's own number, or ask for it). When the customer did
    give it, the prompt shows it masked, and the reply may copy it."""
    return frozenset(i for tok, i in tokenizer.get_vocab().items() if "{{" in tokenizer.convert_tokens_to_string([tok]))


def copy_only_tokens_not_in(prompt_ids: Sequence[int], copy_only: frozenset[int]) -> frozenset[int]:
    """The copy-only tokens a reply to this prompt may not use: all but the prompt's own.

    Order numbers, prices, dates and phone numbers are digits, and `{{Placeholders}}` stand
    for facts (a phone number, the opening hours); a reply that can only copy such tokens from
    the conversation and the evidence cannot make one up (the grounding guard still checks
    what copying can assemble)."""
    return copy_only - frozenset(prompt_ids)
