"""finetune.checkpoint: settings chosen for a model after its training are recorded in its
csbot_model.json, beside what training wrote, and read back by the decoder."""

from __future__ import annotations

import json

import pytest

from finetune.checkpoint import MODEL_META, set_generation_settings
from finetune.decoder import GeneratorConfig, resolve_generation


def test_a_chosen_setting_joins_the_generation_section_and_the_decoder_reads_it(tmp_path) -> None:
    meta = {"base": "scratch", "generation": {"min_overlap": 0.2, "consensus_k": 5}}
    (tmp_path / MODEL_META).write_text(json.dumps(meta), encoding="utf-8")
    section = set_generation_settings(tmp_path, min_agreement=0.7, min_agreement_choice={"n": 3})
    assert section == {"min_overlap": 0.2, "consensus_k": 5, "min_agreement": 0.7, "min_agreement_choice": {"n": 3}}
    written = json.loads((tmp_path / MODEL_META).read_text(encoding="utf-8"))
    assert written == {"base": "scratch", "generation": section}
    assert resolve_generation(GeneratorConfig(), written).min_agreement == 0.7
    assert [p.name for p in tmp_path.iterdir()] == [MODEL_META]  # no temporary file left


def test_a_directory_without_csbot_model_json_is_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a csbot model directory"):
        set_generation_settings(tmp_path, min_agreement=0.5)
