"""The ``AnalyticsStore`` port, on every backend: the analytics read what the
other ports wrote (visits, presence, taps, try-ons, the decision log,
profile purchases, redeemed offers), for one store and a half-open range.
Rows come in no set order, so they are compared sorted."""

from omnizone.contract import NfcTap, TryOn
from omnizone.server.domain.identity import ProfileEvent, ProfileEventType, Shopper
from omnizone.server.domain.offers import Decision, OfferDraft, Outcome
from omnizone.server.domain.visits import DeviceVisitState, VisitClosed, VisitOpened
from omnizone.server.service.delivery import NewOffer
from omnizone.server.service.ports import Extent, ReceivedKey

from .conftest import Storage

STORE, OTHER = "paris-rivoli", "lyon-part-dieu"
T0 = 1_767_225_600_000
DAY = 86_400_000
ANN, BOB = "a" * 32, "b" * 32
BEACON = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1"
EPC = "3074257bf7194e4000001a85"
JACKET, SCARF = "09506000134352", "09506000134369"


def _visit(
    storage: Storage, device: str, *events: VisitOpened | VisitClosed, store: str = STORE
) -> None:
    with storage.ingest.transaction() as tx:
        tx.apply_visit_events(store, device, events)


def test_extent_is_the_first_entry_and_the_latest_event(storage: Storage) -> None:
    assert storage.analytics.extent(STORE) == Extent(None, None)
    _visit(storage, ANN, VisitClosed("shoes", T0, T0 + 5000, pass_by=False))
    assert storage.analytics.extent(STORE) == Extent(T0, T0 + 5000)
    _visit(storage, BOB, VisitOpened("denim", T0 + 2000))
    with storage.ingest.transaction() as tx:
        tx.save_presence(STORE, BOB, DeviceVisitState("denim", T0 + 2000, T0 + 9000, T0 + 9500))
    assert storage.analytics.extent(STORE) == Extent(T0, T0 + 9500)
    # only the last day's stays are looked at for their end: an old one is not
    _visit(storage, ANN, VisitClosed("shoes", T0 - 3 * DAY, T0 + 20_000, pass_by=False))
    assert storage.analytics.extent(STORE) == Extent(T0 - 3 * DAY, T0 + 9500)
    assert storage.analytics.extent(OTHER) == Extent(None, None)


def test_the_extent_of_a_store_heard_but_without_stays(storage: Storage) -> None:
    with storage.ingest.transaction() as tx:
        tx.save_presence(OTHER, ANN, DeviceVisitState("denim", T0, T0, T0 + 700))
    assert storage.analytics.extent(OTHER) == Extent(None, T0 + 700)


def test_stays_in_range_and_where_an_open_stay_ends(storage: Storage) -> None:
    _visit(storage, ANN, VisitClosed("shoes", T0, T0 + 5000, pass_by=False))
    _visit(storage, ANN, VisitOpened("denim", T0 + 5000))  # placed there until T0 + 8000
    _visit(storage, BOB, VisitOpened("shoes", T0 + 1000))  # no presence any more
    _visit(storage, BOB, VisitOpened("shoes", T0 + 3000))  # its presence is another stay's
    _visit(storage, BEACON, VisitOpened("shoes", T0 + 10))
    _visit(storage, ANN, VisitOpened("shoes", T0 + 100 * DAY))  # out of the range
    _visit(storage, ANN, VisitOpened("shoes", T0 + 10), store=OTHER)
    with storage.ingest.transaction() as tx:
        tx.save_presence(STORE, ANN, DeviceVisitState("denim", T0 + 5000, T0 + 8000, T0 + 8500))
        tx.save_presence(STORE, BOB, DeviceVisitState("shoes", T0 + 1000, T0 + 4000, T0 + 4000))
    stays = storage.analytics.stays(STORE, T0, T0 + DAY, [BEACON])
    assert sorted(stays) == sorted(
        [
            (ANN, "shoes", T0, T0 + 5000, "visit"),
            (ANN, "denim", T0 + 5000, T0 + 8000, "open"),
            (BOB, "shoes", T0 + 1000, T0 + 4000, "open"),
            (BOB, "shoes", T0 + 3000, T0 + 3000, "open"),
        ]
    )
    with_beacon = storage.analytics.stays(STORE, T0, T0 + 5000)
    assert sorted(s[2] for s in with_beacon) == [T0, T0 + 10, T0 + 1000, T0 + 3000]  # [from, to)


def test_taps_and_try_ons_in_range(storage: Storage) -> None:
    with storage.ingest.transaction() as tx:
        tx.record_received(ReceivedKey(STORE, "gw-till", 1), "nfc", T0, T0, 3)
        tx.add_nfc_taps(
            STORE,
            "gw-till",
            1,
            [
                NfcTap(tap_point="shelf-1", uid="04a1b2c3", at_ms=T0),
                NfcTap(tap_point="shelf-2", uid="04a1b2c4", at_ms=T0 + 10),
                NfcTap(tap_point="shelf-1", uid="04a1b2c5", at_ms=T0 + DAY),
            ],
        )
        tx.add_rfid_reads(
            STORE,
            "gw-till",
            1,
            [
                TryOn(reader="fit-1", event="arrived", epc=EPC, gtin=JACKET, at_ms=T0 + 1),
                TryOn(reader="fit-1", event="departed", epc=EPC, gtin=JACKET, at_ms=T0 + 2),
                TryOn(reader="fit-2", event="arrived", epc=EPC, at_ms=T0 + 3),
            ],
        )
    assert sorted(storage.analytics.nfc_taps(STORE, T0, T0 + DAY)) == [
        ("shelf-1", T0),
        ("shelf-2", T0 + 10),
    ]
    assert sorted(storage.analytics.try_ons(STORE, T0, T0 + DAY), key=str) == sorted(
        [("fit-1", JACKET, T0 + 1), ("fit-2", None, T0 + 3)], key=str
    )
    assert storage.analytics.nfc_taps(OTHER, T0, T0 + DAY) == []
    assert storage.analytics.try_ons(STORE, T0 + 4, T0 + DAY) == []


def test_app_taps_are_the_distinct_taps_in_the_decision_log(storage: Storage) -> None:
    def decision(shopper: str, campaign: str, at_ms: int) -> Decision:
        return Decision(campaign, shopper, Outcome.SENT, "ok", "v1", at_ms)

    storage.campaigns.log_decisions(
        STORE,
        "nfc_tap",
        [decision(ANN, "one", T0), decision(ANN, "two", T0)],  # one tap, two
    )
    storage.campaigns.log_decisions(STORE, "nfc_tap", [decision(BOB, "one", T0 + 5)])
    storage.campaigns.log_decisions(STORE, "zone_entered", [decision(BOB, "one", T0 + 6)])
    storage.campaigns.log_decisions(OTHER, "nfc_tap", [decision(BOB, "one", T0 + 7)])
    storage.campaigns.log_decisions(STORE, "nfc_tap", [decision(BOB, "one", T0 + DAY)])
    assert sorted(storage.analytics.app_taps(STORE, T0, T0 + DAY)) == [(ANN, T0), (BOB, T0 + 5)]


def test_purchases_are_profile_purchases_and_this_stores_redemptions(storage: Storage) -> None:
    for shopper in (ANN, BOB):
        storage.shoppers.add_shopper(
            Shopper(shopper, STORE, "f" * 64, b"k" * 16, T0, eid_exponent=9, eid_clock_offset_s=0)
        )

    def event(kind: ProfileEventType, gtin: str, at_ms: int) -> ProfileEvent:
        return ProfileEvent(type=kind, gtin=gtin, channel="pos", at_ms=at_ms, amount=10.0)

    storage.shoppers.add_profile_events([ANN], [event("purchase", JACKET, T0 + 1)])
    storage.shoppers.add_profile_events([ANN], [event("cart_add", SCARF, T0 + 2)])
    storage.shoppers.add_profile_events([BOB], [event("purchase", SCARF, T0 + DAY)])
    storage.shoppers.add_profile_events([BOB], [event("purchase", JACKET, T0 - 5)])

    def draft(store: str, gtin: str | None) -> OfferDraft:
        return OfferDraft(
            store=store,
            campaign_id="hello",
            title="t",
            body="b",
            created_ms=T0,
            expires_ms=T0 + DAY,
            product_gtin=gtin,
            coupon_code="C",
        )

    codes = iter(["C-1", "C-2", "C-3"])
    made = storage.offers.add_offers(
        [
            NewOffer(BOB, draft(STORE, SCARF)),
            NewOffer(ANN, draft(STORE, None)),
            NewOffer(ANN, draft(OTHER, JACKET)),
        ],
        created_ms=T0,
        new_code=lambda _draft: next(codes),
    )
    storage.offers.redeem(STORE, made[0].coupon_code, T0 + 3)
    storage.offers.redeem(STORE, made[1].coupon_code, T0 + 4)
    storage.offers.redeem(OTHER, made[2].coupon_code, T0 + 5)
    assert sorted(storage.analytics.purchases(STORE, T0, T0 + DAY), key=str) == sorted(
        [(ANN, JACKET, T0 + 1), (BOB, SCARF, T0 + 3), (ANN, None, T0 + 4)], key=str
    )
    assert sorted(storage.analytics.purchases(OTHER, T0, T0 + DAY), key=str) == sorted(
        [(ANN, JACKET, T0 + 1), (ANN, JACKET, T0 + 5)], key=str
    )
    bought = storage.analytics.purchases_of([ANN, BOB, "c" * 32])
    assert set(bought) == {ANN, BOB}
    assert bought[ANN] == [(JACKET, T0 + 1)]
    assert sorted(bought[BOB]) == [(JACKET, T0 - 5), (SCARF, T0 + DAY)]
