"""retrieval.importers: validated imports of JSONL, CSV, Bitext and ABCD files."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from retrieval.config import ImportConfig
from retrieval.errors import ImportFormatError, ImportLimitError
from retrieval.importers import json_nesting_over, load_import
from retrieval.ingest import sha256_file

GOOD_CONV = {
    "id": "c1",
    "intent": "track_order",
    "outcome": "resolved",
    "turns": [
        {"role": "customer", "text": "where is order #40318275?"},
        {"role": "agent", "text": "It ships today."},
    ],
}


def write_jsonl(path: Path, objs: list) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


# --- jsonl -------------------------------------------------------------------------


def test_jsonl_import_returns_normalised_conversations_units_and_file_facts(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "convs.jsonl", [GOOD_CONV, {**GOOD_CONV, "id": 7, "outcome": None}])
    batch = load_import(path, "jsonl")
    assert (batch.source, batch.n_rows, batch.sha256) == ("convs.jsonl", 2, sha256_file(path))
    assert [c["id"] for c in batch.conversations] == ["c1", "7"]
    assert batch.conversations[0]["turns"][0] == {"role": "customer", "text": "where is order #40318275?"}
    assert [u.id for u in batch.units] == ["c1#t0", "7#t0"]
    assert batch.units[0].text == "where is order {{Order Number}}?"


def test_jsonl_blank_lines_are_skipped_but_row_numbers_stay_line_numbers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD_CONV, "", "{not json"])
    with pytest.raises(ImportFormatError) as err:
        load_import(path, "jsonl")
    assert err.value.row == 3


def turns_with(role: str = "agent", text: str = "ok") -> dict:
    return {**GOOD_CONV, "id": "bad", "turns": [*GOOD_CONV["turns"], {"role": role, "text": text}]}


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ('{"id": "c2", "turns": [', "invalid JSON"),
        (json.dumps(turns_with(role="bot")), "turn 3 has role 'bot'; expected customer, agent or system"),
        (json.dumps(turns_with(text="  ")), "turn 3 has empty text"),
        (
            json.dumps({**GOOD_CONV, "id": "x", "turns": [{"role": "customer", "text": "hi"}]}),
            "conversation has no agent turn",
        ),
        (json.dumps({**GOOD_CONV, "id": ""}), "missing or empty 'id'"),
        (json.dumps({**GOOD_CONV, "id": "y", "turns": []}), "missing or empty 'turns' list"),
        (json.dumps(GOOD_CONV), "duplicate conversation id 'c1' (first on row 1)"),
        ("[1, 2]", "line is a JSON list, expected an object"),
    ],
)
def test_a_malformed_jsonl_line_names_its_row_and_reason_and_imports_nothing(
    tmp_path: Path, bad_line: str, reason: str
) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD_CONV, bad_line, {**GOOD_CONV, "id": "c3"}])
    with pytest.raises(ImportFormatError) as err:
        load_import(path, "jsonl")
    assert err.value.row == 2
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{path}, row 2: ")
    assert "Nothing was imported" in str(err.value)


# --- csv ---------------------------------------------------------------------------


def test_csv_import_reads_named_columns_and_optional_intent(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "faq.csv",
        [
            ["q", "a", "label"],
            ["How do I return order 732201349959?", "Use the returns page.", "return"],
            ["Opening hours?", "9 to 5.\nMonday to Friday.", ""],
        ],
    )
    batch = load_import(path, "csv", question_column="q", answer_column="a", intent_column="label")
    assert batch.n_rows == 2 and batch.conversations == []
    first, second = batch.units
    assert (first.id, first.kind, first.intent) == ("faq.csv#r0", "qa", "return")
    assert first.text == "How do I return order {{Order Number}}?"
    assert second.reply == "9 to 5.\nMonday to Friday." and second.intent is None
    # traceable to the CSV row (header is row 1)
    assert [u.extra["row"] for u in batch.units] == [2, 3]


def test_csv_missing_column_lists_the_columns_and_the_flag_to_pass(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "faq.csv", [["question", "reply"], ["hi", "hello"]])
    with pytest.raises(ImportFormatError) as err:
        load_import(path, "csv")
    assert err.value.row == 1
    assert err.value.reason == "missing column 'answer' (columns are: question, reply; pass --answer-column)"


def test_csv_empty_answer_names_the_data_row_counting_the_header_as_row_1(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "faq.csv",
        [
            ["question", "answer"],
            ["a", "multi\nline\nanswer"],
            ["b", "fine"],
            ["c", "  "],
        ],
    )
    with pytest.raises(ImportFormatError) as err:
        load_import(path, "csv")
    assert (err.value.row, err.value.reason) == (4, "empty text in column 'answer'")


def test_csv_row_with_wrong_field_count_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("question,answer\nhi,hello\nhow,are,you\n", encoding="utf-8")
    with pytest.raises(ImportFormatError) as err:
        load_import(path, "csv")
    assert err.value.row == 3 and "3 fields; the header has 2" in err.value.reason


def test_csv_with_only_a_header_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "faq.csv", [["question", "answer"]])
    with pytest.raises(ImportFormatError, match="no data rows"):
        load_import(path, "csv")


def test_file_that_is_not_utf8_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes("question,answer\ncaf\u00e9,ok\n".encode("latin-1"))
    with pytest.raises(ImportFormatError, match="re-save it as UTF-8"):
        load_import(path, "csv")


def test_missing_file_and_unknown_format_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="does not exist"):
        load_import(tmp_path / "nope.csv", "csv")
    path = write_csv(tmp_path / "faq.csv", [["question", "answer"], ["a", "b"]])
    with pytest.raises(ImportFormatError, match="unknown format 'xlsx'"):
        load_import(path, "xlsx")  # type: ignore[arg-type] - a wrong value on purpose


# --- bitext ------------------------------------------------------------------------

BITEXT_HEADER = ["flags", "instruction", "category", "intent", "response"]


def test_bitext_import_maps_instruction_to_response_with_intent_and_category(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "bitext.csv",
        [
            BITEXT_HEADER,
            [
                "B",
                "cancel purchase 732201349959",
                "ORDER",
                "cancel_order",
                "I've cancelled order 732201349959.\n\nCall {{Customer Support Phone Number}} if needed.",
            ],
        ],
    )
    (unit,) = load_import(path, "bitext").units
    assert unit.text == "cancel purchase {{Order Number}}"
    assert unit.reply == "I've cancelled order {{Order Number}}.\n\nCall {{Customer Support Phone Number}} if needed."
    assert unit.intent == "cancel_order" and unit.extra == {"row": 2, "category": "ORDER"}


def test_bitext_file_without_its_columns_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["question", "answer"], ["a", "b"]])
    with pytest.raises(ImportFormatError, match="missing column 'instruction'"):
        load_import(path, "bitext")


# --- abcd --------------------------------------------------------------------------


def abcd_dialogue(convo_id: int = 1, **over) -> dict:
    d = {
        "convo_id": convo_id,
        "scenario": {"flow": "product_defect", "subflow": "return_size"},
        "original": [
            ["agent", "Hi!"],
            ["customer", "I need to return jeans"],
            ["action", "Account has been pulled up."],
            ["agent", "Sure, your order id?"],
            ["customer", "Order ID: 3348917502"],
            ["agent", "Thanks."],
        ],
    }
    d.update(over)
    return d


def test_abcd_import_maps_speakers_to_roles_and_subflow_to_intent(tmp_path: Path) -> None:
    path = tmp_path / "abcd.json"
    path.write_text(json.dumps([abcd_dialogue(1), abcd_dialogue(2, scenario={"flow": "shipping"})]))
    batch = load_import(path, "abcd")
    first = batch.conversations[0]
    assert first["id"] == "abcd-1" and first["intent"] == "return_size"
    assert [t["role"] for t in first["turns"]] == ["agent", "customer", "system", "agent", "customer", "agent"]
    assert batch.conversations[1]["intent"] == "shipping"
    assert batch.n_rows == 2
    assert [u.id for u in batch.units][:2] == ["abcd-1#t1", "abcd-1#t4"]
    assert batch.units[0].reply == "Sure, your order id?"
    assert batch.units[1].text == "Order ID: {{Order Number}}"


def test_abcd_full_layout_with_splits_is_read(tmp_path: Path) -> None:
    path = tmp_path / "abcd_v1.json"
    path.write_text(json.dumps({"train": [abcd_dialogue(1)], "dev": [abcd_dialogue(2)]}))
    batch = load_import(path, "abcd")
    assert [c["meta"]["split"] for c in batch.conversations] == ["train", "dev"]


@pytest.mark.parametrize(
    "bad, reason",
    [
        (
            abcd_dialogue(2, original=[["agent", "hi"], ["bot", "hello"]]),
            "turn 2 has speaker 'bot'; expected agent, customer or action",
        ),
        (abcd_dialogue(2, scenario={}), "scenario has neither 'subflow' nor 'flow'"),
        (abcd_dialogue(2, original=[["customer", "hi"], ["action", "x"]]), "conversation has no agent turn"),
        (abcd_dialogue(2, original=[["customer"]]), "turn 1 is not a [speaker, text] pair"),
        (abcd_dialogue(1), "duplicate convo_id 'abcd-1'"),
    ],
)
def test_a_malformed_abcd_dialogue_names_its_number_and_reason(tmp_path: Path, bad: dict, reason: str) -> None:
    path = tmp_path / "abcd.json"
    path.write_text(json.dumps([abcd_dialogue(1), bad]))
    with pytest.raises(ImportFormatError) as err:
        load_import(path, "abcd")
    assert err.value.row == 2 and reason in err.value.reason


# --- limits: size and JSON nesting ----------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def test_a_jsonl_line_nested_100000_deep_is_refused_naming_the_depth_limit(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD_CONV, DEEP])
    with pytest.raises(ImportLimitError) as err:
        load_import(path, "jsonl")
    assert (err.value.row, err.value.limit, err.value.value) == (2, "max_json_depth", 64)
    assert "nested more than 64 levels" in str(err.value) and "ImportConfig.max_json_depth = 64" in str(err.value)
    assert "Nothing was imported" in str(err.value)
    assert isinstance(err.value, ImportFormatError)


def test_an_abcd_file_nested_100000_deep_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "abcd.json"
    path.write_text("[\n" + json.dumps(abcd_dialogue(1)) + ",\n" + '{"x": ' + DEEP + "}]")
    with pytest.raises(ImportLimitError) as err:
        load_import(path, "abcd")
    assert err.value.limit == "max_json_depth"
    assert "nested more than 64 levels deep (line 3)" in err.value.reason


def test_nesting_up_to_the_limit_imports_and_brackets_inside_strings_do_not_count(tmp_path: Path) -> None:
    # a conversation is 3 levels deep: the object, its turns list, each turn
    conv = {**GOOD_CONV, "turns": [{"role": "customer", "text": '[[[{{{ "\\" ]]'}, GOOD_CONV["turns"][1]]}
    path = write_jsonl(tmp_path / "c.jsonl", [conv])
    assert load_import(path, "jsonl", config=ImportConfig(max_json_depth=3)).n_rows == 1
    with pytest.raises(ImportLimitError, match="nested more than 2 levels"):
        load_import(path, "jsonl", config=ImportConfig(max_json_depth=2))


def test_json_nesting_over_gives_the_offset_of_the_first_bracket_past_the_limit() -> None:
    assert json_nesting_over('{"a": [[1], {"b": "]]]]"}]}', 3) is None
    assert json_nesting_over('{"a": [[1], {"b": "]]]]"}]}', 2) == 7
    assert json_nesting_over(DEEP, 64) == 64


def test_the_default_size_limit_refuses_a_file_over_50_mb_unread(tmp_path: Path) -> None:
    assert ImportConfig().max_file_bytes == 50 * 1024 * 1024
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:  # sparse: no 50 MB written, but that is its size
        f.truncate(50 * 1024 * 1024 + 1)
    with pytest.raises(ImportLimitError) as err:
        load_import(path, "csv")
    assert (err.value.limit, err.value.value, err.value.row) == ("max_file_bytes", 50 * 1024 * 1024, None)
    assert "52,428,801 bytes" in err.value.reason and "ImportConfig.max_file_bytes = 52,428,800" in str(err.value)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "bitext", "abcd"])
def test_every_format_honours_a_smaller_size_limit(tmp_path: Path, fmt: str) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD_CONV])
    size = path.stat().st_size
    with pytest.raises(ImportLimitError, match=f"the file is {size} bytes"):
        load_import(path, fmt, config=ImportConfig(max_file_bytes=size - 1))  # type: ignore[arg-type] - a wrong value on purpose
    assert load_import(path, "jsonl", config=ImportConfig(max_file_bytes=size)).n_rows == 1


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_json_depth"):
        ImportConfig(max_json_depth=0)
    with pytest.raises(ValueError, match="max_file_bytes"):
        ImportConfig(max_file_bytes=0)


# --- the real shared datasets --------------------------------------------------------


@pytest.mark.shared
def test_real_bitext_file_imports_every_row_with_intents_and_masked_order_numbers(shared_datasets: Path) -> None:
    batch = load_import(shared_datasets / "bitext" / "train.csv", "bitext")
    assert batch.n_rows == len(batch.units) > 1000
    assert all(u.intent and u.text and u.reply for u in batch.units)
    assert len({u.intent for u in batch.units}) >= 20
    # Bitext responses quote the customer's 12-digit order number; none may survive
    assert not any(re.search(r"\b\d{12}\b", u.reply + u.text) for u in batch.units)
    assert any("{{Order Number}}" in u.reply for u in batch.units)


@pytest.mark.shared
def test_real_abcd_sample_imports_conversations_with_system_actions(shared_datasets: Path) -> None:
    batch = load_import(shared_datasets / "abcd" / "abcd_sample.json", "abcd")
    assert batch.n_rows == len(batch.conversations) >= 1
    assert any(t["role"] == "system" for c in batch.conversations for t in c["turns"])
    assert batch.units and all(u.kind == "transcript" and u.reply for u in batch.units)
    assert all(u.intent for u in batch.units)


@pytest.mark.shared
def test_real_banking77_file_imports_as_generic_csv_with_named_columns(shared_datasets: Path) -> None:
    path = shared_datasets / "banking77" / "train.csv"
    with pytest.raises(ImportFormatError, match="pass --question-column"):
        load_import(path, "csv")
    batch = load_import(path, "csv", question_column="text", answer_column="category", intent_column="category")
    assert batch.n_rows == len(batch.units) > 5000
    assert len({u.intent for u in batch.units}) == 77
