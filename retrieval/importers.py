"""Read support data files (our JSONL, generic CSV, Bitext CSV, ABCD JSON) into units.

Every file is validated completely before any unit is built: the first malformed row
raises `ImportFormatError(path, row, reason)` and nothing from the file is returned, so a
half-imported file never reaches the index. Rows are 1-based: the line number for JSONL,
the record number for CSV counting the header as row 1, the dialogue number for ABCD.

Files come from outside, so they are bounded before they are parsed (`ImportConfig`): a file
over `max_file_bytes` is refused unread, and JSON nested deeper than `max_json_depth` is
refused before `json.loads` sees it (the decoder recurses once per level, so a few hundred
kilobytes of brackets would otherwise end in a RecursionError). Both raise
`ImportLimitError`, an `ImportFormatError` that names the limit.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from retrieval.config import ImportConfig
from retrieval.errors import ImportFormatError, ImportLimitError
from retrieval.ingest import ROLES, sha256_file, units_from_conversations, units_from_qa
from retrieval.pii import PiiScrubber
from retrieval.types import Unit

ImportFormat = Literal["jsonl", "csv", "bitext", "abcd"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "bitext", "abcd")
BITEXT_COLUMNS = ("instruction", "intent", "response")
# ABCD speaker -> our role ("action" lines are the agent's tool actions)
ABCD_ROLES = {"customer": "customer", "agent": "agent", "action": "system"}


@dataclass
class ImportBatch:
    """What one import file yields.

    `conversations` are normalised to our JSONL conversation format (jsonl and abcd;
    empty for csv/bitext); `source` is the file name, `sha256` its content hash and
    `n_rows` the number of data rows (lines, CSV records or dialogues) read.
    """

    units: list[Unit]
    conversations: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    sha256: str = ""
    n_rows: int = 0


def load_import(
    path: str | Path,
    fmt: ImportFormat,
    *,
    question_column: str = "question",
    answer_column: str = "answer",
    intent_column: str | None = None,
    config: ImportConfig | None = None,
    scrubber: PiiScrubber | None = None,
) -> ImportBatch:
    """Validate and read one import file; see the module docstring for the guarantees.

    - `jsonl`: one conversation per line, `{"id", "intent", "outcome", "turns": [...]}`.
    - `csv`: question/answer pairs; column names from the arguments, intent optional.
    - `bitext`: the Bitext customer-support CSV (instruction -> response, with intent).
    - `abcd`: ABCD dialogues (a JSON list, or `{split: [dialogues]}`); intent = subflow.

    `config` bounds the file's size and JSON nesting (defaults: `ImportConfig()`).
    `scrubber` masks personal values in the units (default: one with no protected words;
    pass one that protects the company's own name and contact details).
    """
    config = config or ImportConfig()
    p = Path(path)
    if fmt not in FORMATS:
        raise ImportFormatError(str(p), None, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not p.is_file():
        raise ImportFormatError(str(p), None, "file does not exist (check the path)")
    size = p.stat().st_size
    if size > config.max_file_bytes:
        raise ImportLimitError(
            str(p),
            None,
            f"the file is {size:,} bytes, over the import size limit",
            limit="max_file_bytes",
            value=config.max_file_bytes,
        )
    try:
        p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(
            str(p), None, f"not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from exc

    source = p.name
    conversations: list[dict[str, Any]] = []
    if fmt == "jsonl":
        conversations = _read_jsonl(p, config.max_json_depth)
        units = units_from_conversations(conversations, scrubber=scrubber)
        n_rows = len(conversations)
    elif fmt == "abcd":
        conversations = _read_abcd(p, config.max_json_depth)
        units = units_from_conversations(conversations, scrubber=scrubber)
        n_rows = len(conversations)
    else:
        i: str | None
        if fmt == "bitext":
            q, a, i = BITEXT_COLUMNS[0], BITEXT_COLUMNS[2], BITEXT_COLUMNS[1]
            other = "--format csv with --question-column/--answer-column for other layouts"
            flag = {"instruction": other, "response": other, "intent": other}
        else:
            q, a, i = question_column, answer_column, intent_column
            flag = {question_column: "--question-column", answer_column: "--answer-column"}
            if intent_column:
                flag[intent_column] = "--intent-column"
        rows, numbers, extras = _read_qa_csv(p, q, a, i, flag, keep=("category",) if fmt == "bitext" else ())
        units = units_from_qa(rows, source=source, scrubber=scrubber)
        # keep the file position (and Bitext's category) so a unit can be traced back
        units = [replace(u, extra={"row": n, **x}) for u, n, x in zip(units, numbers, extras, strict=True)]
        n_rows = len(rows)
    return ImportBatch(units=units, conversations=conversations, source=source, sha256=sha256_file(p), n_rows=n_rows)


# --- JSON nesting --------------------------------------------------------------------

# a JSON string (escapes included) or one bracket; brackets inside strings are skipped
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def json_nesting_over(text: str, max_depth: int) -> int | None:
    """Offset in `text` of the first bracket that opens nesting level `max_depth + 1`, or
    None when the JSON text stays within `max_depth` levels (one regex pass, no recursion;
    malformed JSON is left for the decoder to report)."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        c = text[m.start()]
        if c in "[{":
            depth += 1
            if depth > max_depth:
                return m.start()
        elif c in "]}":
            depth -= 1
    return None


def _check_depth(p: Path, text: str, max_depth: int, row: int | None) -> None:
    at = json_nesting_over(text, max_depth)
    if at is not None:
        where = "" if row is not None else f" (line {text.count(chr(10), 0, at) + 1})"
        raise _too_deep(p, row, max_depth, where)


def _too_deep(p: Path, row: int | None, max_depth: int, where: str = "") -> ImportLimitError:
    return ImportLimitError(
        str(p),
        row,
        f"JSON nested more than {max_depth} levels deep{where}",
        limit="max_json_depth",
        value=max_depth,
    )


# --- JSONL conversations -------------------------------------------------------------


def _check_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def validate_conversation(obj: Any, where: str = "conversation") -> tuple[dict[str, Any] | None, str | None]:
    """(normalised conversation, None) when `obj` is a valid conversation, else (None, reason)."""
    if not isinstance(obj, dict):
        return None, f"{where} is a JSON {type(obj).__name__}, expected an object"
    conv_id = obj.get("id")
    if isinstance(conv_id, bool) or not isinstance(conv_id, (str, int)) or str(conv_id).strip() == "":
        return None, "missing or empty 'id'"
    for key in ("intent", "outcome"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            return None, f"'{key}' must be a string or null, got {obj[key]!r}"
    turns = obj.get("turns")
    if not isinstance(turns, list) or not turns:
        return None, "missing or empty 'turns' list"
    norm: list[dict[str, str]] = []
    for n, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            return None, f"turn {n} is not an object with 'role' and 'text'"
        role = turn.get("role")
        if role not in ROLES:
            return None, f"turn {n} has role {role!r}; expected customer, agent or system"
        text = turn.get("text")
        if not isinstance(text, str):
            return None, f"turn {n} has no 'text' string"
        if not text.strip():
            return None, f"turn {n} has empty text"
        norm.append({"role": role, "text": text.strip()})
    roles = {t["role"] for t in norm}
    if "agent" not in roles:
        return None, "conversation has no agent turn"
    if "customer" not in roles:
        return None, "conversation has no customer turn"
    return {"id": str(conv_id), "intent": obj.get("intent"), "outcome": obj.get("outcome"), "turns": norm}, None


def _read_jsonl(p: Path, max_depth: int) -> list[dict[str, Any]]:
    conversations: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    with p.open(encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue  # blank lines (a trailing newline, spacing) carry nothing
            _check_depth(p, line, max_depth, line_no)
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportFormatError(str(p), line_no, f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
            except RecursionError:  # a max_json_depth above what the interpreter allows
                raise _too_deep(p, line_no, max_depth) from None
            conv, reason = validate_conversation(obj, "line")
            if reason:
                raise ImportFormatError(str(p), line_no, reason)
            assert conv is not None
            if conv["id"] in seen:
                raise ImportFormatError(
                    str(p), line_no, f"duplicate conversation id {conv['id']!r} (first on row {seen[conv['id']]})"
                )
            seen[conv["id"]] = line_no
            conversations.append(conv)
    if not conversations:
        raise ImportFormatError(str(p), None, "the file holds no conversations")
    return conversations


# --- CSV question/answer pairs -------------------------------------------------------


def _read_qa_csv(
    p: Path, q: str, a: str, i: str | None, flag: dict[str, str], keep: tuple[str, ...] = ()
) -> tuple[list[tuple[str, str, str | None]], list[int], list[dict[str, str]]]:
    rows: list[tuple[str, str, str | None]] = []
    numbers: list[int] = []
    extras: list[dict[str, str]] = []
    with p.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFormatError(str(p), None, "the file is empty; expected a header row") from None
        except csv.Error as exc:
            raise ImportFormatError(str(p), 1, f"unreadable CSV: {exc}") from exc
        header = [h.strip() for h in header]
        for col in (q, a, i):
            if col and col not in header:
                hint = f"; pass {flag[col]}" if flag.get(col) else ""
                raise ImportFormatError(str(p), 1, f"missing column {col!r} (columns are: {', '.join(header)}{hint})")
        pos = {name: header.index(name) for name in header}
        row_no = 1
        try:
            for row_no, record in enumerate(reader, start=2):
                if not any(cell.strip() for cell in record):
                    continue  # blank line
                if len(record) != len(header):
                    raise ImportFormatError(
                        str(p), row_no, f"row has {len(record)} fields; the header has {len(header)} (check quoting)"
                    )
                question, answer = record[pos[q]].strip(), record[pos[a]].strip()
                if not question:
                    raise ImportFormatError(str(p), row_no, f"empty text in column {q!r}")
                if not answer:
                    raise ImportFormatError(str(p), row_no, f"empty text in column {a!r}")
                intent = record[pos[i]].strip() or None if i else None
                rows.append((question, answer, intent))
                numbers.append(row_no)
                extras.append({k: record[pos[k]].strip() for k in keep if k in pos})
        except csv.Error as exc:
            raise ImportFormatError(str(p), row_no + 1, f"unreadable CSV: {exc}") from exc
    if not rows:
        raise ImportFormatError(str(p), None, "the file holds no data rows")
    return rows, numbers, extras


# --- ABCD dialogues ------------------------------------------------------------------


def _abcd_dialogues(data: Any) -> Iterator[tuple[Any, str | None]]:
    if isinstance(data, list):
        for d in data:
            yield d, None
    elif isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        for split, dialogues in data.items():  # the full ABCD file: {"train": [...], ...}
            for d in dialogues:
                yield d, split


def _read_abcd(p: Path, max_depth: int) -> list[dict[str, Any]]:
    text = p.read_text(encoding="utf-8-sig")
    _check_depth(p, text, max_depth, None)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(str(p), exc.lineno, f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
    except RecursionError:  # a max_json_depth above what the interpreter allows
        raise _too_deep(p, None, max_depth) from None
    dialogues = list(_abcd_dialogues(data))
    if not dialogues:
        raise ImportFormatError(
            str(p), None, "expected a JSON list of ABCD dialogues (or {split: [dialogues]}), found none"
        )
    conversations: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, (d, split) in enumerate(dialogues, start=1):
        conv, reason = _abcd_conversation(d, split)
        if reason:
            raise ImportFormatError(str(p), n, f"dialogue {n}: {reason}")
        assert conv is not None
        if conv["id"] in seen:
            raise ImportFormatError(str(p), n, f"dialogue {n}: duplicate convo_id {conv['id']!r}")
        seen.add(conv["id"])
        conversations.append(conv)
    return conversations


def _abcd_conversation(d: Any, split: str | None) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(d, dict):
        return None, f"is a JSON {type(d).__name__}, expected an object"
    if d.get("convo_id") in (None, ""):
        return None, "missing 'convo_id'"
    scenario = d.get("scenario")
    if not isinstance(scenario, dict):
        return None, "missing 'scenario' object"
    intent = scenario.get("subflow") or scenario.get("flow")
    if not isinstance(intent, str) or not intent:
        return None, "scenario has neither 'subflow' nor 'flow'"
    original = d.get("original")
    if not isinstance(original, list) or not original:
        return None, "missing or empty 'original' list of [speaker, text] pairs"
    turns = []
    for t, pair in enumerate(original, start=1):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            return None, f"turn {t} is not a [speaker, text] pair"
        speaker, text = pair
        if speaker not in ABCD_ROLES:
            return None, f"turn {t} has speaker {speaker!r}; expected agent, customer or action"
        if text.strip():  # ABCD has a few empty lines; they carry nothing
            turns.append({"role": ABCD_ROLES[speaker], "text": text})
    conv, reason = validate_conversation(
        {
            "id": f"abcd-{d['convo_id']}",
            "intent": intent,
            "outcome": None,
            "turns": turns,
        }
    )
    if conv is not None:
        conv["meta"] = {"flow": scenario.get("flow"), "subflow": scenario.get("subflow"), "split": split}
    return conv, reason
