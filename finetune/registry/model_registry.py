"""`ModelRegistry`: registers trained generators into WORKSPACE/models, lists them, and
promotes, approves, rolls back or retires the one the assistant uses (the layout and the
guarantees are in `finetune.registry`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finetune.checkpoint import MODEL_META
from finetune.registry.entries import (
    ENTRY_META,
    REGISTRY_FORMAT,
    ModelEntry,
    check_model_dir,
    missing_files,
    sha256_file,
    utc_now,
    weight_files,
)
from finetune.registry.errors import (
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
from finetune.registry.pointer import (
    CORRUPT_POINTER,
    HISTORY,
    POINTER,
    promotion_stack,
    read_history,
    read_pointer,
    write_promotion,
)
from retrieval.files import write_atomic

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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
            files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            content = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in files.items()).encode()).hexdigest()
            weights = weight_files(tmp)
            if len(weights) == 1:
                weights_sha = files[weights[0]]
            else:
                weights_sha = hashlib.sha256("".join(files[w] for w in weights).encode()).hexdigest()
            now = utc_now()
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

    def pointer(self) -> dict[str, Any] | None:
        """The pointer file's content ({"id", "previous", "promoted_at", "action", "seq"}), None
        when nothing was ever promoted. `previous` is the model a rollback would go back to."""
        return read_pointer(self.pointer_path)

    def _pointer_id(self) -> str | None:
        data = read_pointer(self.pointer_path)
        return None if data is None else data["id"]

    def promoted(self) -> ModelEntry | None:
        """The promoted model, or None when none ever was or the last was retired. A pointer
        that is not JSON or names a model that is not in the registry raises CorruptPointerError,
        a promoted model whose folder lacks a file raises BrokenModelError (both
        BrokenPromotionError, naming the fix)."""
        data = read_pointer(self.pointer_path)
        if data is None or data["id"] is None:
            return None
        d = self._entry_dir(data["id"])
        if d is None:
            raise CorruptPointerError(self.pointer_path, f"it points at {data['id']!r}, which is not in {self.root}")
        try:
            entry = self._load_entry(d, data["id"])
        except CorruptEntryError as e:
            raise BrokenModelError(data["id"], d, [str(e)]) from None
        problems = missing_files(entry)
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
                if sha256_file(entry.path / name) != digest:
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
        return read_history(self.history_path)

    def _set_pointer(self, model_id: str | None, previous: str | None, action: str, left: str | None) -> None:
        write_promotion(self.pointer_path, self.history_path, model_id, previous, action, left)

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
        problems = missing_files(entry)
        if problems:
            raise BrokenModelError(model_id, d, problems, promoted=False)
        try:
            current = self._pointer_id()
        except CorruptPointerError:
            current = None
        awaiting = entry.approval
        if awaiting is not None and awaiting.get("status") == "awaiting":
            approval = {
                **awaiting,
                "status": "approved",
                "approved_at": utc_now().isoformat(timespec="microseconds"),
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
            stack = promotion_stack(self.history(), current)
            stack.pop()
            while stack and self._entry_dir(stack[-1]) is None:
                stack.pop()
            if not stack:
                raise NothingToRollBackError(current)
            target = stack[-1]
            previous = next((s for s in reversed(stack[:-1]) if self._entry_dir(s) is not None), None)
            self._set_pointer(target, previous, "rollback", current)
            return self._load_entry(self.root / target, target)

    # last in the class: below a method named `list`, `list[...]` in an annotation would name it
    def list(self) -> list[ModelEntry]:
        """Every registered model, oldest registration first. Temporary folders (a registration
        in progress or one that died) are not models and are left out. A corrupt pointer does
        not stop the listing: no entry is marked promoted then (`promoted()` says why)."""
        try:
            promoted_id = self._pointer_id()
        except CorruptPointerError:
            promoted_id = None
        return self._entries(promoted_id)
