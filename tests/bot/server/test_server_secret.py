"""The server secret of a workspace: one value for every process that starts on it, never
read half-written, readable by the service user only."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from bot.server.access import SECRET_FILE, load_or_create_secret


def test_processes_starting_at_once_share_one_whole_secret(tmp_path):
    starting = Barrier(8)

    def start() -> bytes:
        starting.wait()
        return load_or_create_secret(tmp_path, None)

    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: start(), range(8)))
    assert len(set(values)) == 1 and len(values[0]) == 64
    path = tmp_path / SECRET_FILE
    assert path.read_bytes().strip() == values[0]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]  # no temporary file left


def test_a_configured_secret_wins_and_a_short_stored_one_is_refused(tmp_path):
    assert load_or_create_secret(tmp_path, "k" * 40) == b"k" * 40
    assert not (tmp_path / SECRET_FILE).exists()
    (tmp_path / SECRET_FILE).write_bytes(b"short\n")
    with pytest.raises(ValueError, match="shorter than 32 bytes; delete it"):
        load_or_create_secret(tmp_path, None)
