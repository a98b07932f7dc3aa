"""Importing the dialogue layer loads no heavy library: models load when asked to."""

import subprocess
import sys


def _run_fresh(code: str, *, leaves_out: tuple[str, ...]) -> None:
    """Run `code` in a fresh interpreter, then check that none of `leaves_out` was imported."""
    check = f"heavy = [m for m in {leaves_out!r} if m in sys.modules]\nassert not heavy, heavy\n"
    proc = subprocess.run([sys.executable, "-c", "import sys\n" + code + check], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_importing_bot_and_its_cli_loads_no_torch_faiss_or_sentence_transformers():
    _run_fresh(
        "import bot, bot.cli, bot.dialogue, bot.workspace, bot.store, bot.settings, bot.server.app\n"
        "import bot.composers.retrieval, bot.composers.promoted, bot.evaluation.intents_and_retrieval\n",
        leaves_out=("torch", "faiss", "sentence_transformers", "transformers"),
    )


def test_an_assistant_without_gpt2_answers_without_loading_torch(demo_workspace, tmp_path):
    # the default embedder backend runs MiniLM on ONNX Runtime, and the demo composes with
    # retrieval: nothing in a turn needs torch (about 200 MB of a replica's memory)
    workspace = str(tmp_path / "ws")
    _run_fresh(
        "import shutil\n"
        f"shutil.copytree({str(demo_workspace)!r}, {workspace!r})\n"
        "from bot.settings import CsbotSettings\n"
        "from bot.workspace import Assistant\n"
        f"assistant = Assistant(CsbotSettings.from_env({workspace!r}, env={{}})).load()\n"
        "reply = assistant.manager.handle('how do I return a damaged jacket?')\n"
        "assert assistant.embedder.backend == 'onnx', assistant.embedder.backend\n"
        "assert reply.composer in ('retrieval', 'policy'), reply.composer\n",
        leaves_out=("torch", "sentence_transformers", "transformers"),
    )
