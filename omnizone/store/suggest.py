"""'Did you mean …?' for a misspelled id or field name in a config file: the
person fixing the file sees the likely intended name, not only that theirs is
unknown. Shared by the store file and the campaign file checks."""

import difflib
from collections.abc import Iterable

#: How alike (difflib's ratio) a known name must be to be suggested.
CUTOFF = 0.6


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The known name most like ``value``, or None when none is close."""
    known = sorted({c for c in choices if c != value})
    found = difflib.get_close_matches(value, known, n=1, cutoff=CUTOFF)
    return found[0] if found else None


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'denim'?)`` to append to a message, or ``""``."""
    if not isinstance(value, str):
        return ""
    match = closest(value, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""
