"""Sequence arithmetic per (gateway, outbox epoch): gaps, bounded and typed.

Every function here does a constant amount of work per message, whatever the
numbers in it: a message's ``seq`` is attacker-controlled input (0 <= seq <
2**63 by the contract), so nothing may iterate over a range it spans.

A jump of more than ``MAX_COUNTED_GAP`` above the highest seen is not
believed: no outbox holds that many messages (the gateway's bound drops the
oldest first), so it is a broken or hostile gateway. It is counted as one gap,
once, and the next ordinary number far below it re-bases the sequence, so gap
detection goes on working afterwards.
"""

from collections.abc import Iterable
from dataclasses import dataclass

MAX_COUNTED_GAP = 1_000_000
"""The widest hole counted number by number; a wider one counts as one."""


@dataclass(frozen=True, slots=True)
class SeqStep:
    gap: int
    """Numbers counted as skipped just before this one (bounded)."""
    highest: int
    """The highest seq of the epoch after this message."""
    jump: bool = False
    """True when this message jumped implausibly far ahead."""


def step(highest: int | None, seq: int, reserved_will: int | None = None) -> SeqStep:
    """Where an accepted ``seq`` leaves its epoch's sequence.

    ``reserved_will`` is the live session's will number (its birth's seq + 1):
    it is reserved, not lost, so a hole that holds it is one smaller."""
    if highest is None:
        return SeqStep(0, seq)
    if seq <= highest:
        if highest - seq > MAX_COUNTED_GAP:
            return SeqStep(0, seq)  # the highest was the outlier: re-base on this one
        return SeqStep(0, highest)  # late or out of order: accepted, no gap
    hole = seq - highest - 1
    if hole > MAX_COUNTED_GAP:
        return SeqStep(1, seq, jump=True)
    if hole and reserved_will is not None and highest < reserved_will < seq:
        hole -= 1
    return SeqStep(hole, seq)


def missing(sorted_seqs: Iterable[int], reserved_will: int | None = None) -> int:
    """Numbers missing between the first and last of an epoch's accepted seqs
    (ascending, distinct), each hole counted as ``step`` counts it."""
    total = 0
    previous: int | None = None
    lowest: int | None = None
    for seq in sorted_seqs:
        if previous is None:
            lowest = seq
        else:
            hole = seq - previous - 1
            total += 1 if hole > MAX_COUNTED_GAP else hole
        previous = seq
    if (
        reserved_will is not None
        and lowest is not None
        and previous is not None
        and lowest < reserved_will < previous
    ):
        total = max(0, total - 1)
    return total
