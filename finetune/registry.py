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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrieval.errors import CsbotError
from retrieval.files import write_atomic

REGISTRY_FORMAT = 1
MODEL_META = "csbot_model.json"  # written by finetune.train next to the model
ENTRY_META = "registry.json"
POINTER = "PROMOTED"
HISTORY = "history.jsonl"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # vocab.json comes with merges.txt
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CORRUPT_POINTER = "(corrupt pointer)"  # what a retirement of a corrupt pointer names as retired


# ---------------------------------------------------------------------------------------------
# errors


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


# ---------------------------------------------------------------------------------------------
# entries


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: `path` is what a composer loads (`from_pretrained(path)`)."""

    id: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    promoted: bool = False

    @property
    def base(self) -> str | None:
        return self.metadata.get("base")

    @property
    def data_sha256(self) -> str | None:
        return self.metadata.get("data_sha256")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.metadata.get("metrics") or {}

    @property
    def valid_loss(self) -> float | None:
        return self.metrics.get("valid_loss")

    @property
    def registered_at(self) -> str:
        return self.metadata.get("registered_at", "")

    @property
    def approval(self) -> dict[str, Any] | None:
        """{"status": "awaiting"|"approved", "requested_at", "round", "reason", "approved_at",
        "approved_by"} for a candidate registered as awaiting approval; None otherwise."""
        approval = self.metadata.get("approval")
        return approval if isinstance(approval, dict) else None

    @property
    def state(self) -> str:
        """ "promoted", "awaiting approval" or "registered"."""
        if self.promoted:
            return "promoted"
        if (self.approval or {}).get("status") == "awaiting":
            return "awaiting approval"
        return "registered"

    def to_json(self) -> dict[str, Any]:
        return {**self.metadata, "id": self.id, "path": str(self.path), "promoted": self.promoted, "state": self.state}


def _now() -> datetime:
    return datetime.now(UTC)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_model_dir(model_dir: Path) -> list[str]:
    """Names of what `model_dir` lacks to be a registrable model (empty when complete)."""
    missing = []
    if not (model_dir / "config.json").is_file():
        missing.append("config.json")
    if not any((model_dir / n).is_file() for n in (*WEIGHT_FILES, *WEIGHT_INDEXES)):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not (
        (model_dir / "tokenizer.json").is_file()
        or ((model_dir / "vocab.json").is_file() and (model_dir / "merges.txt").is_file())
    ):
        missing.append("a tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    if not (model_dir / MODEL_META).is_file():
        missing.append(f"{MODEL_META} (written by `csbot finetune train`)")
    return missing


def _missing_files(entry: ModelEntry) -> list[str]:
    """What a registered model's folder lacks: the files a model needs, and every file that
    was registered (removed by hand, or by a disk that lost them)."""
    problems = [f"it lacks {m}" for m in check_model_dir(entry.path)]
    gone = [name for name in sorted(entry.metadata.get("files") or {}) if not (entry.path / name).is_file()]
    if gone:
        problems.append(f"registered file(s) missing: {', '.join(gone[:5])}" + (" ..." if len(gone) > 5 else ""))
    return problems


def _weight_files(model_dir: Path) -> list[str]:
    """Relative names of the weight files: the single file, or every shard of an index."""
    for name in WEIGHT_FILES:
        if (model_dir / name).is_file():
            return [name]
    for name in WEIGHT_INDEXES:
        if (model_dir / name).is_file():
            index = json.loads((model_dir / name).read_text(encoding="utf-8"))
            return sorted(set(index.get("weight_map", {}).values())) or [name]
    return []


# ---------------------------------------------------------------------------------------------
# the registry


class ModelRegistry:
    """Registered generator models under `root` (= WORKSPACE/models) and the promoted one.

    Reloading without a restart: a long-running server keeps the `promotion_token()` it loaded
    with and compares it with a fresh one on each turn (one small file read). A different token
    means the promotion changed: call `promoted()` and, when its id differs from the loaded one,
    load `entry.path` and swap the composer; if `promoted()` raises (a BrokenPromotionError) or
    the model fails to load, answer with the retrieval composer and log the error once, until
    the token changes again (bot.composers.promoted does this).
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def for_workspace(cls, workspace: Path) -> ModelRegistry:
        return cls(Path(workspace) / "models")

    @property
    def pointer_path(self) -> Path:
        return self.root / POINTER

    @property
    def history_path(self) -> Path:
        return self.root / HISTORY

    # -- locking ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """An exclusive lock between writers (processes too); readers never wait."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as f:
            try:
                import fcntl
            except ImportError:  # not POSIX: writers are not serialised
                yield
                return
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # -- registering --------------------------------------------------------------------

    def register(
        self, model_dir: Path, *, name: str | None = None, awaiting_approval: dict[str, Any] | None = None
    ) -> ModelEntry:
        """Copy a trained model directory into the registry (not promoted) and return its entry.

        The directory needs config.json, weights, a tokenizer and csbot_model.json. The copy is
        made in `root/.tmp-*` and renamed to `root/<id>`; the id is
        `gen-YYYYmmdd-HHMMSS-<6 hex of the content hash>` (UTC registration time).
        `awaiting_approval` (e.g. {"round", "reason"}) registers a candidate that a person must
        approve (`approve`) before the assistant uses it; it is kept in the entry's `approval`.
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise InvalidModelDirError(model_dir, ["the directory itself (it does not exist)"])
        missing = check_model_dir(model_dir)
        if missing:
            hint = ""
            if not check_model_dir(model_dir / "final"):
                hint = f"did you mean {model_dir / 'final'}?"
            raise InvalidModelDirError(model_dir, missing, hint)
        try:
            meta = json.loads((model_dir / MODEL_META).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidModelDirError(model_dir, [f"a readable {MODEL_META} (it is not JSON: {e})"]) from None
        if not isinstance(meta, dict):
            raise InvalidModelDirError(model_dir, [f"a {MODEL_META} holding a JSON object"])

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            # the hashes describe the bytes stored here, whatever happens to the source later
            shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns(ENTRY_META))
            files = {p.relative_to(tmp).as_posix(): _sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            content = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in files.items()).encode()).hexdigest()
            weights = _weight_files(tmp)
            if len(weights) == 1:
                weights_sha = files[weights[0]]
            else:
                weights_sha = hashlib.sha256("".join(files[w] for w in weights).encode()).hexdigest()
            now = _now()
            model_id = f"gen-{now:%Y%m%d-%H%M%S}-{content[:6]}"
            record = {
                **meta,
                "format": REGISTRY_FORMAT,
                "id": model_id,
                "name": name,
                "registered_at": now.isoformat(timespec="microseconds"),
                "source": str(model_dir.resolve()),
                "weights": weights,
                "weights_sha256": weights_sha,
                "content_sha256": content,
                "files": files,
            }
            if awaiting_approval is not None:
                record["approval"] = {
                    **awaiting_approval,
                    "status": "awaiting",
                    "requested_at": now.isoformat(timespec="microseconds"),
                }
            (tmp / ENTRY_META).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            with self._lock():
                for entry in self._entries():
                    if entry.metadata.get("content_sha256") == content:
                        raise DuplicateModelError(model_dir, entry.id)
                dest = self.root / model_id
                if dest.exists():
                    raise RegistryError(f"{dest} already exists; register again in a second")
                os.rename(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return ModelEntry(model_id, dest, record, promoted=False)

    # -- reading ------------------------------------------------------------------------

    def _load_entry(self, d: Path, promoted_id: str | None) -> ModelEntry:
        path = d / ENTRY_META
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptEntryError(path, f"not JSON: {e}") from None
        if not isinstance(meta, dict):
            raise CorruptEntryError(path, "not a JSON object")
        return ModelEntry(d.name, d, meta, promoted=d.name == promoted_id)

    def _entries(self, promoted_id: str | None = None) -> list[ModelEntry]:
        if not self.root.is_dir():
            return []
        entries = [
            self._load_entry(d, promoted_id)
            for d in self.root.iterdir()
            if d.is_dir() and not d.name.startswith(".") and (d / ENTRY_META).is_file()
        ]
        return sorted(entries, key=lambda e: (e.registered_at, e.id))

    def ids(self) -> list[str]:
        return [e.id for e in self._entries()]

    def list(self) -> list[ModelEntry]:
        """Every registered model, oldest registration first. Temporary folders (a registration
        in progress or one that died) are not models and are left out. A corrupt pointer does
        not stop the listing: no entry is marked promoted then (`promoted()` says why)."""
        try:
            promoted_id = self._pointer_id()
        except CorruptPointerError:
            promoted_id = None
        return self._entries(promoted_id)

    def _entry_dir(self, model_id: str) -> Path | None:
        if not _ID.match(model_id or ""):
            return None
        d = self.root / model_id
        return d if (d / ENTRY_META).is_file() else None

    def get(self, model_id: str) -> ModelEntry:
        d = self._entry_dir(model_id)
        if d is None:
            raise UnknownModelError(model_id, self.ids())
        try:
            promoted_id = self._pointer_id()
        except CorruptPointerError:
            promoted_id = None
        return self._load_entry(d, promoted_id)

    # -- the pointer --------------------------------------------------------------------

    def _read_pointer(self) -> dict[str, Any] | None:
        """The pointer's JSON, None when nothing was ever promoted; CorruptPointerError when the
        file is not a JSON object with a string id."""
        try:
            raw = self.pointer_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:  # a directory in its place, no permission, ...
            raise CorruptPointerError(self.pointer_path, f"it cannot be read: {e.strerror or e}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptPointerError(self.pointer_path, f"not valid JSON: {e}") from None
        if isinstance(data, dict) and data.get("action") == "retire" and data.get("id") is None:
            return data  # the generator was switched off on purpose
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise CorruptPointerError(self.pointer_path, "it names no model id")
        return data

    def pointer(self) -> dict[str, Any] | None:
        """The pointer file's content ({"id", "previous", "promoted_at", "action", "seq"}), None
        when nothing was ever promoted. `previous` is the model a rollback would go back to."""
        return self._read_pointer()

    def _pointer_id(self) -> str | None:
        data = self._read_pointer()
        return None if data is None else data["id"]

    def promoted(self) -> ModelEntry | None:
        """The promoted model, or None when none ever was or the last was retired. A pointer
        that is not JSON or names a model that is not in the registry raises CorruptPointerError,
        a promoted model whose folder lacks a file raises BrokenModelError (both
        BrokenPromotionError, naming the fix)."""
        data = self._read_pointer()
        if data is None or data["id"] is None:
            return None
        d = self._entry_dir(data["id"])
        if d is None:
            raise CorruptPointerError(self.pointer_path, f"it points at {data['id']!r}, which is not in {self.root}")
        try:
            entry = self._load_entry(d, data["id"])
        except CorruptEntryError as e:
            raise BrokenModelError(data["id"], d, [str(e)]) from None
        problems = _missing_files(entry)
        if problems:
            raise BrokenModelError(entry.id, entry.path, problems)
        return entry

    def check_promotion(self, *, verify: bool = True) -> BrokenPromotionError | None:
        """Why the promotion cannot be used, or None when it can (or nothing is promoted).
        With `verify`, the promoted model's files are also hashed against what was registered,
        so a corrupt or replaced weight file shows here before a server fails to load it (a
        cost of reading the model once; `csbot models list` pays it, a turn never does)."""
        try:
            entry = self.promoted()
        except BrokenPromotionError as e:
            return e
        if entry is None or not verify:
            return None
        changed = []
        for name, digest in sorted((entry.metadata.get("files") or {}).items()):
            try:
                if _sha256_file(entry.path / name) != digest:
                    changed.append(f"{name} differs from the file registered (sha256 mismatch)")
            except OSError as e:
                changed.append(f"{name} cannot be read ({e.strerror or e})")
        return BrokenModelError(entry.id, entry.path, changed) if changed else None

    def promotion_token(self) -> str | None:
        """A cheap value that changes whenever the promotion changes (promote, rollback, a hand
        edit of the pointer): a hash of the pointer file's bytes, None when there is none.

        Contract for a long-running server: remember the token of the model you loaded; on each
        turn call `promotion_token()` (one read of a ~200-byte file, no JSON parsing, no
        locking) and, when it differs, call `promoted()` and reload if the id changed. Every
        promote and rollback writes a new `seq` into the pointer, so two promotions never give
        the same token; equal tokens always mean the same promoted model. Registering a model
        does not change it.
        """
        try:
            raw = self.pointer_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:  # unreadable: a token of its own, so `promoted()` gets asked and says why
            return f"unreadable:{e.errno}"
        return hashlib.sha256(raw).hexdigest()[:16]

    # -- history ------------------------------------------------------------------------

    def history(self) -> list[dict[str, Any]]:
        """Every promote / rollback, oldest first (unreadable lines, e.g. one cut by a crash,
        are skipped)."""
        if not self.history_path.is_file():
            return []
        records = []
        for line in self.history_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                records.append(rec)
        return records

    def _stack(self, pointer_id: str | None) -> list[str]:
        """The promotion stack (current last) replayed from the history: a promote pushes, a
        rollback pops back to its target. The pointer is the truth for the top: it is written
        before the history line, so a crash in between is repaired here."""
        stack: list[str] = []
        for rec in self.history():
            if rec.get("action") == "retire":  # a retirement ends the history a rollback walks
                stack.clear()
            elif rec.get("action") == "rollback":
                while stack and stack[-1] != rec["id"]:
                    stack.pop()
                if not stack:
                    stack.append(rec["id"])
            elif not stack or stack[-1] != rec["id"]:
                stack.append(rec["id"])
        if pointer_id is not None and (not stack or stack[-1] != pointer_id):
            stack.append(pointer_id)
        return stack

    def _set_pointer(self, model_id: str | None, previous: str | None, action: str, left: str | None) -> None:
        at = _now().isoformat(timespec="microseconds")
        seq = len(self.history()) + 1
        pointer = {"id": model_id, "previous": previous, "promoted_at": at, "action": action, "seq": seq}
        write_atomic(self.pointer_path, (json.dumps(pointer, indent=2) + "\n").encode("utf-8"))
        # a retirement's history line names the model it switched off, so every line has an id
        line = {"action": action, "id": model_id if model_id is not None else left, "from": left, "at": at, "seq": seq}
        with self.history_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- promoting ----------------------------------------------------------------------

    def promote(self, model_id: str) -> ModelEntry:
        """Make `model_id` the model the assistant uses. Promoting the model that is already
        promoted changes nothing. A corrupt pointer is overwritten (this is its fix). A model
        whose folder lacks a file is refused (BrokenModelError): the assistant could not load
        it. Promoting a candidate that awaits approval approves it (a person did it)."""
        with self._lock():
            return self._promote_locked(model_id, "promote", by=None)

    def approve(self, model_id: str, *, by: str | None = None) -> ModelEntry:
        """A person approves a candidate that a round left awaiting approval: it is marked
        approved (when, by whom) and promoted through the same code as `promote`. A model that
        is not awaiting approval is refused (NotAwaitingApprovalError), so an approval is
        always of what a round proposed."""
        with self._lock():
            d = self._entry_dir(model_id)
            if d is None:
                raise UnknownModelError(model_id, self.ids())
            try:
                promoted_id = self._pointer_id()
            except CorruptPointerError:
                promoted_id = None
            entry = self._load_entry(d, promoted_id)
            if entry.state != "awaiting approval":
                raise NotAwaitingApprovalError(model_id, entry.state)
            return self._promote_locked(model_id, "approve", by=by)

    def _promote_locked(self, model_id: str, action: str, *, by: str | None) -> ModelEntry:
        d = self._entry_dir(model_id)
        if d is None:
            raise UnknownModelError(model_id, self.ids())
        entry = self._load_entry(d, model_id)
        problems = _missing_files(entry)
        if problems:
            raise BrokenModelError(model_id, d, problems, promoted=False)
        try:
            current = self._pointer_id()
        except CorruptPointerError:
            current = None
        if (entry.approval or {}).get("status") == "awaiting":
            approval = {
                **entry.approval,
                "status": "approved",
                "approved_at": _now().isoformat(timespec="microseconds"),
                "approved_by": by,
                "approved_with": action,
            }
            write_atomic(
                d / ENTRY_META,
                (json.dumps({**entry.metadata, "approval": approval}, indent=2, sort_keys=True) + "\n").encode("utf-8"),
            )
        if current != model_id:
            self._set_pointer(model_id, current, action, current)
        return self._load_entry(d, model_id)

    def retire(self) -> str | None:
        """Switch the generator off: nothing is promoted, and the assistant answers with the
        retrieval composer from its next turn (models stay registered; `promote` turns one on
        again; `rollback` has nothing to go back to until then). Returns the id switched off,
        None when nothing was promoted (then nothing is written). A corrupt pointer is
        replaced by the retirement (one of its two fixes); its history line names the
        model as "(corrupt pointer)"."""
        with self._lock():
            try:
                current = self._pointer_id()
            except CorruptPointerError:
                self._set_pointer(None, None, "retire", CORRUPT_POINTER)
                return CORRUPT_POINTER
            if current is None:
                return None
            self._set_pointer(None, current, "retire", current)
            return current

    def rollback(self) -> ModelEntry:
        """Promote again the model promoted before the current one; called again, the one before
        that, and so on back through the history. Models no longer in the registry are skipped.
        With no earlier promoted model: NothingToRollBackError."""
        with self._lock():
            current = self._pointer_id()  # a pointer that is not JSON: CorruptPointerError
            if current is None:
                raise NothingToRollBackError(None)
            stack = self._stack(current)
            stack.pop()
            while stack and self._entry_dir(stack[-1]) is None:
                stack.pop()
            if not stack:
                raise NothingToRollBackError(current)
            target = stack[-1]
            previous = next((s for s in reversed(stack[:-1]) if self._entry_dir(s) is not None), None)
            self._set_pointer(target, previous, "rollback", current)
            return self._load_entry(self.root / target, target)
