"""Making the app is cheap: no model loads until the app starts (its lifespan)."""

from __future__ import annotations

import subprocess
import sys


def test_creating_the_app_loads_no_model(tmp_path):
    # cheap means no heavy import and no model load: that is what is asserted, not a time
    code = (
        "import sys\n"
        "from bot.server.app import create_app\n"
        "from bot.settings import CsbotSettings\n"
        f"app = create_app(CsbotSettings(workspace={str(tmp_path)!r}))\n"
        "heavy = [m for m in ('torch', 'faiss', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert app.state.runtime.state == 'loading'\n"
        "paths = app.openapi()['paths']\n"
        "assert '/api/v1/conversations/{conversation_id}/messages/stream' in paths\n"
        "assert app.docs_url is None\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
