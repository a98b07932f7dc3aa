"""The classifier's settings (bot.intents.config)."""

from __future__ import annotations

import pytest

from bot.intents import IntentClassifierConfig


def test_config_accepts_json_overrides_and_rejects_unknown_scores():
    config = IntentClassifierConfig.from_dict({"C": 0.5, "char_ngram_range": [2, 4], "unknown": 1})
    assert config.C == 0.5 and config.char_ngram_range == (2, 4)
    with pytest.raises(ValueError, match="oos_score"):
        IntentClassifierConfig(oos_score="bogus")
