"""Storage and the pure rules of delivery: seq, cumulative acks, receipts,
redemption, erase/export, and what a subscription must look like."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnizone.server.adapters.db import make_engine
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.domain.offers.coupons import CODE_ALPHABET, CODE_LENGTH
from omnizone.server.service.delivery import (
    DeliveredOffer,
    InvalidPushSubscription,
    NewOffer,
    NoOfferConsent,
    OfferDelivery,
    OfferNotFound,
    RedemptionRefused,
    check_push_subscription,
    next_ack,
    place,
    push_payload,
    resume_point,
)
from tests.server.delivery.conftest import Clock, b64url, draft, new_subscriber


@pytest.fixture
def repo(tmp_path: Path) -> OfferRepository:
    return OfferRepository(make_engine(f"sqlite:///{tmp_path / 'offers.db'}"))


@pytest.fixture
def delivery(repo: OfferRepository) -> Iterator[OfferDelivery]:
    service = OfferDelivery(repo, clock=Clock())
    yield service
    service.close()


# -- pure rules ----------------------------------------------------------------------


@given(st.integers(0, 50), st.integers(0, 80), st.integers(0, 50))
def test_acks_never_go_backwards_nor_past_the_last_offer(
    current: int, asked: int, last: int
) -> None:
    acked = next_ack(current, asked, last)
    assert acked >= current
    assert acked <= max(current, last)
    if current <= asked <= last:
        assert acked == asked


def test_resume_point_uses_the_client_cursor_clamped_else_the_server_ack() -> None:
    assert resume_point(None, last_seq=9, acked_seq=4) == 4
    assert resume_point(2, last_seq=9, acked_seq=4) == 2
    assert resume_point(50, last_seq=9, acked_seq=4) == 9


def test_a_live_stream_sends_the_next_skips_the_seen_and_fills_gaps() -> None:
    assert place(4, 5) == "send"
    assert place(4, 4) == "skip"
    assert place(4, 2) == "skip"
    assert place(4, 7) == "fill"


def test_a_push_subscription_is_checked_field_by_field() -> None:
    good = new_subscriber("https://push.example.com/abc")
    auth = b64url(good.auth)
    assert check_push_subscription(good.endpoint, good.p256dh, auth).endpoint == good.endpoint
    with pytest.raises(InvalidPushSubscription, match="endpoint: expected an https URL"):
        check_push_subscription("http://10.0.0.5/internal", good.p256dh, auth)
    with pytest.raises(InvalidPushSubscription, match=r"keys\.p256dh: expected a 65-byte"):
        check_push_subscription(good.endpoint, b64url(b"\x04" * 20), auth)
    with pytest.raises(InvalidPushSubscription, match=r"keys\.auth: expected 16 bytes"):
        check_push_subscription(good.endpoint, good.p256dh, b64url(b"x" * 5))
    with pytest.raises(InvalidPushSubscription, match=r"keys\.auth: not base64url"):
        check_push_subscription(good.endpoint, good.p256dh, "!!!")


def test_an_offer_too_big_for_a_push_message_is_sent_as_a_pointer() -> None:
    offer = DeliveredOffer(
        offer_id="o-1",
        shopper_id="alice",
        seq=3,
        store="paris-rivoli",
        campaign_id="c",
        title="t",
        body="x" * 5000,
        coupon_code="C-1",
        expires_ms=1,
        created_ms=0,
        trigger={},
    )
    payload = push_payload(offer)
    assert len(payload) < 4096
    assert b'"truncated":true' in payload and b'"offer_id":"o-1"' in payload


# -- storage ---------------------------------------------------------------------------


def test_seq_counts_up_by_one_per_shopper_even_under_concurrent_publishers(
    delivery: OfferDelivery,
) -> None:
    seqs: dict[str, list[int]] = {"alice": [], "bob": []}
    lock = threading.Lock()

    def publish(shopper: str) -> None:
        for n in range(15):
            offer = delivery.publish(shopper, draft(n))
            with lock:
                seqs[shopper].append(offer.seq)

    threads = [threading.Thread(target=publish, args=(s,)) for s in ("alice", "bob") * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs["alice"]) == list(range(1, 46))
    assert sorted(seqs["bob"]) == list(range(1, 46))
    assert [o.seq for o in delivery.offers_after("alice", 40)] == [41, 42, 43, 44, 45]


def test_a_batch_is_stored_in_order_with_each_shoppers_next_seq(
    delivery: OfferDelivery,
) -> None:
    delivery.publish("bob", draft(0))
    batch = [
        NewOffer("alice", draft(1)),  # alice's first: her cursor is created in the batch
        NewOffer("bob", draft(2), trigger_published_ms=77),
        NewOffer("alice", draft(3)),
    ]
    stored = delivery.publish_many(batch)
    assert [(o.shopper_id, o.seq, o.title) for o in stored] == [
        ("alice", 1, "Offer 1"),
        ("bob", 2, "Offer 2"),
        ("alice", 2, "Offer 3"),
    ]
    assert stored[1].trigger_published_ms == 77
    assert [o.seq for o in delivery.offers_after("alice", 0)] == [1, 2]


def test_a_batch_skips_shoppers_without_offer_consent(repo: OfferRepository) -> None:
    service = OfferDelivery(repo, clock=Clock(), may_deliver=lambda shopper: shopper != "eve")
    try:
        stored = service.publish_many([NewOffer("eve", draft(1)), NewOffer("alice", draft(2))])
        assert [o.shopper_id for o in stored] == ["alice"]
        assert service.offers_after("eve", 0) == []
    finally:
        service.close()


def test_each_offer_gets_its_own_code_starting_with_the_campaign_code(
    delivery: OfferDelivery,
) -> None:
    a = delivery.publish("alice", draft(1, coupon="denim10"))
    b = delivery.publish("alice", draft(2, coupon="denim10"))
    c = delivery.publish("alice", draft(3, coupon=None))
    assert a.coupon_code.startswith("DENIM10-") and b.coupon_code.startswith("DENIM10-")
    assert a.coupon_code != b.coupon_code
    assert c.coupon_code.startswith("OZ-")


def test_a_code_the_decision_made_unique_is_kept_and_a_taken_one_is_made_unique_again(
    delivery: OfferDelivery,
) -> None:
    """A filled-in ``{code}`` template reaches the phone as decided; should the
    store find it taken (the same decision delivered twice), the write is
    retried with a unique part appended instead of failing."""
    decided = "SPRING-SALE-7KQ2M4XD"
    first = delivery.publish("alice", draft(1, coupon=decided, coupon_unique=True))
    again = delivery.publish("bob", draft(2, coupon=decided, coupon_unique=True))
    assert first.coupon_code == decided
    assert again.coupon_code.startswith(f"{decided}-")
    assert len(again.coupon_code) == len(decided) + 1 + CODE_LENGTH
    assert set(again.coupon_code.removeprefix(f"{decided}-")) <= set(CODE_ALPHABET)
    assert [o.coupon_code for o in delivery.offers_after("bob", 0)] == [again.coupon_code]


def test_the_stored_offer_keeps_content_and_latency_bookkeeping(
    delivery: OfferDelivery,
) -> None:
    sent = delivery.publish(
        "alice", draft(1, image="/img/j.jpg", product_gtin="09506000134352"), trigger_published_ms=7
    )
    (stored,) = delivery.offers_after("alice", 0)
    assert stored == sent
    assert stored.trigger_published_ms == 7
    wire = stored.wire()
    assert wire["product_gtin"] == "09506000134352" and wire["image"] == "/img/j.jpg"
    assert wire["trigger"]["zone"] == "denim"
    assert "shopper_id" not in wire and "trigger_published_ms" not in wire


def test_acks_are_cumulative_and_record_delivered_receipts(delivery: OfferDelivery) -> None:
    offers = [delivery.publish("alice", draft(n)) for n in range(5)]
    assert delivery.ack("alice", 3) == 3
    assert delivery.ack("alice", 2) == 3  # never backwards
    assert delivery.ack("alice", 99) == 5  # never past the last offer
    assert delivery.ack("nobody", 4) == 0
    inbox = delivery.inbox("alice")
    assert all("delivered" in item.receipts for item in inbox)
    assert {item.offer.offer_id for item in inbox} == {o.offer_id for o in offers}


def test_websocket_acks_of_many_shoppers_are_written_together(
    delivery: OfferDelivery,
) -> None:
    for shopper in ("alice", "bob"):
        for n in range(3):
            delivery.publish(shopper, draft(n))
    delivery.ack_soon("alice", 1)
    delivery.ack_soon("alice", 3)
    delivery.ack_soon("alice", 2)  # cumulative: never backwards
    delivery.ack_soon("bob", 2)
    delivery.ack_soon("nobody", 4)
    deadline = time.monotonic() + 10
    while (delivery.acked_seq("alice"), delivery.acked_seq("bob")) != (3, 2):
        assert time.monotonic() < deadline, "acks not written"
        time.sleep(0.01)
    delivered = {i.offer.seq for i in delivery.inbox("bob") if "delivered" in i.receipts}
    assert delivered == {1, 2}


def test_receipts_are_idempotent_and_only_for_the_shoppers_own_offers(
    delivery: OfferDelivery,
) -> None:
    offer = delivery.publish("alice", draft())
    first = delivery.receipt("alice", offer.offer_id, "opened")
    assert first.created
    again = delivery.receipt("alice", offer.offer_id, "opened")
    assert not again.created and again.at_ms == first.at_ms
    (item,) = delivery.inbox("alice")
    assert set(item.receipts) == {"delivered", "opened"}  # opened implies delivered
    with pytest.raises(OfferNotFound):
        delivery.receipt("bob", offer.offer_id, "dismissed")
    with pytest.raises(OfferNotFound):
        delivery.receipt("alice", "no-such-offer", "opened")


def test_redemption_is_attributed_once_and_refused_with_a_reason(
    repo: OfferRepository,
) -> None:
    clock = Clock()
    delivery = OfferDelivery(repo, clock=clock)
    try:
        offer = delivery.publish("alice", draft(campaign="jackets-20", coupon="JACKET20"))
        done = delivery.redeem("paris-opera", f"  {offer.coupon_code.lower()} ")
        assert (done.offer_id, done.campaign_id, done.store) == (
            offer.offer_id,
            "jackets-20",
            "paris-opera",
        )
        with pytest.raises(RedemptionRefused) as again:
            delivery.redeem("paris-rivoli", offer.coupon_code)
        assert again.value.reason == "already_redeemed"
        with pytest.raises(RedemptionRefused) as unknown:
            delivery.redeem("paris-rivoli", "JACKET20-NOPE")
        assert unknown.value.reason == "unknown"
        late = delivery.publish("alice", draft(expires_in_ms=1000))
        clock.offset_ms = 5000
        with pytest.raises(RedemptionRefused) as expired:
            delivery.redeem("paris-rivoli", late.coupon_code)
        assert expired.value.reason == "expired"
        (first, second) = delivery.inbox("alice")
        assert first.redeemed_ms == done.redeemed_ms and second.redeemed_ms is None
    finally:
        delivery.close()


def test_concurrent_tills_redeem_a_code_exactly_once(delivery: OfferDelivery) -> None:
    offer = delivery.publish("alice", draft())
    outcomes: list[str] = []
    lock = threading.Lock()

    def till() -> None:
        try:
            delivery.redeem("paris-rivoli", offer.coupon_code)
            result = "ok"
        except RedemptionRefused as refused:
            result = refused.reason
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=till) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_redeemed"] * 5 + ["ok"]


def test_export_then_erase_covers_offers_receipts_redemptions_and_push_addresses(
    delivery: OfferDelivery, repo: OfferRepository
) -> None:
    kept = delivery.publish("bob", draft())
    offer = delivery.publish("alice", draft())
    delivery.ack("alice", 1)
    delivery.receipt("alice", offer.offer_id, "opened")
    delivery.redeem("paris-rivoli", offer.coupon_code)
    sub = new_subscriber("https://push.example.com/alice")
    delivery.subscribe_push("alice", sub.endpoint, sub.p256dh, b64url(sub.auth))
    delivery.register_push_token("alice", "fcm", "fcm-token-1")

    exported = delivery.export_shopper("alice")
    (item,) = exported["offers"]
    assert item["offer_id"] == offer.offer_id and item["redeemed_ms"] is not None
    assert {r["status"] for r in item["receipts"]} == {"delivered", "opened"}
    assert exported["acked_seq"] == 1
    assert exported["push_subscriptions"][0]["endpoint"] == sub.endpoint
    assert exported["push_tokens"][0]["platform"] == "fcm"

    assert delivery.erase_shopper("alice") >= 6
    empty = delivery.export_shopper("alice")
    assert empty == {
        "offers": [],
        "last_seq": 0,
        "acked_seq": 0,
        "push_subscriptions": [],
        "push_tokens": [],
    }
    assert repo.push_subscriptions("alice") == [] and repo.push_tokens("alice", "fcm") == []
    assert [o.offer_id for o in delivery.offers_after("bob", 0)] == [kept.offer_id]
    with pytest.raises(RedemptionRefused):
        delivery.redeem("paris-rivoli", offer.coupon_code)  # unknown now


def test_resubscribing_a_browser_keeps_one_row_and_moves_it_to_the_new_shopper(
    delivery: OfferDelivery, repo: OfferRepository
) -> None:
    sub = new_subscriber("https://push.example.com/device-1")
    delivery.subscribe_push("alice", sub.endpoint, sub.p256dh, b64url(sub.auth))
    delivery.subscribe_push("alice", sub.endpoint, sub.p256dh, b64url(sub.auth))
    assert len(repo.push_subscriptions("alice")) == 1
    delivery.subscribe_push("bob", sub.endpoint, sub.p256dh, b64url(sub.auth))
    assert repo.push_subscriptions("alice") == []
    assert [s.endpoint for s in repo.push_subscriptions("bob")] == [sub.endpoint]
    assert not delivery.unsubscribe_push("alice", sub.endpoint)
    assert delivery.unsubscribe_push("bob", sub.endpoint)


def test_without_consent_nothing_is_stored(repo: OfferRepository) -> None:
    delivery = OfferDelivery(repo, may_deliver=lambda shopper: shopper == "alice")
    try:
        delivery.publish("alice", draft())
        with pytest.raises(NoOfferConsent):
            delivery.publish("bob", draft())
        assert delivery.offers_after("bob", 0) == []
    finally:
        delivery.close()


def test_a_write_postgresql_aborts_as_a_deadlock_is_run_again_and_stored_once(
    postgres_schema_url: str,
) -> None:
    """Two offer writes lock two shoppers' cursors in opposite orders: the
    server aborts one as a deadlock, and the repository runs it again, so
    both writes land once (issue 17: deadlocks between chain workers)."""
    from sqlalchemy import select, update
    from sqlalchemy.orm import Session

    from omnizone.server.adapters.offer_db import OfferCursorRow

    engine = make_engine(postgres_schema_url)
    repo = OfferRepository(engine)
    with Session(engine) as session, session.begin():
        session.add_all(
            OfferCursorRow(shopper_id=s, last_seq=0, acked_seq=0, acked_ms=None)
            for s in ("alice", "bob")
        )
    both_hold_one = threading.Barrier(2, timeout=10)
    runs: list[str] = []

    def bump(first: str, second: str) -> None:
        def work(session: Session) -> None:
            runs.append(first)
            for n, shopper in enumerate((first, second)):
                session.execute(
                    update(OfferCursorRow)
                    .where(OfferCursorRow.shopper_id == shopper)
                    .values(last_seq=OfferCursorRow.last_seq + 1)
                )
                if n == 0 and runs.count(first) == 1:  # the first try waits for the other
                    both_hold_one.wait()

        repo._write(work)

    threads = [
        threading.Thread(target=bump, args=pair) for pair in (("alice", "bob"), ("bob", "alice"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 3  # one of the two ran twice: the deadlock's victim
    with Session(engine) as session:
        found = {
            s: n
            for s, n in session.execute(select(OfferCursorRow.shopper_id, OfferCursorRow.last_seq))
        }
    assert found == {"alice": 2, "bob": 2}  # each write once
    engine.dispose()
