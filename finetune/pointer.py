"""A GPT-2 that can copy: each next token is drawn from a mixture of the vocabulary and the
tokens the text already holds (a pointer-sentinel mixture, Merity et al. 2016, with the
gate of See et al. 2017).

    P(w) = g · softmax(lm_head(h_t))[w] + (1 − g) · Σ_{s < t, x_{s+1} = w} a_ts
    a_t  = softmax_s( (W_q h_t) · h_s / √d )        g = σ(w_g · h_t + b_g)

h is the last layer's hidden state (after the final LayerNorm), x the tokens. The pointer
copies what *followed* an earlier position whose state resembles the current one (an
induction head's rule: both states predict a next token, so they are alike where the text
repeats itself), and the query's own position has nothing after it yet. Why: a small model
trained from scratch on a few thousand replies learns slowly to reproduce a 30-word passage
of its evidence token by token through the vocabulary alone (it drifts, repeats list
items, answers the previous topic); pointing at the place it is quoting makes copying one
learned step. The text it may copy is everything before the token: the conversation, the
evidence and the reply so far, the same in pretraining (plain text), fine-tuning and
decoding.

`forward` returns the log of the mixture as `logits`, so everything that takes a softmax or
an argmax of them (the Trainer's loss and label smoothing, greedy and nucleus choice) works
unchanged. Decoding runs on `finetune.decoding.GPT2Decoder`, which keeps every position's
hidden state for the pointer; transformers' `generate` (whose cache hands `forward` only
the newest token) would lose what there is to point at, so this model refuses it.

The flag is `config.csbot_pointer` (saved in config.json): `finetune.model.model_class`
picks this class for such a checkpoint, so a pointer model is never loaded without its
pointer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from transformers import GPT2LMHeadModel
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions

from retrieval.errors import CsbotError

POINTER_FLAG = "csbot_pointer"
# the gate starts at σ(2) ≈ 0.88 on the vocabulary: the first steps train a language model,
# and the pointer takes over where it pays
GATE_BIAS_START = 2.0


class PointerNeedsFastDecoderError(CsbotError):
    """A pointer model asked to decode through transformers' `generate`."""


def pointer_mixture(
    hidden: torch.Tensor,
    source_ids: torch.Tensor,
    source_hidden: torch.Tensor,
    source_ok: torch.Tensor,
    query: torch.Tensor,
    gate_weight: torch.Tensor,
    gate_bias: torch.Tensor,
    lm_logits: Callable[[torch.Tensor], torch.Tensor],
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log-probabilities of the mixture at each query position: [B, Q, V], or [N, V] for
    the N positions where `keep` is True.

    hidden: [B, Q, d] the queries' hidden states; source_hidden: [B, S, d] the states pointed
    at; source_ids: [B, S] the token each one copies (the token that followed it);
    source_ok: bool [B, Q, S], True where query q may point at source s; lm_logits: the LM
    head, hidden states to logits. A query with no source takes the vocabulary alone.
    Written once, for training (Q = S) and decoding (Q = 1) alike. `keep` (bool [B, Q]):
    the positions whose distribution is needed (the labelled ones, in training): the
    vocabulary-sized work, most of this function's, is done for those alone.
    """
    d = hidden.shape[-1]
    scores = (hidden @ query.T) @ source_hidden.transpose(1, 2) / math.sqrt(d)
    # a finite floor, and the mask applied again after the softmax: a query with no source
    # (a padding position) copies nothing, with no NaN on the way forward or back
    scores = scores.masked_fill(~source_ok, torch.finfo(scores.dtype).min)
    attention = torch.softmax(scores, -1) * source_ok
    rows, queries = hidden.shape[:2]
    every_position = keep is None
    if keep is None:
        keep = torch.ones((rows, queries), dtype=torch.bool, device=hidden.device)
    row_of = torch.arange(rows, device=hidden.device)[:, None].expand(rows, queries)[keep]
    kept_hidden, kept_attention = hidden[keep], attention[keep]  # [N, d], [N, S]
    logits = lm_logits(kept_hidden).float()
    copy = torch.zeros_like(logits)
    copy.scatter_add_(1, source_ids[row_of], kept_attention)
    gate_logit = kept_hidden @ gate_weight.T + gate_bias  # [N, 1]
    has_source = source_ok[keep].any(-1, keepdim=True)
    gate_logit = torch.where(has_source, gate_logit, torch.full_like(gate_logit, 80.0))
    # log(g·p_vocab + (1−g)·p_copy), kept in log space so a vocabulary token far from the
    # pointer's sources still has a finite, exact log-probability
    from_vocab = functional.logsigmoid(gate_logit) + torch.log_softmax(logits, -1)
    from_copy = functional.logsigmoid(-gate_logit) + torch.log(copy.clamp_min(1e-30))
    mixed = torch.logaddexp(from_vocab, from_copy)
    return mixed.view(rows, queries, -1) if every_position else mixed


class PointerGPT2LMHeadModel(GPT2LMHeadModel):
    """`GPT2LMHeadModel` plus a pointer over the earlier tokens (see the module's note)."""

    def __init__(self, config):
        super().__init__(config)
        d = config.n_embd
        self.copy_query = nn.Linear(d, d, bias=False)
        self.copy_gate = nn.Linear(d, 1)
        nn.init.normal_(self.copy_query.weight, std=config.initializer_range)
        nn.init.zeros_(self.copy_gate.weight)
        nn.init.constant_(self.copy_gate.bias, GATE_BIAS_START)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        num_items_in_batch: Any = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithCrossAttentions:
        if past_key_values is not None or use_cache or input_ids is None:
            raise PointerNeedsFastDecoderError(
                "a pointer GPT-2 decodes with csbot's fast decoder (finetune.decoding.GPT2Decoder: greedy "
                "or sampled candidates), not transformers' generate; set decoding to greedy"
            )
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
        hidden = out.last_hidden_state  # after ln_f
        width = input_ids.shape[1]
        # position s copies the token at s + 1, for the queries after s
        next_ids = functional.pad(input_ids[:, 1:], (0, 1))
        real = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        has_next = real & functional.pad(real[:, 1:], (0, 1))
        before = torch.ones((width, width), dtype=torch.bool, device=input_ids.device).tril(-1)
        source_ok = before[None] & has_next[:, None, :]
        mixture = partial(
            pointer_mixture,
            hidden,
            next_ids,
            # the states pointed at are the language model's, not trained for the pointer:
            # on the demo round this gave a lower validation loss than letting the pointer's
            # gradient reshape them (1.749 against 1.781)
            hidden.detach(),
            source_ok,
            self.copy_query.weight,
            self.copy_gate.weight,
            self.copy_gate.bias,
            self.lm_head,
        )
        if labels is None:
            return CausalLMOutputWithCrossAttentions(logits=mixture())
        # the loss needs the distribution at the labelled positions only (a reply is a
        # fraction of its example), so only those get the vocabulary-sized work; no logits
        # are returned then (the Trainer reads the loss alone, and label smoothing calls
        # without labels)
        target = functional.pad(labels[:, 1:], (0, 1), value=-100)
        counted = target != -100
        log_probs = mixture(keep=counted)  # [N, V]
        picked = log_probs.gather(1, target[counted][:, None]).squeeze(1)
        total = -picked.sum()
        loss = total / (num_items_in_batch if num_items_in_batch is not None else counted.sum().clamp_min(1))
        return CausalLMOutputWithCrossAttentions(loss=loss)


def pointer_config(config: Any) -> Any:
    """`config` (a GPT2Config) marked as a pointer model's."""
    setattr(config, POINTER_FLAG, True)
    config.architectures = [PointerGPT2LMHeadModel.__name__]
    return config


def is_pointer_checkpoint(path: str | Path) -> bool:
    """Whether the checkpoint in directory `path` is a pointer model (its config.json says so)."""
    config = Path(path).expanduser() / "config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get(POINTER_FLAG))
    except ValueError:
        return False
