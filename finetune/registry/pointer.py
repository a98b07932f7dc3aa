"""The registry's promotion pointer and history files: reading the pointer, replaying the
history into the stack a rollback walks, and writing a promotion (pointer first, then its
history line).

    PROMOTED        {"id", "previous", "promoted_at", "action", "seq"}: the model in use
                    (id null after a retirement)
    history.jsonl   one line per promote / approve / rollback / retire, oldest first
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from finetune.registry.entries import utc_now
from finetune.registry.errors import CorruptPointerError
from retrieval.files import write_atomic

POINTER = "PROMOTED"
HISTORY = "history.jsonl"
CORRUPT_POINTER = "(corrupt pointer)"  # what a retirement of a corrupt pointer names as retired


def read_pointer(path: Path) -> dict[str, Any] | None:
    """The pointer's JSON, None when nothing was ever promoted; CorruptPointerError when the
    file is not a JSON object with a string id."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:  # a directory in its place, no permission, ...
        raise CorruptPointerError(path, f"it cannot be read: {e.strerror or e}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptPointerError(path, f"not valid JSON: {e}") from None
    if isinstance(data, dict) and data.get("action") == "retire" and data.get("id") is None:
        return data  # the generator was switched off on purpose
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise CorruptPointerError(path, "it names no model id")
    return data


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every promote / rollback, oldest first (unreadable lines, e.g. one cut by a crash,
    are skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("id"), str):
            records.append(rec)
    return records


def promotion_stack(history: list[dict[str, Any]], pointer_id: str | None) -> list[str]:
    """The promotion stack (current last) replayed from the history: a promote pushes, a
    rollback pops back to its target. The pointer is the truth for the top: it is written
    before the history line, so a crash in between is repaired here."""
    stack: list[str] = []
    for rec in history:
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


def write_promotion(
    pointer_path: Path,
    history_path: Path,
    model_id: str | None,
    previous: str | None,
    action: str,
    left: str | None,
) -> None:
    """Point at `model_id` (None: retired), then append the history line: `previous` is what a
    rollback would go back to, `left` the model switched away from."""
    at = utc_now().isoformat(timespec="microseconds")
    seq = len(read_history(history_path)) + 1
    pointer = {"id": model_id, "previous": previous, "promoted_at": at, "action": action, "seq": seq}
    write_atomic(pointer_path, (json.dumps(pointer, indent=2) + "\n").encode("utf-8"))
    # a retirement's history line names the model it switched off, so every line has an id
    line = {"action": action, "id": model_id if model_id is not None else left, "from": left, "at": at, "seq": seq}
    with history_path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())
