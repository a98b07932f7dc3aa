"""Importing the dialogue layer loads no heavy library: models load when asked to."""

import subprocess
import sys


def test_importing_bot_and_its_cli_loads_no_torch_faiss_or_sentence_transformers():
    code = (
        "import sys, bot, bot.cli, bot.dialogue, bot.workspace, bot.store, bot.settings, bot.server.app\n"
        "import bot.composers.retrieval, bot.composers.promoted, bot.evaluation.intents_and_retrieval\n"
        "heavy = [m for m in ('torch', 'faiss', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
