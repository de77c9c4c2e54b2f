"""Masking MAC-like strings and capping what is kept of a rejected message.

A dead letter is kept so that someone can see why a gateway's message was
refused, not as a copy of what it carried: a broken or hostile gateway may
send raw Bluetooth addresses (personal data) or megabytes. So the stored
payload, its reason and the log line go through :func:`mask_macs`, and the
payload is cut to a cap, with its original size kept beside it.
"""

import re
from dataclasses import dataclass

MAC_MASK = "xx:xx:xx:xx:xx:xx"
#: What a dead letter keeps of its payload by default (``dead_letter_payload_bytes``),
#: and the most it may be set to (also what is ever read back of an older row).
DEFAULT_DEAD_LETTER_BYTES = 4096
MAX_DEAD_LETTER_BYTES = 65_536
#: A dead letter's reason and topic are cut to this many characters.
MAX_REASON_CHARS = 1000

_HEX = "0-9A-Fa-f"
# aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff and a bare run of
# exactly 12 hex digits (aabbccddeeff), not inside a longer hex run.
_MAC_TEXT = (
    rf"(?<![{_HEX}])(?:"
    rf"[{_HEX}]{{2}}(?:[:-][{_HEX}]{{2}}){{5}}"
    rf"|[{_HEX}]{{4}}\.[{_HEX}]{{4}}\.[{_HEX}]{{4}}"
    rf"|[{_HEX}]{{12}}"
    rf")(?![{_HEX}])"
)
_MAC_STR = re.compile(_MAC_TEXT)
_MAC_BYTES = re.compile(_MAC_TEXT.encode("ascii"))
_MASK_BYTES = MAC_MASK.encode("ascii")
#: The longest MAC form (17 characters): how far past the cap we look so that
#: an address across the cut is masked before it is cut.
_LONGEST_MAC = 17


def mask_macs(text: str) -> str:
    """``text`` with every MAC-like string replaced by ``xx:xx:xx:xx:xx:xx``."""
    return _MAC_STR.sub(MAC_MASK, text)


@dataclass(frozen=True, slots=True)
class KeptPayload:
    payload: bytes
    original_bytes: int

    @property
    def truncated(self) -> bool:
        return len(self.payload) < self.original_bytes


def keep_payload(payload: bytes, cap: int) -> KeptPayload:
    """At most ``cap`` bytes of ``payload``, MAC-like strings masked."""
    if cap < 0:
        raise ValueError("cap must not be negative")
    window = payload[: cap + _LONGEST_MAC]
    masked = _MAC_BYTES.sub(_MASK_BYTES, window)
    return KeptPayload(masked[:cap], len(payload))


def cap_text(text: str, limit: int) -> str:
    """``text`` masked and cut to ``limit`` characters (a marker says so)."""
    masked = mask_macs(text[: limit + _LONGEST_MAC])
    if len(text) <= limit and len(masked) <= limit:
        return masked
    return masked[:limit] + f"… [{len(text)} characters]"
