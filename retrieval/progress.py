"""How long jobs report progress: a `Progress` callback takes one human-readable line.

Library code takes one (default `no_progress`) and never prints; the CLI passes a
function that writes to stderr, tests pass `list.append`.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    """The default `Progress`: says nothing."""
