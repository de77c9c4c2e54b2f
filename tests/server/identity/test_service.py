"""Shopper use cases over a real SQLite file."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from omnizone.contract.eid import EidParams, eid_device_key
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.domain.identity import (
    Consent,
    EidResolver,
    Purpose,
    hash_token,
    webhook_signature,
)
from omnizone.server.service.shoppers import (
    InvalidInput,
    NoConsent,
    ProfileEventIn,
    ShopperNotFound,
    ShopperService,
    UnknownStore,
    WebhookNotConfigured,
    WebhookRejected,
)

from .conftest import GTIN, OTHER_GTIN, STORE, T0, WEBHOOK_SECRET, Clock, make_service

TABLES = ("shoppers", "shopper_consents", "profile_events")


def rows_about(engine: Engine, shopper_id: str) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            "shoppers": connection.execute(
                text("SELECT count(*) FROM shoppers WHERE id = :s"), {"s": shopper_id}
            ).scalar_one(),
            **{
                table: connection.execute(
                    text(f"SELECT count(*) FROM {table} WHERE shopper_id = :s"), {"s": shopper_id}
                ).scalar_one()
                for table in TABLES[1:]
            },
        }


def signed(payload: object) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    return body, webhook_signature(WEBHOOK_SECRET, body)


def test_registration_gives_a_token_that_only_works_whole(
    shoppers: ShopperService, engine: Engine
) -> None:
    reg = shoppers.register(STORE)
    assert len(reg.eid_key) == 16 and reg.rotation_s == 1024
    assert shoppers.authenticate(reg.token) == reg.shopper_id
    other = shoppers.register(STORE)
    forged = f"{reg.shopper_id}.{other.token.partition('.')[2]}"  # someone else's secret
    for bad in (forged, reg.token + "x", reg.token[:-1], reg.shopper_id, "", "a.b"):
        assert shoppers.authenticate(bad) is None
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT token_hash FROM shoppers WHERE id = :s"), {"s": reg.shopper_id}
        ).scalar_one()
    assert stored == hash_token(reg.token) and reg.token not in stored


def test_an_unknown_store_is_refused(shoppers: ShopperService) -> None:
    with pytest.raises(UnknownStore, match=r"store 'nowhere' is not served here"):
        shoppers.register("nowhere")


def test_devices_feed_the_resolver_as_they_come_and_go(shoppers: ShopperService) -> None:
    first = shoppers.register(STORE)
    resolver = EidResolver(shoppers.all_devices(), skew_s=shoppers.eid_policy.skew_s)
    shoppers.subscribe_to_devices(resolver.update)
    second = shoppers.register(STORE)
    for reg in (first, second):
        assert resolver.resolve(eid_device_key(reg.eid, T0), T0) == reg.shopper_id
    shoppers.erase(first.shopper_id)
    assert resolver.resolve(eid_device_key(first.eid, T0), T0) is None
    assert shoppers.all_devices() == {second.shopper_id: second.eid}


def test_consent_defaults_to_nothing_and_keeps_its_history(
    shoppers: ShopperService, shopper_repo: ShopperRepository, clock: Clock
) -> None:
    shopper = shoppers.register(STORE).shopper_id
    assert shoppers.consent(shopper) == Consent()
    clock.now_ms = T0 + 10
    shoppers.set_consent(shopper, {Purpose.LOCATION_ANALYTICS: True})
    clock.now_ms = T0 + 20
    both = {Purpose.LOCATION_ANALYTICS: True, Purpose.PERSONALIZED_OFFERS: True}
    assert shoppers.set_consent(shopper, both) == Consent(True, True)
    clock.now_ms = T0 + 30
    shoppers.set_consent(shopper, {Purpose.PERSONALIZED_OFFERS: False})
    history = [
        (c.purpose.value, c.granted, c.changed_ms) for c in shoppers.consent_history(shopper)
    ]
    assert history == [  # unchanged purposes leave no row
        ("location_analytics", True, T0 + 10),
        ("personalized_offers", True, T0 + 20),
        ("personalized_offers", False, T0 + 30),
    ]
    # a restarted server reads the same consent back from the database
    assert make_service(shopper_repo, clock).consent(shopper) == Consent(location_analytics=True)
    assert shoppers.consent("unknown") is None
    with pytest.raises(ShopperNotFound):
        shoppers.set_consent("unknown", {Purpose.LOCATION_ANALYTICS: True})


def test_profile_events_default_to_now(shoppers: ShopperService, clock: Clock) -> None:
    shopper = shoppers.register(STORE).shopper_id
    clock.now_ms = T0 + 5
    (stored,) = shoppers.add_profile_events(
        shopper, [ProfileEventIn(type="cart_add", gtin=GTIN, channel="app")]
    )
    assert stored.at_ms == T0 + 5
    assert shoppers.profile(shopper).cart == (GTIN,)


def test_the_webhook_reaches_every_shopper_of_a_loyalty_id(shoppers: ShopperService) -> None:
    phone, tablet, stranger = (shoppers.register(STORE).shopper_id for _ in range(3))
    shoppers.link_loyalty(phone, "FR-0042-7781")
    shoppers.link_loyalty(tablet, "FR-0042-7781")
    body, signature = signed(
        {
            "loyalty_id": "FR-0042-7781",
            "events": [
                {"type": "wishlist_add", "gtin": GTIN, "channel": "online", "at_ms": T0},
                {"type": "purchase", "gtin": OTHER_GTIN, "channel": "pos", "amount": 12.5},
            ],
        }
    )
    result = shoppers.receive_webhook(body, signature)
    assert sorted(result.shopper_ids) == sorted([phone, tablet]) and result.events == 2
    for shopper in (phone, tablet):
        assert shoppers.profile(shopper).wishlist == (GTIN,)
    assert shoppers.profile(stranger).wishlist == ()
    body, signature = signed({"shopper_id": stranger, "events": [json.loads(body)["events"][0]]})
    assert shoppers.receive_webhook(body, signature).shopper_ids == (stranger,)


def test_the_webhook_refuses_before_reading_anything(
    shoppers: ShopperService, shopper_repo: ShopperRepository, clock: Clock
) -> None:
    shopper = shoppers.register(STORE).shopper_id
    body, signature = signed(
        {"shopper_id": shopper, "events": [{"type": "cart_add", "gtin": GTIN, "channel": "pos"}]}
    )
    with pytest.raises(WebhookRejected, match="missing X-Omnizone-Signature"):
        shoppers.receive_webhook(body, None)
    with pytest.raises(WebhookRejected, match="does not match"):
        shoppers.receive_webhook(body + b" ", signature)
    unconfigured = ShopperService([STORE], shopper_repo, clock=clock)
    with pytest.raises(WebhookNotConfigured, match="OMNIZONE_WEBHOOK_SECRET"):
        unconfigured.receive_webhook(body, signature)
    assert shoppers.profile(shopper).cart == ()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {
                "loyalty_id": "L1",
                "events": [
                    {"type": "cart_add", "gtin": GTIN, "channel": "pos"},
                    {"type": "cart_add", "gtin": "123", "channel": "pos"},
                ],
            },
            "events[1].gtin: String should match pattern",
        ),
        (
            {"loyalty_id": "L1", "events": [{"type": "refund", "gtin": GTIN, "channel": "pos"}]},
            "events[0].type: Input should be 'cart_add'",
        ),
        (
            {"loyalty_id": "L1", "events": [{"type": "cart_add", "gtin": GTIN}]},
            "events[0].channel: Field required",
        ),
        (
            {
                "loyalty_id": "L1",
                "events": [{"type": "cart_add", "gtin": GTIN, "channel": "pos", "colour": "red"}],
            },
            "events[0].colour: Extra inputs are not permitted",
        ),
        ({"events": [{"type": "cart_add", "gtin": GTIN, "channel": "pos"}]}, "exactly one of"),
        ({"loyalty_id": "L1", "events": []}, "events: List should have at least 1 item"),
        ("not an object", "body: Input should be an object"),
    ],
)
def test_a_bad_webhook_event_is_named_by_index_and_field(
    shoppers: ShopperService, payload: object, message: str
) -> None:
    body, signature = signed(payload)
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        shoppers.receive_webhook(body, signature)


def test_a_webhook_that_is_not_json_is_refused(shoppers: ShopperService) -> None:
    body = b"{not json"
    with pytest.raises(InvalidInput, match="Invalid JSON"):
        shoppers.receive_webhook(body, webhook_signature(WEBHOOK_SECRET, body))


def test_the_webhook_for_an_unknown_shopper_or_loyalty_id_is_a_clear_404(
    shoppers: ShopperService,
) -> None:
    event = {"type": "cart_add", "gtin": GTIN, "channel": "pos"}
    with pytest.raises(ShopperNotFound, match="no shopper has linked loyalty id 'FR-9'"):
        shoppers.receive_webhook(*signed({"loyalty_id": "FR-9", "events": [event]}))
    with pytest.raises(ShopperNotFound, match="unknown or erased"):
        shoppers.receive_webhook(*signed({"shopper_id": "0" * 32, "events": [event]}))


def fill(shoppers: ShopperService, clock: Clock) -> str:
    shopper = shoppers.register(STORE).shopper_id
    clock.now_ms = T0 + 100
    shoppers.set_consent(
        shopper, {Purpose.LOCATION_ANALYTICS: True, Purpose.PERSONALIZED_OFFERS: True}
    )
    shoppers.link_loyalty(shopper, "FR-0042-7781")
    shoppers.add_profile_events(
        shopper,
        [
            ProfileEventIn(type="cart_add", gtin=GTIN, channel="online", at_ms=T0 + 1),
            ProfileEventIn(type="purchase", gtin=OTHER_GTIN, channel="pos", amount=9.5),
        ],
    )
    return shopper


def test_export_holds_everything_stored_and_what_other_parts_add(
    shoppers: ShopperService, clock: Clock
) -> None:
    shopper = fill(shoppers, clock)
    eid = shoppers.shopper(shopper).eid
    shoppers.add_export_section("visits", lambda s: [{"shopper": s, "zone": "shoes"}])
    exported = shoppers.export(shopper)
    assert exported == {
        "exported_ms": T0 + 100,
        "shopper": {
            "shopper_id": shopper,
            "store": STORE,
            "created_ms": T0,
            "loyalty_id": "FR-0042-7781",
            "eid_key": eid.key.hex(),
            "eid_rotation_s": 1024,
            "eid_rotation_exponent": 10,
            "eid_clock_offset_s": eid.clock_offset_s,
        },
        "consent": {"location_analytics": True, "personalized_offers": True},
        "consent_history": [
            {"purpose": "location_analytics", "granted": True, "changed_ms": T0 + 100},
            {"purpose": "personalized_offers", "granted": True, "changed_ms": T0 + 100},
        ],
        "profile_events": [
            {
                "type": "cart_add",
                "gtin": GTIN,
                "channel": "online",
                "at_ms": T0 + 1,
                "amount": None,
            },
            {
                "type": "purchase",
                "gtin": OTHER_GTIN,
                "channel": "pos",
                "at_ms": T0 + 100,
                "amount": 9.5,
            },
        ],
        "visits": [{"shopper": shopper, "zone": "shoes"}],
    }
    json.dumps(exported)  # all of it is JSON
    shoppers.add_export_section("consent", lambda s: "clobbered")
    with pytest.raises(ValueError, match="would overwrite a core section"):
        shoppers.export(shopper)


def test_erase_removes_every_row_and_tells_the_other_parts(
    shoppers: ShopperService, engine: Engine, clock: Clock
) -> None:
    shopper, kept = fill(shoppers, clock), fill(shoppers, clock)
    assert rows_about(engine, shopper) == {
        "shoppers": 1,
        "shopper_consents": 2,
        "profile_events": 2,
    }
    erased: list[str] = []
    devices: list[tuple[str, EidParams | None]] = []
    shoppers.subscribe_to_erasure(erased.append)
    shoppers.subscribe_to_devices(lambda d, k: devices.append((d, k)))
    token = shoppers.issue_qr_token(shopper).token
    shoppers.erase(shopper)
    assert rows_about(engine, shopper) == dict.fromkeys(TABLES, 0)
    assert rows_about(engine, kept) == {"shoppers": 1, "shopper_consents": 2, "profile_events": 2}
    assert erased == [shopper] and devices == [(shopper, None)]
    assert shoppers.consent(shopper) is None
    with pytest.raises(ShopperNotFound):
        shoppers.export(shopper)
    with pytest.raises(ShopperNotFound):
        shoppers.associate_context(token)
    with pytest.raises(ShopperNotFound):
        shoppers.erase(shopper)


def test_a_failed_erasure_elsewhere_leaves_the_shopper_whole(
    shoppers: ShopperService, engine: Engine, clock: Clock
) -> None:
    shopper = fill(shoppers, clock)
    resolver = EidResolver(shoppers.all_devices())
    shoppers.subscribe_to_devices(resolver.update)

    def broken(_shopper: str) -> None:
        raise RuntimeError("offers database is down")

    shoppers.subscribe_to_erasure(broken)
    with pytest.raises(RuntimeError, match="offers database is down"):
        shoppers.erase(shopper)
    assert rows_about(engine, shopper)["shoppers"] == 1
    eid = shoppers.shopper(shopper).eid
    assert resolver.resolve(eid_device_key(eid, T0), T0) == shopper


def test_while_the_erasure_runs_the_shopper_is_a_tombstone(
    shoppers: ShopperService, engine: Engine, clock: Clock
) -> None:
    """From its first step nothing new is written for the shopper, and a
    second erasure request does not run alongside the first."""
    shopper = fill(shoppers, clock)
    seen: dict[str, object] = {}

    def meanwhile(erasing: str) -> None:
        seen["consent"] = shoppers.consent(erasing)
        seen["erased"] = shoppers.is_erased(erasing)
        event = ProfileEventIn(type="cart_add", gtin=GTIN, channel="app")
        attempts: dict[str, Callable[[], object]] = {
            "profile event": lambda: shoppers.add_profile_events(erasing, [event]),
            "loyalty": lambda: shoppers.link_loyalty(erasing, "FR-0"),
            "consent change": lambda: shoppers.set_consent(
                erasing, {Purpose.LOCATION_ANALYTICS: False}
            ),
            "second erasure": lambda: shoppers.erase(erasing),
        }
        for name, attempt in attempts.items():
            with pytest.raises(ShopperNotFound):
                attempt()
            seen[name] = "refused"

    shoppers.subscribe_to_erasure(meanwhile)
    shoppers.erase(shopper)
    assert seen == {
        "consent": None,
        "erased": True,
        "profile event": "refused",
        "loyalty": "refused",
        "consent change": "refused",
        "second erasure": "refused",
    }
    assert rows_about(engine, shopper) == dict.fromkeys(TABLES, 0)
    assert shoppers.is_erased(shopper)


def test_a_failed_erasure_lifts_the_tombstone(
    shoppers: ShopperService, engine: Engine, clock: Clock
) -> None:
    shopper = fill(shoppers, clock)
    before = shoppers.consent(shopper)

    def broken(_shopper: str) -> None:
        raise RuntimeError("offers database is down")

    shoppers.subscribe_to_erasure(broken)
    with pytest.raises(RuntimeError):
        shoppers.erase(shopper)
    assert not shoppers.is_erased(shopper)
    assert before is not None and shoppers.consent(shopper) == before
    shoppers.add_profile_events(
        shopper, [ProfileEventIn(type="cart_add", gtin=GTIN, channel="app")]
    )
    assert rows_about(engine, shopper)["profile_events"] == 3


def test_the_associate_sees_the_profile_only_with_consent(
    shoppers: ShopperService, clock: Clock
) -> None:
    shopper = fill(shoppers, clock)
    qr = shoppers.issue_qr_token(shopper)
    assert qr.expires_ms == clock.now_ms + 300_000
    context = shoppers.associate_context(qr.token)
    assert context.loyalty_id == "FR-0042-7781" and context.profile.cart == (GTIN,)
    assert [p.gtin for p in context.profile.purchases] == [OTHER_GTIN]
    shoppers.set_consent(shopper, {Purpose.PERSONALIZED_OFFERS: False})
    with pytest.raises(NoConsent, match="has not consented to personalized_offers"):
        shoppers.associate_context(qr.token)


def test_shopper_tables_live_beside_the_ingest_schema(tmp_path: Path) -> None:
    repository = SqlRepository.from_url(f"sqlite:///{tmp_path}/both.db")
    try:
        service = ShopperService([STORE], ShopperRepository(repository.engine))
        shopper = service.register(STORE).shopper_id
        assert service.consent(shopper) == Consent()
    finally:
        repository.close()
