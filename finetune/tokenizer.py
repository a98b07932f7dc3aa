"""Our own byte-level BPE for the `scratch` base, trained with the `tokenizers` library.

Byte-level (like GPT-2) so any text, emoji and typos included, encodes without an unknown
token. It is saved as a transformers `PreTrainedTokenizerFast`, so `AutoTokenizer
.from_pretrained(dir)` loads ours and any HF GPT-2 tokenizer the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from finetune.prompt import (
    END_OF_REPLY,
    END_OF_TEXT,
    PAD,
    SPECIAL_TOKENS,
    placeholders_in_corpus,
)
from retrieval.errors import CsbotError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast


class TokenizerError(CsbotError):
    """A tokenizer that cannot be trained or does not fit the model."""


def add_csbot_tokens(tokenizer, placeholders: Iterable[str] = ()) -> int:
    """Give any GPT-2-style tokenizer our layout tokens (special) and placeholders (added,
    non-special: decoding keeps them). Returns how many tokens were new."""
    extra = [t for t in SPECIAL_TOKENS if t not in (END_OF_TEXT, PAD)]
    before = len(tokenizer)
    # eos = end of reply: the Trainer aligns the model's generation config with the tokenizer's
    # eos, and generation must stop where a reply ends, not at a document boundary
    extra = [t for t in extra if t != END_OF_REPLY] + [END_OF_TEXT]
    tokenizer.add_special_tokens({"pad_token": PAD, "eos_token": END_OF_REPLY, "additional_special_tokens": extra})
    from tokenizers import AddedToken

    # normalized=False: match the placeholder as written, never after a normaliser changed it
    tokenizer.add_tokens([AddedToken(p, normalized=False, single_word=False) for p in placeholders])
    return len(tokenizer) - before


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    out_dir: str | Path | None = None,
    *,
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` with csbot's special tokens and placeholders as single
    tokens; save it to `out_dir` (with `save_pretrained`) when given.

    `vocab_size` counts everything: 256 bytes, merges, special tokens and placeholders.
    """
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    if not any(t.strip() for t in texts):
        raise TokenizerError(
            "cannot train a tokenizer on no text; pass the corpus texts (transcripts, KB articles, pairs)"
        )
    placeholders = placeholders_in_corpus(texts)
    floor = 256 + len(SPECIAL_TOKENS) + len(placeholders)
    if vocab_size < floor + 64:
        raise TokenizerError(
            f"vocab_size {vocab_size} is too small: 256 bytes + {len(SPECIAL_TOKENS)} special tokens "
            f"+ {len(placeholders)} placeholders need {floor}; use at least {floor + 64} (e.g. 8000)"
        )

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # Special tokens first, so their ids are small and fixed whatever the corpus (0 = <|endoftext|>,
    # as in GPT-2). Placeholders are added after training: as added tokens they split the text
    # before BPE, so no merge is wasted on their pieces.
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(placeholders),
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.add_tokens([AddedToken(p, normalized=False) for p in placeholders])
    tok.train_from_iterator(texts, trainer=trainer)

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_REPLY,
        unk_token=END_OF_TEXT,
        pad_token=PAD,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (END_OF_REPLY, PAD)],
        model_max_length=1_000_000,  # the model's n_positions decides; the prompt module budgets
    )
    add_csbot_tokens(hf, placeholders)  # idempotent here; registers them on the HF side too
    if out_dir is not None:
        hf.save_pretrained(str(out_dir))
    return hf
