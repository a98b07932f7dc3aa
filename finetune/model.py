"""The generator's base: our small GPT-2 trained from scratch, or any HF GPT-2 checkpoint.

    model, tokenizer = load_base("scratch", corpus_texts=texts)     # our BPE + fresh GPT-2
    model, tokenizer = load_base("gpt2")                            # from the local HF cache
    model, tokenizer = load_base("/models/distilgpt2")              # from a directory

Either way the tokenizer gets csbot's layout tokens and placeholders, and the model's
embeddings are resized to match. Nothing is downloaded unless `allow_download=True`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.prompt import (
    END_OF_REPLY,
    END_OF_TEXT,
    PAD,
    format_transcript,
    placeholders_in_corpus,
)
from finetune.tokenizer import add_csbot_tokens, train_tokenizer
from finetune.trainer_hooks import LogCallback, TimeBudget, ddp_backend, quiet_stdout, world_size
from retrieval.entities import mask_entities
from retrieval.errors import CsbotError
from retrieval.threads import MODEL_CONSTRUCTION_LOCK

SCRATCH = "scratch"


class BaseModelError(CsbotError):
    """A base model that cannot be loaded: not available offline, corrupt, or mismatched."""


class BaseNotAvailableError(BaseModelError):
    def __init__(self, base: str, reason: str):
        self.base = base
        name = "gpt2" if _is_local(base) else base
        super().__init__(
            f"base model {base!r} is not available offline ({reason}). Download it on a machine with "
            f"internet with `huggingface-cli download {name} --local-dir DIR` and pass --base DIR, "
            "or pass --allow-download"
        )


class VocabMismatchError(BaseModelError):
    def __init__(self, base: str, tokenizer_size: int, model_vocab: int):
        self.tokenizer_size, self.model_vocab = tokenizer_size, model_vocab
        super().__init__(
            f"checkpoint {base!r} has a tokenizer of {tokenizer_size} tokens but the model's vocabulary "
            f"(embedding rows) is {model_vocab}: they are not from the same model. Use the tokenizer "
            f"saved with that model, or retrain"
        )


@dataclass
class GeneratorBaseConfig:
    """Shape of the scratch GPT-2, sized for 2 CPU cores and a 30-minute budget.

    ~5M parameters: a first probe (3 layers x 256, about 1,000 training tokens/s on 2 cores)
    showed the budget buys well under one epoch of a larger model; 4 layers x 256 is the
    most depth that still sees the corpus a few times. 384 positions hold the latest turns,
    two or three evidence passages and a reply. `vocab_size` is the BPE's upper bound; a
    small corpus saturates earlier and the model takes the tokenizer's real size (a
    small vocabulary also keeps the softmax, a large share of the compute here, cheap).
    """

    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_positions: int = 384
    vocab_size: int = 4000
    dropout: float = 0.0  # runs of a few epochs do not overfit
    # a pointer over the earlier tokens beside the vocabulary (finetune.pointer): copying the
    # evidence becomes one learned step instead of a passage re-spelled token by token
    pointer: bool = False
    # pretraining on transcripts + KB (scratch only)
    pretrain_epochs: float = 3.0
    pretrain_lr: float = 1e-3
    pretrain_batch_size: int = 8
    pretrain_minutes: float | None = None  # None: no limit of its own (train.py passes a share)
    seed: int = 0


def _gpt2_config(cfg: GeneratorBaseConfig, vocab_size: int, tokenizer):
    from transformers import GPT2Config

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=tokenizer.convert_tokens_to_ids(END_OF_TEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(END_OF_REPLY),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD),
    )
    if cfg.pointer:
        from finetune.pointer import pointer_config

        config = pointer_config(config)
    return config


def model_class(config_or_path: Any):
    """The class that builds or loads a GPT-2 whole: the pointer model's when its config
    (or the config.json in a checkpoint directory) says so, else `GPT2LMHeadModel` (also
    for None: a hub name, whose checkpoint is a plain GPT-2)."""
    from transformers import GPT2LMHeadModel

    from finetune.pointer import POINTER_FLAG, PointerGPT2LMHeadModel, is_pointer_checkpoint

    if isinstance(config_or_path, str | Path):
        pointer = is_pointer_checkpoint(config_or_path)
    else:
        pointer = bool(getattr(config_or_path, POINTER_FLAG, False))
    return PointerGPT2LMHeadModel if pointer else GPT2LMHeadModel


def _set_generation_ids(model, tokenizer) -> None:
    # generation stops at the end of the reply, and pads with our pad token
    eor = tokenizer.convert_tokens_to_ids(END_OF_REPLY)
    model.config.pad_token_id = tokenizer.convert_tokens_to_ids(PAD)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = eor
        model.generation_config.pad_token_id = model.config.pad_token_id


def load_base(
    base: str,
    *,
    corpus_texts: Iterable[str] | None = None,
    out_dir: str | Path | None = None,
    allow_download: bool = False,
    config: GeneratorBaseConfig | None = None,
):
    """(model, tokenizer) for `base`: "scratch", a HF model name in the local cache, or a directory.

    "scratch" trains our BPE on `corpus_texts` (saved under `out_dir`/tokenizer when given)
    and builds a fresh `GPT2LMHeadModel` of `config`'s shape. Anything else loads a GPT-2
    checkpoint with `local_files_only=not allow_download`, adds csbot's tokens (and the
    corpus's placeholders, when `corpus_texts` is given) and resizes the embeddings.
    """
    import torch

    cfg = config or GeneratorBaseConfig()
    texts = list(corpus_texts) if corpus_texts is not None else None
    if base == SCRATCH:
        if not texts:
            raise BaseModelError(
                "the scratch base trains its tokenizer on the corpus: pass corpus_texts (transcripts, KB, pairs)"
            )
        tok_dir = Path(out_dir) / "tokenizer" if out_dir is not None else None
        tokenizer = train_tokenizer(texts, cfg.vocab_size, tok_dir)
        torch.manual_seed(cfg.seed)
        gpt2_config = _gpt2_config(cfg, len(tokenizer), tokenizer)
        model = model_class(gpt2_config)(gpt2_config)
        _set_generation_ids(model, tokenizer)
        return model, tokenizer

    tokenizer = _load_tokenizer(base, allow_download)
    model = _load_model(base, allow_download)
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise VocabMismatchError(base, len(tokenizer), rows)
    add_csbot_tokens(tokenizer, placeholders_in_corpus(texts) if texts else placeholders_in_corpus(()))
    if len(tokenizer) > rows:
        # new rows start at the mean of the old ones, so the new tokens begin "average" instead
        # of random noise that would dominate the first fine-tuning steps
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    _set_generation_ids(model, tokenizer)
    return model, tokenizer


def _is_local(base: str) -> bool:
    return base.startswith((".", "/", "~")) or Path(base).expanduser().exists()


def _load_tokenizer(base: str, allow_download: bool):
    from transformers import AutoTokenizer

    if _is_local(base) and not Path(base).expanduser().is_dir():
        raise BaseNotAvailableError(base, f"no directory {base}")
    try:
        with MODEL_CONSTRUCTION_LOCK:
            return AutoTokenizer.from_pretrained(
                str(Path(base).expanduser()) if _is_local(base) else base, local_files_only=not allow_download
            )
    except (OSError, ValueError) as e:
        # OSError: not in the cache / no such repo; ValueError: no loadable tokenizer files
        if _is_local(base):
            raise BaseModelError(
                f"cannot load a tokenizer from {base}: {_first_line(e)}. "
                "The directory needs the tokenizer files saved with the model (save_pretrained)"
            ) from e
        raise BaseNotAvailableError(base, _first_line(e)) from e


def _load_model(base: str, allow_download: bool):
    path = str(Path(base).expanduser()) if _is_local(base) else base
    try:
        with MODEL_CONSTRUCTION_LOCK:
            model = model_class(path if _is_local(base) else None).from_pretrained(
                path, local_files_only=not allow_download
            )
    except OSError as e:
        if _is_local(base):
            raise BaseModelError(
                f"cannot load GPT-2 weights from {base}: {_first_line(e)}. "
                "It needs config.json and model.safetensors (or pytorch_model.bin); "
                "re-save or re-download the checkpoint"
            ) from e
        raise BaseNotAvailableError(base, _first_line(e)) from e
    except Exception as e:  # corrupt safetensors / torch files raise their own types
        raise BaseModelError(
            f"the weights in {base} are corrupt or not a GPT-2 ({type(e).__name__}: "
            f"{_first_line(e)}); re-save or re-download the checkpoint"
        ) from e
    return model


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def load_corpus_texts(data_dir: str | Path) -> list[str]:
    """Pretraining text from a data folder: every conversation (customer and agent turns, in the
    prompt's role layout, personal values masked as placeholders) and every KB article."""
    data_dir = Path(data_dir)
    texts: list[str] = []
    conv = data_dir / "conversations.jsonl"
    if conv.exists():
        for line in conv.read_text(encoding="utf-8").splitlines():
            if line.strip():
                turns = [t for t in json.loads(line)["turns"] if t["role"] != "system"]
                # system turns carry one customer's order record; the generator must not learn
                # to state dates and carriers it cannot know
                if turns:
                    texts.append(mask_entities(format_transcript(turns))[0])
    kb = data_dir / "kb.jsonl"
    if kb.exists():
        for line in kb.read_text(encoding="utf-8").splitlines():
            if line.strip():
                art = json.loads(line)
                texts.append(f"{art.get('title', '')}\n\n{art['text']}")
    return texts


class PackedBlocks:
    """Texts joined with <|endoftext|> and cut into `block_size` token blocks (a torch Dataset
    by duck typing: Trainer needs only __len__ and __getitem__)."""

    def __init__(self, texts: Sequence[str], tokenizer, block_size: int):
        eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
        ids: list[int] = []
        for text in texts:
            ids.extend(tokenizer.encode(text, add_special_tokens=False))
            ids.append(eot)
        n = len(ids) // block_size
        if n == 0:  # a tiny corpus still gives one (short) block
            self.blocks = [ids] if ids else []
        else:
            self.blocks = [ids[i * block_size : (i + 1) * block_size] for i in range(n)]

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        x = torch.tensor(self.blocks[i], dtype=torch.long)
        return {"input_ids": x, "labels": x.clone()}


def pretrain(
    model,
    tokenizer,
    texts: Sequence[str],
    config: GeneratorBaseConfig,
    out_dir: str | Path,
    progress: bool | Callable[[dict], None] | None = True,
) -> dict[str, Any]:
    """Causal-LM pretraining on `texts` (packed into n_positions blocks) with the HF Trainer.

    Stops after `config.pretrain_epochs` or `config.pretrain_minutes`, whichever comes
    first. Checkpoints go to `out_dir`; the model is updated in place. `progress`: True shows
    the Trainer's tqdm bar, a callable receives each log dict. Returns the metrics.
    """
    from transformers import Trainer, TrainingArguments

    data = PackedBlocks(texts, tokenizer, config.n_positions)
    if len(data) == 0:
        raise BaseModelError("pretraining needs text; the corpus produced no tokens")
    steps_per_epoch = math.ceil(len(data) / (config.pretrain_batch_size * world_size()))
    total = max(1, math.ceil(steps_per_epoch * config.pretrain_epochs))
    args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=config.pretrain_batch_size,
        max_steps=total,
        learning_rate=config.pretrain_lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, total // 20),
        weight_decay=0.01,
        logging_steps=max(1, min(50, total // 10)),
        save_strategy="no",  # pretraining is short; the fine-tune run checkpoints
        report_to="none",
        seed=config.seed,
        disable_tqdm=progress is not True,
        use_cpu=not _cuda(),
        # several processes (torchrun, accelerate launch): as in fine-tuning
        ddp_backend=ddp_backend(),
        ddp_find_unused_parameters=False,
    )
    budget = TimeBudget(config.pretrain_minutes)
    callbacks = [budget.callback()]
    if callable(progress):
        callbacks.append(LogCallback(progress, "pretrain"))
    started = time.monotonic()
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    quiet_stdout(trainer)
    out = trainer.train()
    return {
        "pretrain_loss": out.training_loss,
        "pretrain_steps": trainer.state.global_step,
        "pretrain_blocks": len(data),
        "pretrain_schedule_horizon": budget.horizon,
        "pretrain_minutes": round((time.monotonic() - started) / 60, 3),
    }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
