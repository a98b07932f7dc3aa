"""Pairs on disk: `write_pairs` writes a set atomically, `erase_from_pairs` rewrites one
without given conversations (a privacy request), `find_pairs_dirs` finds every set in a
workspace."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetune.pairs.build import FILTERS, PairsResult
from finetune.pairs.errors import OutputDirError, PairsError
from finetune.pairs.layout import (
    HELDOUT_FILE,
    MANIFEST_FILE,
    PAIR_FILES,
    PAIRS_FORMAT,
    TRAIN_FILE,
    VALID_FILE,
    file_hashes,
    jsonl_bytes,
    manifest_bytes,
    pair_counts,
)
from retrieval.files import fsync_dir, write_durable


def _replace_dir(out: Path, files: dict[str, bytes]) -> None:
    """Make `out` hold exactly `files`: written into a temporary directory beside it and
    renamed into place, so a crash leaves the old set or the new one, never a mix."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, data in files.items():
            write_durable(tmp / name, data)
        os.chmod(tmp, 0o755)
        fsync_dir(tmp)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)  # the commit point
        fsync_dir(out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_pairs(result: PairsResult, out_dir: str | Path) -> dict[str, Any]:
    """Write `train.jsonl`, `valid.jsonl`, `heldout.jsonl` (when there are held-out pairs) and
    `manifest.json` into `out_dir`; returns the manifest.

    The set is written into a temporary directory beside `out_dir` and renamed into place,
    so a crash leaves either the previous set or the new one, never a mix. `out_dir` may be
    new, empty, or an earlier pairs set (replaced); a directory holding other files is refused.
    `data_sha256` is the sha256 of train.jsonl's bytes followed by valid.jsonl's.
    """
    out = Path(out_dir)
    ours = {*PAIR_FILES, MANIFEST_FILE}
    if out.exists():
        if not out.is_dir():
            raise OutputDirError(f"{out} exists and is not a directory; pass --out a new or empty directory")
        others = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if others:
            raise OutputDirError(
                f"{out} holds other files ({', '.join(others[:3])}); pass --out a new or empty directory "
                "or an earlier pairs directory"
            )
    files = {TRAIN_FILE: jsonl_bytes(result.train), VALID_FILE: jsonl_bytes(result.valid)}
    if result.heldout:
        files[HELDOUT_FILE] = jsonl_bytes(result.heldout)
    manifest = {
        "format": PAIRS_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": result.counts(),
        "excluded": dict(result.excluded),
        "suggestions": dict(result.suggestions),
        "pii_scrubbed": result.pii_scrubbed,
        **file_hashes(files),
        "parameters": dict(result.parameters),
        "filters": FILTERS,
        "sources": list(result.sources),
        "embedder_id": result.embedder_id,
        "index_units": result.index_units,
    }
    _replace_dir(out, {**files, MANIFEST_FILE: manifest_bytes(manifest)})
    return manifest


def _source_of_unit(unit_id: str) -> str:
    """The conversation (or article) an index unit id comes from: `<source id>#t<turn>`."""
    return unit_id.rsplit("#", 1)[0]


def erase_from_pairs(pairs_dir: str | Path, conversation_ids: Iterable[str]) -> int:
    """Rewrite the pairs directory without the pairs of `conversation_ids` (and without any
    evidence item taken from them); returns how many pairs were removed.

    Why a rewrite and not a filter at read time: a privacy request means the text must be
    gone from disk. The directory is replaced whole (as `write_pairs` writes it), and its
    manifest is brought up to date, counts, `data_sha256` and file hashes included, so a later
    check of the set against its manifest passes; the manifest's `erased` says how many pairs
    and evidence items were removed so far (never which). A directory without any of these
    conversations is left untouched. A line that is not JSON raises PairsError naming it:
    nothing is rewritten then, and the request must not be reported as done.
    """
    d = Path(pairs_dir)
    ids = {str(c) for c in conversation_ids}
    present = [name for name in PAIR_FILES if (d / name).is_file()]
    if not ids or not present:
        return 0
    kept: dict[str, bytes] = {}
    removed = evidence_removed = 0
    for name in present:
        lines = []
        for n, line in enumerate((d / name).read_bytes().splitlines(keepends=True), start=1):
            if not line.strip():
                continue
            try:
                pair = json.loads(line)
            except ValueError as e:
                raise PairsError(f"{d / name}:{n} is not JSON ({e}); fix or remove {d} and erase again") from None
            if not isinstance(pair, dict):
                raise PairsError(f"{d / name}:{n} is not a pair object; fix or remove {d} and erase again")
            if str(pair.get("conversation_id")) in ids:
                removed += 1
                continue
            evidence = pair.get("evidence") or []
            clean = [e for e in evidence if _source_of_unit(str(e.get("id", ""))) not in ids]
            if len(clean) != len(evidence):
                evidence_removed += len(evidence) - len(clean)
                line = (json.dumps({**pair, "evidence": clean}, ensure_ascii=False) + "\n").encode("utf-8")
            lines.append(line if line.endswith(b"\n") else line + b"\n")
        kept[name] = b"".join(lines)
    if not removed and not evidence_removed:
        return 0

    files = dict(kept)
    manifest_path = d / MANIFEST_FILE
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            manifest = None
        if isinstance(manifest, dict):
            read = {name: [json.loads(x) for x in kept.get(name, b"").splitlines() if x.strip()] for name in PAIR_FILES}
            previous = manifest.get("erased")
            erased: dict[str, Any] = previous if isinstance(previous, dict) else {}
            manifest.update(
                {
                    "counts": pair_counts(read[TRAIN_FILE], read[VALID_FILE], read[HELDOUT_FILE]),
                    **file_hashes(kept),
                    "erased": {
                        "pairs": int(erased.get("pairs", 0)) + removed,
                        "evidence_items": int(erased.get("evidence_items", 0)) + evidence_removed,
                        "last_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    },
                }
            )
            files[MANIFEST_FILE] = manifest_bytes(manifest)
        else:
            files[MANIFEST_FILE] = manifest_path.read_bytes()  # not ours to repair; kept as it was
    for p in d.iterdir():  # anything else in the directory comes along unchanged
        if p.name not in files and p.is_file():
            files[p.name] = p.read_bytes()
    _replace_dir(d, files)
    return removed


def find_pairs_dirs(workspace: str | Path) -> list[Path]:
    """Every directory inside `workspace` that holds pairs (train.jsonl, valid.jsonl or
    heldout.jsonl): the learning loop's `finetune/rounds/*/pairs/`, a `csbot finetune pairs
    --out` or `finetune train --corpus` output placed inside the workspace, and the temporary
    or old copies a crashed write left behind (they hold the same text). Sorted; symbolic
    links are not followed (what they point at is outside the workspace's care)."""
    root = Path(workspace)
    if not root.is_dir():
        return []
    found = []
    for dirpath, _, filenames in os.walk(root):
        if any(name in filenames for name in PAIR_FILES):
            found.append(Path(dirpath))
    return sorted(found)
