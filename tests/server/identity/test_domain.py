"""Consent gates, the profile summary, webhook signatures and QR tokens."""

from collections.abc import Callable

import pytest

from omnizone.server.domain.identity import (
    Consent,
    ConsentChange,
    ProfileEvent,
    Purpose,
    QrTokenError,
    QrTokenExpired,
    WebhookSignatureError,
    check_webhook_signature,
    current_consent,
    may_send_offer,
    may_show_associate_context,
    may_store_location,
    read_qr_token,
    sign_qr_token,
    summarize_profile,
    webhook_signature,
)

from .conftest import GTIN, OTHER_GTIN, T0

THIRD_GTIN = "00012345600012"


@pytest.mark.parametrize(
    ("consent", "store_location", "send_offer"),
    [
        (None, False, False),
        (Consent(), False, False),
        (Consent(location_analytics=True), True, False),
        (Consent(personalized_offers=True), False, True),
        (Consent(True, True), True, True),
    ],
)
def test_each_purpose_gates_only_its_own_use(
    consent: Consent | None, store_location: bool, send_offer: bool
) -> None:
    assert may_store_location(consent) is store_location
    assert may_send_offer(consent) is send_offer
    assert may_show_associate_context(consent) is send_offer


def test_the_history_ends_in_the_latest_choice_per_purpose() -> None:
    history = [
        ConsentChange(Purpose.PERSONALIZED_OFFERS, True, T0),
        ConsentChange(Purpose.LOCATION_ANALYTICS, True, T0 + 1),
        ConsentChange(Purpose.PERSONALIZED_OFFERS, False, T0 + 2),
    ]
    assert current_consent(history) == Consent(location_analytics=True)
    assert current_consent([]) == Consent()


def event(kind: str, gtin: str, at: int, amount: float | None = None) -> ProfileEvent:
    return ProfileEvent(kind, gtin, "online", T0 + at, amount)  # type: ignore[arg-type]


def test_cart_and_wishlist_are_the_net_of_adds_and_removes() -> None:
    summary = summarize_profile(
        [
            event("cart_add", GTIN, 1),
            event("cart_add", OTHER_GTIN, 2),
            event("cart_remove", GTIN, 3),
            event("cart_add", THIRD_GTIN, 4),
            event("wishlist_add", GTIN, 5),
            event("wishlist_add", OTHER_GTIN, 6),
            event("wishlist_remove", OTHER_GTIN, 7),
            event("wishlist_remove", THIRD_GTIN, 8),  # never added: nothing happens
        ]
    )
    assert summary.cart == (THIRD_GTIN, OTHER_GTIN)
    assert summary.wishlist == (GTIN,)


def test_events_are_folded_in_time_order_not_arrival_order() -> None:
    # the removal arrived first but happened after the add
    summary = summarize_profile([event("cart_remove", GTIN, 9), event("cart_add", GTIN, 1)])
    assert summary.cart == ()


def test_a_purchase_takes_the_item_out_of_cart_and_wishlist() -> None:
    summary = summarize_profile(
        [
            event("cart_add", GTIN, 1),
            event("wishlist_add", GTIN, 2),
            event("purchase", GTIN, 3, 89.9),
            event("purchase", OTHER_GTIN, 4, 20.0),
        ]
    )
    assert summary.cart == () and summary.wishlist == ()
    assert [(p.gtin, p.amount) for p in summary.purchases] == [(OTHER_GTIN, 20.0), (GTIN, 89.9)]


def test_recent_views_are_distinct_most_recent_first_and_limited() -> None:
    views = [event("product_view", GTIN, 1), event("product_view", OTHER_GTIN, 2)]
    views += [event("product_view", THIRD_GTIN, 3), event("product_view", GTIN, 4)]
    summary = summarize_profile(views, views=2)
    assert [(v.gtin, v.at_ms) for v in summary.recent_views] == [
        (GTIN, T0 + 4),
        (THIRD_GTIN, T0 + 3),
    ]


SECRET = b"a-long-shared-webhook-secret"
BODY = (
    b'{"loyalty_id":"FR-0042-7781","events":[{"type":"purchase",'
    b'"gtin":"09506000134352","channel":"pos","amount":89.9}]}'
)


def test_webhook_signature_matches_openssl() -> None:
    # printf '<BODY>' | openssl dgst -sha256 -hmac 'a-long-shared-webhook-secret'
    expected = "sha256=f873cb36cc9394f2bbc8e0649dbdeab59c175599f9262f61e84c56facb2be77e"
    assert webhook_signature(SECRET, BODY) == expected
    check_webhook_signature(SECRET, BODY, expected)
    check_webhook_signature(SECRET, BODY, expected.upper().replace("SHA256=", "sha256="))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing X-Omnizone-Signature header"),
        ("", "missing X-Omnizone-Signature header"),
        ("f873cb36cc93", r"must be sha256=<64 hex digits>"),
        ("sha1=" + "0" * 40, r"must be sha256=<64 hex digits>"),
        ("sha256=" + "0" * 64, "does not match the body"),
    ],
)
def test_a_bad_webhook_signature_says_what_is_wrong(header: str | None, message: str) -> None:
    with pytest.raises(WebhookSignatureError, match=message):
        check_webhook_signature(SECRET, BODY, header)


def test_a_changed_body_fails_the_signature() -> None:
    good = webhook_signature(SECRET, BODY)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        check_webhook_signature(SECRET, BODY.replace(b"89.9", b"0.01"), good)


QR_SECRET = b"q" * 32


def test_a_qr_token_names_its_shopper_until_it_expires() -> None:
    token = sign_qr_token(QR_SECRET, "abc123", T0 + 300_000)
    assert read_qr_token(QR_SECRET, token, T0) == "abc123"
    assert read_qr_token(QR_SECRET, token, T0 + 299_999) == "abc123"
    with pytest.raises(QrTokenExpired, match="ask the shopper to refresh"):
        read_qr_token(QR_SECRET, token, T0 + 300_000)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace("abc123", "abc124", 1),  # another shopper
        lambda t: t.replace(str(T0 + 300_000), str(T0 + 900_000)),  # longer life
        lambda t: t[:-2],
    ],
)
def test_a_tampered_qr_token_is_refused(tamper: Callable[[str], str]) -> None:
    token = sign_qr_token(QR_SECRET, "abc123", T0 + 300_000)
    with pytest.raises(QrTokenError, match="signature is not valid"):
        read_qr_token(QR_SECRET, tamper(token), T0)


@pytest.mark.parametrize("token", ["", "nodots", "a.b.c", "a.1", ".1.x"])
def test_a_malformed_qr_token_is_refused(token: str) -> None:
    with pytest.raises(QrTokenError, match="not an omnizone QR token"):
        read_qr_token(QR_SECRET, token, T0)


def test_a_token_from_another_secret_is_refused() -> None:
    token = sign_qr_token(b"x" * 32, "abc123", T0 + 300_000)
    with pytest.raises(QrTokenError, match="not issued by this server"):
        read_qr_token(QR_SECRET, token, T0)
