"""The support team's domain file."""

import json
from pathlib import Path

import pytest

from bot.domain import Domain, DomainError
from bot.workspace import read_intent_examples

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_domain_loads_and_names_only_known_intents():
    domain = Domain.load(REPO / "data" / "domain.json")
    _, labels = read_intent_examples(REPO / "data" / "intents.csv")
    assert domain.check_intents(set(labels)) == []
    assert domain.handoff_intents == ["human_agent"]


def test_a_missing_domain_file_means_defaults(tmp_path):
    assert Domain.load(tmp_path / "domain.json") == Domain()


def test_unknown_keys_are_refused_with_the_known_ones_listed(tmp_path):
    (tmp_path / "domain.json").write_text(json.dumps({"smalltalks": {}}))
    with pytest.raises(DomainError, match=r"unknown key.*smalltalks.*known keys are"):
        Domain.load(tmp_path / "domain.json")


def test_a_required_slot_needs_a_question(tmp_path):
    (tmp_path / "domain.json").write_text(json.dumps({"required_slots": {"refund_request": ["iban"]}}))
    with pytest.raises(DomainError, match="'iban'"):
        Domain.load(tmp_path / "domain.json")


def test_invalid_json_names_the_line(tmp_path):
    (tmp_path / "domain.json").write_text('{\n "smalltalk": ,\n}')
    with pytest.raises(DomainError, match="line 2"):
        Domain.load(tmp_path / "domain.json")
