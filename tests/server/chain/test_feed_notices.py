"""The shopper change feed's notices: who changed and how, nothing more."""

import json

from omnizone.server.adapters.nats_shopper_feed import FEED_PREFIX, decode_notice, encode_notice


def test_a_notice_names_the_shopper_and_the_change_on_its_subject() -> None:
    subject, payload = encode_notice("ab" * 16, "erased")
    assert subject == f"{FEED_PREFIX}.erased"
    assert json.loads(payload) == {"shopper": "ab" * 16, "change": "erased"}  # no personal data
    assert decode_notice(payload) == ("ab" * 16, "erased")


def test_a_malformed_notice_reads_as_none() -> None:
    for payload in (
        b"not json",
        b"[]",
        b'{"shopper": 1, "change": "consent"}',
        b'{"shopper": "x", "change": "renamed"}',
        b'{"change": "consent"}',
    ):
        assert decode_notice(payload) is None, payload
