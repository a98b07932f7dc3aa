"""The intent classifier's settings a build uses (bot.workspace.classifier_config): the
defaults, then the data folder's domain.json "classifier" object, then
CSBOT_CLASSIFIER__OVERRIDES; bad names and values refused with the file and key named."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from bot.domain import DomainError
from bot.intents import IntentClassifierConfig
from bot.settings import CsbotSettings
from bot.workspace import ClassifierSettingsError, build_workspace, classifier_config

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = "CSBOT_CLASSIFIER__OVERRIDES"


def data_folder(tmp_path: Path, classifier: object | None) -> Path:
    """A data folder whose domain.json holds `classifier` (no key at all when None)."""
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    domain = {} if classifier is None else {"classifier": classifier}
    (folder / "domain.json").write_text(json.dumps(domain), encoding="utf-8")
    return folder


def settings_with(overrides: str | None) -> CsbotSettings:
    return CsbotSettings.from_env(env={} if overrides is None else {OVERRIDES: overrides})


def test_the_demo_data_ships_the_nearest_score_chosen_on_the_dev_split():
    # chosen on data/out_of_scope's dev split by bench/bench_oos.py's study; the library's
    # default (BANKING77's) stays `combined`
    config = classifier_config(REPO / "data")
    assert config.oos_score == "nearest"
    assert IntentClassifierConfig().oos_score == "combined"
    assert config == IntentClassifierConfig(oos_score="nearest")


def test_a_data_folder_without_a_setting_gets_the_defaults(tmp_path):
    assert classifier_config(data_folder(tmp_path, None)) == IntentClassifierConfig()
    assert classifier_config(tmp_path / "no-such-folder") == IntentClassifierConfig()


def test_the_data_folder_setting_is_applied_over_the_defaults(tmp_path):
    folder = data_folder(
        tmp_path,
        {"oos_score": "class_nearest", "oos_max_inscope_loss": 0.01, "oos_floor_loss": 0, "char_ngram_range": [2, 4]},
    )
    config = classifier_config(folder, settings_with(None).classifier)
    assert config.oos_score == "class_nearest"
    assert config.oos_max_inscope_loss == 0.01
    assert config.oos_floor_loss == 0.0 and isinstance(config.oos_floor_loss, float)  # JSON's 0 is a float here
    assert config.char_ngram_range == (2, 4)  # JSON's list is the tuple the field is
    assert config.C == IntentClassifierConfig().C


def test_the_environment_override_wins_over_the_data_folder(tmp_path):
    folder = data_folder(tmp_path, {"oos_score": "nearest", "C": 2.0})
    config = classifier_config(folder, settings_with('{"oos_score": "combined"}').classifier)
    assert config.oos_score == "combined"
    assert config.C == 2.0  # what the override does not name still comes from the data


@pytest.mark.parametrize(
    ("classifier", "named"),
    [
        ({"oos_scor": "nearest"}, r"'oos_scor' is not an intent classifier setting; known ones are .*oos_score"),
        ({"oos_score": "closest"}, r"oos_score must be one of .*'closest'"),
        ({"C": "big"}, r"C='big' is not a number"),
        ({"use_text_features": 1}, r"use_text_features=1 is not a true or false"),
        ({"oos_holdout_folds": 2.5}, r"oos_holdout_folds=2.5 is not a whole number"),
        ({"char_ngram_range": [3]}, r"char_ngram_range=\[3\] is not a list of 2 whole numbers"),
        ({"oos_floor_loss": 0.5}, r"oos_floor_loss must be in \[0, oos_max_inscope_loss\]"),
    ],
)
def test_a_bad_key_or_value_in_domain_json_names_itself_and_the_file(tmp_path, classifier, named):
    folder = data_folder(tmp_path, classifier)
    with pytest.raises(ClassifierSettingsError, match=named) as err:
        classifier_config(folder)
    assert str(err.value).startswith(f'{folder / "domain.json"} ("classifier"): ')


def test_classifier_must_be_an_object_in_domain_json(tmp_path):
    with pytest.raises(DomainError, match=r'"classifier" must be a JSON object.*\'nearest\''):
        classifier_config(data_folder(tmp_path, "nearest"))


def test_a_bad_environment_override_names_the_variable(tmp_path):
    folder = data_folder(tmp_path, {"oos_score": "nearest"})
    with pytest.raises(ClassifierSettingsError, match=rf"^{OVERRIDES}: 'score' is not an intent classifier"):
        classifier_config(folder, settings_with('{"score": "nearest"}').classifier)


def test_settings_fine_alone_but_not_together_name_both_sources(tmp_path):
    folder = data_folder(tmp_path, {"oos_max_inscope_loss": 0.05, "oos_floor_loss": 0.04})
    with pytest.raises(ClassifierSettingsError, match=rf'domain.json \("classifier"\) and {OVERRIDES} together'):
        classifier_config(folder, settings_with('{"oos_max_inscope_loss": 0.01}').classifier)


def small_demo_data(tmp_path: Path, per_intent: int = 12) -> Path:
    """The demo data cut small (12 examples per intent, a few conversations and articles),
    with the demo's own domain.json: a real build in seconds."""
    folder = tmp_path / "small-data"
    folder.mkdir()
    with (REPO / "data" / "intents.csv").open(newline="", encoding="utf-8") as f:
        by_intent: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in csv.DictReader(f):
            by_intent[row["intent"]].append(row)
    with (folder / "intents.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "intent"])
        writer.writeheader()
        for rows in by_intent.values():
            writer.writerows(rows[:per_intent])
    for name in ("conversations.jsonl", "kb.jsonl"):
        lines = (REPO / "data" / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (folder / name).write_text("".join(lines[:5]), encoding="utf-8")
    (folder / "domain.json").write_text((REPO / "data" / "domain.json").read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def saved_classifier_config(workspace: Path) -> dict:
    return json.loads((workspace / "intents" / "intents.json").read_text(encoding="utf-8"))["config"]


@pytest.mark.slow
def test_a_build_trains_with_the_data_setting_unless_the_environment_overrides_it(tmp_path):
    data = small_demo_data(tmp_path)

    from_data = build_workspace(CsbotSettings.from_env(tmp_path / "ws-data", env={}), data)
    saved = saved_classifier_config(from_data.workspace)
    assert saved["oos_score"] == "nearest"
    # the workspace keeps the domain file it was built from, setting included
    kept = json.loads((from_data.workspace / "domain.json").read_text(encoding="utf-8"))
    assert kept["classifier"] == {"oos_score": "nearest"}

    overridden = CsbotSettings.from_env(tmp_path / "ws-env", env={OVERRIDES: '{"oos_score": "max_prob"}'})
    report = build_workspace(overridden, data)
    assert saved_classifier_config(report.workspace)["oos_score"] == "max_prob"
    manifest = json.loads((report.workspace / "workspace.json").read_text(encoding="utf-8"))
    assert manifest["config"]["classifier"]["overrides"] == {"oos_score": "max_prob"}


def test_a_build_with_a_bad_setting_fails_before_anything_is_written(tmp_path):
    data = small_demo_data(tmp_path)
    domain = json.loads((data / "domain.json").read_text(encoding="utf-8"))
    (data / "domain.json").write_text(json.dumps({**domain, "classifier": {"oos_score": "closest"}}), encoding="utf-8")
    workspace = tmp_path / "ws"
    with pytest.raises(ClassifierSettingsError, match=re.escape(str(data / "domain.json"))):
        build_workspace(CsbotSettings.from_env(workspace, env={}), data)
    assert not workspace.exists()
