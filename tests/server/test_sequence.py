"""domain/sequence.py: bounded gap arithmetic."""

from omnizone.server.domain.sequence import MAX_COUNTED_GAP, SeqStep, missing, step


def test_step_counts_holes_and_late_arrivals() -> None:
    assert step(None, 5) == SeqStep(0, 5)
    assert step(5, 6) == SeqStep(0, 6)
    assert step(5, 9) == SeqStep(3, 9)
    assert step(9, 7) == SeqStep(0, 9)


def test_the_live_sessions_will_is_not_a_gap() -> None:
    assert step(10, 13, reserved_will=11) == SeqStep(1, 13)
    assert step(10, 13, reserved_will=13) == SeqStep(2, 13)
    assert step(10, 13, reserved_will=10**18) == SeqStep(2, 13)


def test_a_far_jump_counts_once_and_the_next_ordinary_number_rebases() -> None:
    far = 5 + MAX_COUNTED_GAP + 2
    assert step(5, far) == SeqStep(1, far, jump=True)
    assert step(far, 6) == SeqStep(0, 6)
    assert step(5, 5 + MAX_COUNTED_GAP + 1) == SeqStep(MAX_COUNTED_GAP, 5 + MAX_COUNTED_GAP + 1)


def test_missing_counts_holes_between_neighbours() -> None:
    assert missing([]) == 0
    assert missing([3]) == 0
    assert missing([1, 2, 5, 6, 9]) == 4
    assert missing([1, 2, 5], reserved_will=3) == 1
    assert missing([0, 10**15, 10**15 + 3]) == 3
