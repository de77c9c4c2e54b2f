"""The till code of one offer starts with its campaign's code, whatever that
code looks like: a ``{code}`` template, a fixed code with dashes, or none."""

import pytest

from omnizone.server.domain.offers.coupons import (
    CODE_ALPHABET,
    CODE_LENGTH,
    till_code,
    unique_code,
)


@pytest.mark.parametrize(
    ("campaign_code", "expected"),
    [
        ("SPRING-SALE-{code}", "SPRING-SALE-7KQ2M4XD"),
        ("{code}-VIP", "7KQ2M4XD-VIP"),
        ("VIP-2025", "VIP-2025-7KQ2M4XD"),
        ("vip-2025 ", "VIP-2025-7KQ2M4XD"),
        ("SUMMER10", "SUMMER10-7KQ2M4XD"),
        (None, "OZ-7KQ2M4XD"),
        ("", "OZ-7KQ2M4XD"),
    ],
)
def test_the_till_code_keeps_the_campaign_code_whole(
    campaign_code: str | None, expected: str
) -> None:
    assert till_code(campaign_code, "7KQ2M4XD") == expected


def test_unique_codes_are_eight_till_safe_characters_fixed_by_their_inputs() -> None:
    codes = {unique_code("spring", "shopper", visit) for visit in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert unique_code("spring", "shopper", 7) == unique_code("spring", "shopper", 7)
    assert not set(CODE_ALPHABET) & set("ILOU")
