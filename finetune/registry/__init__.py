"""The model registry: trained generators kept in the workspace, one of them promoted.

    WORKSPACE/models/
      gen-20250101-120000-1a2b3c/   a copy of a run's `final/` (config.json, weights, tokenizer,
        ...                         csbot_model.json) plus registry.json (its metadata)
      PROMOTED                      {"id", "previous", "promoted_at", "action", "seq"}: the model in use
                                    (id null after `retire`: the retrieval composer answers)
      history.jsonl                 one line per promote / approve / rollback / retire, oldest first
      .lock                         serialises writers (register, promote, rollback, retire)
      .tmp-*                        a registration in progress (or one that died): never listed

    reg = ModelRegistry.for_workspace(Path(".csbot"))
    entry = reg.register(Path("runs/r1/final"))   # copied in, not promoted
    reg.promote(entry.id)                         # the assistant now uses it
    reg.register(path, awaiting_approval={...})   # a candidate a person must approve
    reg.approve(model_id)                         # that person: promoted, through promote's code
    reg.rollback()                                # back to the model promoted before
    reg.retire()                                  # no generator: the retrieval composer answers

Registering copies the directory into a temporary folder inside the registry and renames it
into place, so a model is either fully there or not at all. The pointer is replaced with
`os.replace`, so readers see the old or the new promotion, never half a file.

A broken promotion (a pointer that is not JSON, names a model that is not here, or a model
whose files are missing or changed) must never stop the assistant: `promoted()` raises a
`BrokenPromotionError` that says how to fix it, the composer answers with retrieval
(bot.composers.promoted), and `check_promotion()` lets `csbot models list` say so.

Nothing here imports torch or transformers: the CLI and a server can read the registry cheaply.

The package's modules: `entries` (a registered model, what a model directory must hold),
`pointer` (the PROMOTED and history files), `model_registry` (`ModelRegistry`), `errors`.
"""

from finetune.registry.entries import ENTRY_META, REGISTRY_FORMAT, ModelEntry, check_model_dir
from finetune.registry.errors import (
    FIX_PROMOTION,
    BrokenModelError,
    BrokenPromotionError,
    CorruptEntryError,
    CorruptPointerError,
    DuplicateModelError,
    InvalidModelDirError,
    NotAwaitingApprovalError,
    NothingToRollBackError,
    RegistryError,
    UnknownModelError,
)
from finetune.registry.model_registry import ModelRegistry
from finetune.registry.pointer import CORRUPT_POINTER, HISTORY, POINTER

__all__ = [
    "CORRUPT_POINTER",
    "ENTRY_META",
    "FIX_PROMOTION",
    "HISTORY",
    "POINTER",
    "REGISTRY_FORMAT",
    "BrokenModelError",
    "BrokenPromotionError",
    "CorruptEntryError",
    "CorruptPointerError",
    "DuplicateModelError",
    "InvalidModelDirError",
    "ModelEntry",
    "ModelRegistry",
    "NotAwaitingApprovalError",
    "NothingToRollBackError",
    "RegistryError",
    "UnknownModelError",
    "check_model_dir",
]
