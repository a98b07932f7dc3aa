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


def test_an_assistant_without_gpt2_answers_without_loading_torch(demo_workspace, tmp_path):
    # the default embedder backend runs MiniLM on ONNX Runtime, and the demo composes with
    # retrieval: nothing in a turn needs torch (about 200 MB of a replica's memory)
    code = (
        "import shutil, sys\n"
        f"shutil.copytree({str(demo_workspace)!r}, {str(tmp_path / 'ws')!r})\n"
        "from bot.settings import CsbotSettings\n"
        "from bot.workspace import Assistant\n"
        f"assistant = Assistant(CsbotSettings.from_env({str(tmp_path / 'ws')!r}, env={{}})).load()\n"
        "reply = assistant.manager.handle('how do I return a damaged jacket?')\n"
        "assert assistant.embedder.backend == 'onnx', assistant.embedder.backend\n"
        "assert reply.composer in ('retrieval', 'policy'), reply.composer\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
