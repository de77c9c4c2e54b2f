"""The ``OfferStorage`` port, on every backend: per-shopper sequence numbers,
cumulative acks, idempotent receipts, one redemption per code, push
addresses kept once, the campaign's counts, a shopper's export and erasure."""

import itertools
from collections.abc import Callable

import pytest

from omnizone.server.domain.offers import OfferDraft
from omnizone.server.service.delivery import (
    NewOffer,
    OfferNotFound,
    PushSubscription,
    RedemptionRefused,
)

from .conftest import Storage

STORE = "paris-rivoli"
T0 = 1_767_225_600_000
ANN, BOB = "a" * 32, "b" * 32


def _draft(
    campaign: str = "hello", title: str = "Denim", expires_ms: int = T0 + 3_600_000
) -> OfferDraft:
    return OfferDraft(
        store=STORE,
        campaign_id=campaign,
        title=title,
        body="10% off",
        created_ms=T0,
        expires_ms=expires_ms,
        trigger={"kind": "zone_entered", "zone": "denim"},
        image="/img/denim.jpg",
        product_gtin="09506000134352",
        coupon_code="DENIM10",
    )


def _codes(prefix: str = "C") -> Callable[[OfferDraft], str]:
    numbers = itertools.count(1)
    return lambda draft: f"{draft.coupon_code}-{prefix}{next(numbers)}"


def _add(
    storage: Storage, *shoppers: str, created_ms: int = T0, campaign: str = "hello"
) -> list[str]:
    stored = storage.offers.add_offers(
        [NewOffer(s, _draft(campaign), T0 - 40) for s in shoppers],
        created_ms=created_ms,
        new_code=_codes(f"{campaign}{created_ms}x"),
    )
    return [o.offer_id for o in stored]


# -- offers --------------------------------------------------------------------------------


def test_each_shoppers_offers_are_numbered_in_the_order_stored(storage: Storage) -> None:
    first = storage.offers.add_offers(
        [NewOffer(ANN, _draft(title="one"), T0 - 40), NewOffer(BOB, _draft(), None)],
        created_ms=T0,
        new_code=_codes(),
    )
    more = storage.offers.add_offers(
        [NewOffer(ANN, _draft(title="two")), NewOffer(ANN, _draft(title="three"))],
        created_ms=T0 + 1,
        new_code=_codes("D"),
    )
    assert [(o.shopper_id, o.seq) for o in first + more] == [(ANN, 1), (BOB, 1), (ANN, 2), (ANN, 3)]
    assert storage.offers.cursor(ANN) == (3, 0)
    assert storage.offers.cursor(BOB) == (1, 0)
    assert storage.offers.cursor("c" * 32) == (0, 0)
    read = storage.offers.offers_after(ANN, 0, 10)
    assert [o.title for o in read] == ["one", "two", "three"]
    assert read[0] == first[0]
    offer = read[0]
    assert (offer.coupon_code, offer.trigger_published_ms, offer.created_ms) == (
        "DENIM10-C1",
        T0 - 40,
        T0,
    )
    assert offer.trigger == {"kind": "zone_entered", "zone": "denim"}
    offer.trigger["zone"] = "changed"  # type: ignore[index]  # what was read, not what is stored
    assert storage.offers.offers_after(ANN, 0, 1)[0].trigger["zone"] == "denim"
    assert (offer.image, offer.product_gtin, offer.store) == (
        "/img/denim.jpg",
        "09506000134352",
        STORE,
    )
    assert [o.seq for o in storage.offers.offers_after(ANN, 1, 1)] == [2]
    assert storage.offers.offers_after(ANN, 3, 10) == []
    assert storage.offers.offer_exists(offer.offer_id)
    assert not storage.offers.offer_exists("no-such-offer")


def test_one_offer_takes_the_next_seq_and_the_code_made_for_it(storage: Storage) -> None:
    _add(storage, ANN)
    offer = storage.offers.add_offer(
        ANN, _draft(), created_ms=T0 + 5, trigger_published_ms=None, new_code=lambda: "SOLO-1"
    )
    assert (offer.seq, offer.coupon_code, offer.trigger_published_ms) == (2, "SOLO-1", None)


def test_a_till_code_already_given_is_made_again(storage: Storage) -> None:
    storage.offers.add_offer(
        ANN, _draft(), created_ms=T0, trigger_published_ms=None, new_code=lambda: "DENIM10-SAME"
    )
    tries = iter(["DENIM10-SAME", "DENIM10-FRESH"])
    again = storage.offers.add_offers(
        [NewOffer(BOB, _draft())], created_ms=T0, new_code=lambda _draft: next(tries)
    )
    assert [o.coupon_code for o in again] == ["DENIM10-FRESH"]
    assert storage.offers.cursor(BOB) == (1, 0)  # the failed attempt took no seq
    assert [o.seq for o in storage.offers.offers_after(BOB, 0, 10)] == [1]


# -- acks and receipts ------------------------------------------------------------------------


def test_acks_are_cumulative_never_go_back_nor_past_the_last_offer(storage: Storage) -> None:
    ids = _add(storage, ANN, ANN, ANN)
    assert storage.offers.ack(ANN, 2, T0 + 10) == 2
    assert storage.offers.ack(ANN, 1, T0 + 20) == 2  # never backwards
    assert storage.offers.ack(ANN, 99, T0 + 30) == 3  # clamped to the last seq
    assert storage.offers.cursor(ANN) == (3, 3)
    inbox = storage.offers.inbox(ANN, 0, 10)
    assert [i.receipts for i in inbox] == [
        {"delivered": T0 + 10},
        {"delivered": T0 + 10},
        {"delivered": T0 + 30},
    ]
    assert all(storage.offers.is_delivered(i) for i in ids)
    assert storage.offers.ack("c" * 32, 5, T0) == 0  # no offers: nothing to ack


def test_ack_many_answers_the_stored_ack_of_known_shoppers(storage: Storage) -> None:
    _add(storage, ANN, ANN, BOB)
    assert storage.offers.ack_many({ANN: 1, BOB: 5, "c" * 32: 1}, T0) == {ANN: 1, BOB: 1}
    assert storage.offers.ack_many({ANN: 0}, T0 + 1) == {ANN: 1}
    assert storage.offers.cursor(ANN) == (2, 1)


def test_a_receipt_keeps_its_first_time_and_belongs_to_the_offers_shopper(
    storage: Storage,
) -> None:
    (offer_id,) = _add(storage, ANN)
    assert not storage.offers.is_delivered(offer_id)
    opened = storage.offers.add_receipt(ANN, offer_id, "opened", T0 + 5)
    assert (opened.status, opened.at_ms, opened.created) == ("opened", T0 + 5, True)
    again = storage.offers.add_receipt(ANN, offer_id, "opened", T0 + 9)
    assert (again.at_ms, again.created) == (T0 + 5, False)
    delivered = storage.offers.add_receipt(ANN, offer_id, "delivered", T0 + 6)
    assert delivered.created and storage.offers.is_delivered(offer_id)
    storage.offers.ack(ANN, 1, T0 + 50)  # already delivered: keeps its time
    (item,) = storage.offers.inbox(ANN, 0, 10)
    assert item.receipts == {"opened": T0 + 5, "delivered": T0 + 6}
    with pytest.raises(OfferNotFound):
        storage.offers.add_receipt(BOB, offer_id, "opened", T0)
    with pytest.raises(OfferNotFound):
        storage.offers.add_receipt(ANN, "no-such-offer", "opened", T0)


# -- redemption ------------------------------------------------------------------------------


def test_a_code_is_redeemed_once_and_refusals_say_why(storage: Storage) -> None:
    (offer,) = storage.offers.add_offers(
        [NewOffer(ANN, _draft())], created_ms=T0, new_code=_codes()
    )
    (old,) = storage.offers.add_offers(
        [NewOffer(BOB, _draft(expires_ms=T0 + 10))], created_ms=T0, new_code=_codes("E")
    )
    done = storage.offers.redeem(STORE, offer.coupon_code, T0 + 100)
    assert (done.offer_id, done.campaign_id, done.store, done.code, done.redeemed_ms) == (
        offer.offer_id,
        "hello",
        STORE,
        offer.coupon_code,
        T0 + 100,
    )
    with pytest.raises(RedemptionRefused) as twice:
        storage.offers.redeem(STORE, offer.coupon_code, T0 + 200)
    assert twice.value.reason == "already_redeemed"
    with pytest.raises(RedemptionRefused) as unknown:
        storage.offers.redeem(STORE, "NOPE-1", T0)
    assert unknown.value.reason == "unknown"
    with pytest.raises(RedemptionRefused) as expired:
        storage.offers.redeem(STORE, old.coupon_code, T0 + 11)
    assert expired.value.reason == "expired"
    (item,) = storage.offers.inbox(ANN, 0, 10)
    assert item.redeemed_ms == T0 + 100
    assert storage.offers.inbox(BOB, 0, 10)[0].redeemed_ms is None


def test_campaign_counts_are_receipts_by_status_and_redemptions(storage: Storage) -> None:
    first, second = _add(storage, ANN, BOB)
    _add(storage, ANN, campaign="other", created_ms=T0 + 1)
    storage.offers.ack_many({ANN: 1, BOB: 1}, T0)
    storage.offers.add_receipt(ANN, first, "opened", T0)
    storage.offers.add_receipt(BOB, second, "dismissed", T0)
    storage.offers.redeem(STORE, storage.offers.offers_after(ANN, 0, 1)[0].coupon_code, T0)
    assert storage.offers.campaign_counts("hello") == {
        "delivered": 2,
        "opened": 1,
        "dismissed": 1,
        "redeemed": 1,
    }
    assert storage.offers.campaign_counts("other") == {"redeemed": 0}


def test_campaign_counts_within_a_range_count_receipts_and_redemptions_made_in_it(
    storage: Storage,
) -> None:
    first, second = _add(storage, ANN, BOB)
    storage.offers.ack_many({ANN: 1}, T0)  # delivered at T0
    storage.offers.ack_many({BOB: 1}, T0 + 1000)
    storage.offers.add_receipt(ANN, first, "opened", T0 + 500)
    storage.offers.add_receipt(BOB, second, "opened", T0 + 1500)
    codes = {
        o.offer_id: o.coupon_code for s in (ANN, BOB) for o in storage.offers.offers_after(s, 0, 1)
    }
    storage.offers.redeem(STORE, codes[first], T0 + 600)
    storage.offers.redeem(STORE, codes[second], T0 + 2000)
    counts = storage.offers.campaign_counts
    assert counts("hello", from_ms=T0, to_ms=T0 + 1000) == {
        "delivered": 1,
        "opened": 1,
        "redeemed": 1,
    }
    assert counts("hello", from_ms=T0 + 1000) == {"delivered": 1, "opened": 1, "redeemed": 1}
    assert counts("hello", from_ms=T0 + 1000, to_ms=T0 + 2000) == {
        "delivered": 1,
        "opened": 1,
        "redeemed": 0,
    }
    assert counts("hello", to_ms=T0) == {"redeemed": 0}
    assert counts("hello") == {"delivered": 2, "opened": 2, "redeemed": 2}


# -- push addresses ---------------------------------------------------------------------------


def test_a_push_subscription_is_kept_once_by_endpoint(storage: Storage) -> None:
    one = PushSubscription("https://push.example/1", "key-1", "auth-1")
    two = PushSubscription("https://push.example/2", "key-2", "auth-2")
    storage.offers.save_push_subscription(ANN, one, T0)
    storage.offers.save_push_subscription(ANN, two, T0 + 1)
    renewed = PushSubscription("https://push.example/1", "key-1b", "auth-1b")
    storage.offers.save_push_subscription(ANN, renewed, T0 + 2)
    assert storage.offers.push_subscriptions(ANN) == [renewed, two]
    storage.offers.save_push_subscription(BOB, two, T0 + 3)  # the browser changed hands
    assert storage.offers.push_subscriptions(ANN) == [renewed]
    assert storage.offers.push_subscriptions(BOB) == [two]
    assert not storage.offers.remove_push_subscription(two.endpoint, ANN)  # not Ann's
    assert storage.offers.remove_push_subscription(two.endpoint, BOB)
    assert storage.offers.remove_push_subscription(renewed.endpoint)
    assert not storage.offers.remove_push_subscription(renewed.endpoint)
    assert storage.offers.push_subscriptions(ANN) == storage.offers.push_subscriptions(BOB) == []


def test_push_tokens_are_kept_once_per_platform(storage: Storage) -> None:
    storage.offers.save_push_token(ANN, "fcm", "tok-1", T0)
    storage.offers.save_push_token(ANN, "fcm", "tok-2", T0)
    storage.offers.save_push_token(ANN, "apns", "tok-1", T0)
    storage.offers.save_push_token(ANN, "fcm", "tok-1", T0 + 1)  # again: still one
    assert storage.offers.push_tokens(ANN, "fcm") == ["tok-1", "tok-2"]
    assert storage.offers.push_tokens(ANN, "apns") == ["tok-1"]
    storage.offers.save_push_token(BOB, "fcm", "tok-2", T0 + 2)
    assert storage.offers.push_tokens(ANN, "fcm") == ["tok-1"]
    assert storage.offers.push_tokens(BOB, "fcm") == ["tok-2"]
    assert storage.offers.remove_push_token("fcm", "tok-1")
    assert not storage.offers.remove_push_token("fcm", "tok-1")
    assert storage.offers.push_tokens(ANN, "fcm") == []
    assert storage.offers.push_tokens(ANN, "apns") == ["tok-1"]


# -- the shopper's rights -------------------------------------------------------------------


def test_export_holds_every_offer_with_its_receipts_and_push_addresses(storage: Storage) -> None:
    (offer_id,) = _add(storage, ANN)
    storage.offers.ack(ANN, 1, T0 + 1)
    storage.offers.add_receipt(ANN, offer_id, "opened", T0 + 2)
    storage.offers.save_push_subscription(
        ANN, PushSubscription("https://push.example/1", "k", "a"), T0
    )
    storage.offers.save_push_token(ANN, "apns", "tok", T0 + 3)
    exported = storage.offers.export_shopper(ANN)
    (offer,) = exported["offers"]
    assert offer["offer_id"] == offer_id and offer["seq"] == 1
    assert offer["trigger_published_ms"] == T0 - 40
    assert offer["receipts"] == [
        {"status": "delivered", "at_ms": T0 + 1},
        {"status": "opened", "at_ms": T0 + 2},
    ]
    assert offer["redeemed_ms"] is None
    assert (exported["last_seq"], exported["acked_seq"]) == (1, 1)
    assert exported["push_subscriptions"] == [
        {"endpoint": "https://push.example/1", "created_ms": T0}
    ]
    assert exported["push_tokens"] == [{"platform": "apns", "created_ms": T0 + 3}]
    assert storage.offers.export_shopper(BOB) == {
        "offers": [],
        "last_seq": 0,
        "acked_seq": 0,
        "push_subscriptions": [],
        "push_tokens": [],
    }


def test_erasure_removes_every_row_of_the_shopper_and_counts_them(storage: Storage) -> None:
    first, _second = _add(storage, ANN, ANN)
    (bobs,) = _add(storage, BOB, created_ms=T0 + 1)
    storage.offers.ack(ANN, 2, T0)  # two delivered receipts
    storage.offers.add_receipt(ANN, first, "opened", T0)
    redeemed, unused = (o.coupon_code for o in storage.offers.offers_after(ANN, 0, 10))
    storage.offers.redeem(STORE, redeemed, T0)
    storage.offers.save_push_subscription(
        ANN, PushSubscription("https://push.example/1", "k", "a"), T0
    )
    storage.offers.save_push_token(ANN, "fcm", "tok", T0)
    storage.offers.save_push_token(BOB, "fcm", "bob", T0)
    # 3 receipts + 1 redemption + 2 offers + 1 cursor + 1 subscription + 1 token
    assert storage.offers.erase_shopper(ANN) == 9
    assert storage.offers.erase_shopper(ANN) == 0
    assert storage.offers.offers_after(ANN, 0, 10) == []
    assert storage.offers.cursor(ANN) == (0, 0)
    assert not storage.offers.offer_exists(first)
    assert storage.offers.push_tokens(ANN, "fcm") == []
    assert storage.offers.campaign_counts("hello") == {"redeemed": 0}
    assert storage.offers.offer_exists(bobs)
    assert storage.offers.push_tokens(BOB, "fcm") == ["bob"]
    with pytest.raises(RedemptionRefused) as gone:  # an erased offer's code is unknown now
        storage.offers.redeem(STORE, unused, T0)
    assert gone.value.reason == "unknown"
