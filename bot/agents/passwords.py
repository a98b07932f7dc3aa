"""Agents' passwords: scrypt hashes with their parameters in the stored string, checked in
constant time, and the one strength rule the panel enforces.

The parameters travel with each hash ("scrypt$n$r$p$salt$hash") so that raising them
later leaves the hashes already stored checkable."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from bot.agents.errors import InvalidAgentInputError

N, R, P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MIN_LENGTH, MAX_LENGTH = 10, 1024
# a stored string asking for more work than this is not ours (scrypt needs 128*n*r bytes)
_MAX_N, _MAX_R, _MAX_P = 2**17, 8, 4


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * n * r * p + 2**20
    )


def hash_password(password: str) -> str:
    """The string to store for `password`: "scrypt$n$r$p$salt_b64$hash_b64"."""
    if not isinstance(password, str):
        raise InvalidAgentInputError(f"a password is text, got {type(password).__name__}")
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, N, R, P, KEY_BYTES)
    return "$".join(["scrypt", str(N), str(R), str(P), base64.b64encode(salt).decode(), base64.b64encode(key).decode()])


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches the stored hash (compared in constant time). A malformed
    stored string matches nothing."""
    if not isinstance(password, str) or not isinstance(stored, str):
        return False
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P and salt and key):
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(key)), key)


def burn_password_check(password: str) -> None:
    """Spend the time one `verify_password` takes, for a name that has no hash: a sign-in
    with an unknown name then takes as long as one with a wrong password."""
    _scrypt(password if isinstance(password, str) else "", b"\0" * SALT_BYTES, N, R, P, KEY_BYTES)


def check_password_strength(password: str) -> None:
    """Raise InvalidAgentInputError unless `password` is text of 10 to 1024 characters."""
    if not isinstance(password, str):
        raise InvalidAgentInputError(f"a password is text, got {type(password).__name__}")
    if len(password) < MIN_LENGTH:
        raise InvalidAgentInputError(
            f"the password has {len(password)} characters; use at least {MIN_LENGTH} "
            "(a passphrase of a few words works)"
        )
    if len(password) > MAX_LENGTH:
        raise InvalidAgentInputError(f"the password has {len(password)} characters; use at most {MAX_LENGTH}")
