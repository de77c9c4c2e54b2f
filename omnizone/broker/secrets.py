"""Secrets: never an example value, read from a file or the environment,
written for the owner only.

Shared by the server (API keys, its broker password) and the gateway (its
broker password): ``refuse_placeholder`` stops a start with a value copied
from the documentation or ``config/`` (``change-me`` …) and says how to make
a real one; ``read_secret_file`` reads ``--…-file`` options; ``private_file``
creates a file (a database, a key) ``0600`` before anything is written to it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: How to make a real secret, quoted by every refusal.
HOW_TO_MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"

#: Example values found in the documentation and config/ (compared lower-cased,
#: without surrounding angle brackets or spaces).
PLACEHOLDERS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "please-change-me",
        "a long random key",
        "a-long-random-key",
        "a-long-shared-webhook-secret",
        "password from retail it",
        "password",
        "passw0rd",
        "key",
        "your-secret",
        "your-password",
        "your-api-key",
        "xxxxxxxx",
        "12345678",
        "...",
        "…",
    }
)


class PlaceholderSecret(ValueError):
    """A secret is an example value; the message says how to make a real one."""


def is_placeholder(value: str) -> bool:
    return value.strip().strip("<>").strip().lower() in PLACEHOLDERS


def refuse_placeholder(value: str, what: str) -> str:
    """``value`` itself, or ``PlaceholderSecret`` naming ``what`` when it is an example."""
    if is_placeholder(value):
        raise PlaceholderSecret(
            f"{what} is the example value {value.strip()!r}: anyone who read the docs knows "
            f"it. Make a real one, e.g. {HOW_TO_MAKE_ONE}"
        )
    return value


def read_secret_file(path: str | Path, what: str) -> str:
    """The first line of ``path`` (a secret file: Docker/systemd credentials and the like)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"{what}: cannot read {path}: {error.strerror}") from None
    value = text.splitlines()[0].strip() if text.strip() else ""
    if not value:
        raise ValueError(f"{what}: {path} is empty")
    return value


def private_file(path: Path) -> None:
    """Make sure ``path`` exists and only its owner may read or write it (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
