"""The model registry's errors: what it refuses, and why a promotion cannot be used (each
message names the fix)."""

from __future__ import annotations

from pathlib import Path

from retrieval.errors import CsbotError


class RegistryError(CsbotError):
    """Anything the model registry refuses."""


class InvalidModelDirError(RegistryError):
    def __init__(self, model_dir: Path, missing: list[str], hint: str = ""):
        self.model_dir, self.missing = model_dir, missing
        super().__init__(
            f"{model_dir} is not a trained csbot model: it lacks {', '.join(missing)}"
            + (f"; {hint}" if hint else "; pass the `final/` directory of a `csbot finetune train` run")
        )


class UnknownModelError(RegistryError):
    def __init__(self, model_id: str, known: list[str]):
        self.model_id, self.known = model_id, known
        if known:
            listing = ", ".join(known)
            super().__init__(f"unknown model id {model_id!r}; known ids: {listing}")
        else:
            super().__init__(
                f"unknown model id {model_id!r}; no model is registered yet (add one with `csbot models add DIR`)"
            )


class DuplicateModelError(RegistryError):
    def __init__(self, model_dir: Path, existing: str):
        self.existing = existing
        super().__init__(
            f"{model_dir} is already registered as {existing}; promote it with `csbot models promote {existing}`"
        )


class NothingToRollBackError(RegistryError):
    def __init__(self, current: str | None):
        self.current = current
        if current is None:
            super().__init__(
                "no model is promoted, so there is nothing to roll back; promote one with `csbot models promote ID`"
            )
        else:
            super().__init__(
                f"{current} is the first promoted model: there is no earlier promoted model "
                "to roll back to (promote another with `csbot models promote ID`)"
            )


FIX_PROMOTION = (
    "the assistant answers with the retrieval composer until it is fixed: promote a model with "
    "`csbot models promote ID` (ids: `csbot models list`) or switch the generator off with "
    "`csbot models retire`"
)


class BrokenPromotionError(RegistryError):
    """The promotion cannot be used: the pointer or the model it names is broken."""


class CorruptPointerError(BrokenPromotionError):
    def __init__(self, path: Path, reason: str):
        self.path = path
        super().__init__(f"the promotion pointer {path} is broken ({reason}); {FIX_PROMOTION}")


class BrokenModelError(BrokenPromotionError):
    def __init__(self, model_id: str, path: Path, problems: list[str], promoted: bool = True):
        self.model_id, self.path, self.problems = model_id, path, problems
        what = "the promoted model" if promoted else "model"
        fix = (
            FIX_PROMOTION
            if promoted
            else ("promote another model, or register this one again from its run's final/ with `csbot models add DIR`")
        )
        super().__init__(f"{what} {model_id} ({path}) cannot be used: {'; '.join(problems)}; {fix}")


class NotAwaitingApprovalError(RegistryError):
    def __init__(self, model_id: str, state: str):
        self.model_id, self.state = model_id, state
        super().__init__(
            f"{model_id} is not awaiting approval (it is {state}); only a candidate that "
            "`csbot finetune round --require-approval` left waiting is approved. To use it anyway, "
            f"promote it with `csbot models promote {model_id}`"
        )


class CorruptEntryError(RegistryError):
    def __init__(self, path: Path, reason: str):
        self.path = path
        super().__init__(
            f"{path} is corrupt ({reason}); remove {path.parent} and register the model "
            "again with `csbot models add DIR`"
        )
