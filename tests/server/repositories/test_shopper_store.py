"""The ``ShopperStore`` port, on every backend: shoppers, loyalty links,
consent history, profile events in the order received, and erasure."""

import pytest

from omnizone.contract.eid import EidParams
from omnizone.server.domain.identity import (
    Consent,
    ConsentChange,
    ProfileEvent,
    ProfileEventType,
    Purpose,
    Shopper,
)

from .conftest import Storage

STORE = "paris-rivoli"
T0 = 1_767_225_600_000
ANN, BOB, CY = "a" * 32, "b" * 32, "c" * 32


def _shopper(shopper_id: str, loyalty: str | None = None) -> Shopper:
    return Shopper(
        id=shopper_id,
        store=STORE,
        token_hash="f" * 64,
        eid_key=bytes.fromhex(shopper_id[:2] * 16),
        created_ms=T0,
        loyalty_id=loyalty,
        eid_exponent=9,
        eid_clock_offset_s=1_000_000,
    )


def _event(gtin: str, at_ms: int, kind: ProfileEventType = "cart_add") -> ProfileEvent:
    return ProfileEvent(type=kind, gtin=gtin, channel="online", at_ms=at_ms, amount=None)


def test_a_shopper_reads_back_and_a_missing_one_is_none(storage: Storage) -> None:
    storage.shoppers.add_shopper(_shopper(ANN, "FR-1"))
    assert storage.shoppers.shopper(ANN) == _shopper(ANN, "FR-1")
    assert storage.shoppers.shopper(BOB) is None
    assert storage.shoppers.devices() == {ANN: EidParams(bytes.fromhex("aa" * 16), 9, 1_000_000)}


def test_a_shopper_id_is_stored_once(storage: Storage) -> None:
    storage.shoppers.add_shopper(_shopper(ANN))
    with pytest.raises(Exception):  # noqa: B017  # the primary key refuses it
        storage.shoppers.add_shopper(_shopper(ANN, "FR-2"))
    assert storage.shoppers.shopper(ANN) == _shopper(ANN)


def test_loyalty_ids_link_and_find_shoppers(storage: Storage) -> None:
    for shopper in (BOB, ANN, CY):
        storage.shoppers.add_shopper(_shopper(shopper))
    assert storage.shoppers.set_loyalty(BOB, "FR-7")
    assert storage.shoppers.set_loyalty(ANN, "FR-7")
    assert not storage.shoppers.set_loyalty("d" * 32, "FR-7")
    assert storage.shoppers.shoppers_with_loyalty("FR-7") == [ANN, BOB]
    assert storage.shoppers.shoppers_with_loyalty("FR-0") == []
    assert storage.shoppers.loyalty_ids([ANN, CY, "d" * 32]) == {ANN: "FR-7", CY: None}
    linked = storage.shoppers.shopper(BOB)
    assert linked is not None and linked.loyalty_id == "FR-7"


def test_consent_is_a_history_and_the_current_choice_follows_it(storage: Storage) -> None:
    storage.shoppers.add_shopper(_shopper(ANN))
    storage.shoppers.add_shopper(_shopper(BOB))
    changes = [
        ConsentChange(Purpose.PERSONALIZED_OFFERS, True, T0),
        ConsentChange(Purpose.LOCATION_ANALYTICS, True, T0),
    ]
    storage.shoppers.add_consent_changes(ANN, changes)
    storage.shoppers.add_consent_changes(
        ANN, [ConsentChange(Purpose.PERSONALIZED_OFFERS, False, T0 + 1)]
    )
    assert storage.shoppers.consent_history(ANN) == [
        *changes,
        ConsentChange(Purpose.PERSONALIZED_OFFERS, False, T0 + 1),
    ]
    assert storage.shoppers.consent_history(BOB) == []
    current = storage.shoppers.current_consents()
    assert set(current) == {ANN, BOB}
    assert not current[ANN].granted(Purpose.PERSONALIZED_OFFERS)
    assert current[ANN].granted(Purpose.LOCATION_ANALYTICS)
    assert current[BOB] == Consent()


def test_rows_about_an_unknown_shopper_are_refused(storage: Storage) -> None:
    storage.shoppers.add_shopper(_shopper(ANN))
    with pytest.raises(Exception):  # noqa: B017  # the foreign key refuses it
        storage.shoppers.add_consent_changes(
            BOB, [ConsentChange(Purpose.PERSONALIZED_OFFERS, True, T0)]
        )
    with pytest.raises(Exception):  # noqa: B017
        storage.shoppers.add_profile_events([ANN, BOB], [_event("09506000134352", T0)])
    assert storage.shoppers.consent_history(BOB) == []
    assert storage.shoppers.profile_events(ANN) == []  # nothing of the refused call is kept
    assert set(storage.shoppers.current_consents()) == {ANN}


def test_profile_events_come_back_in_the_order_received(storage: Storage) -> None:
    for shopper in (ANN, BOB, CY):
        storage.shoppers.add_shopper(_shopper(shopper))
    late, early = _event("09506000134352", T0 + 50), _event("09506000134369", T0)
    storage.shoppers.add_profile_events([ANN], [late])
    storage.shoppers.add_profile_events(
        iter([ANN, BOB]), [early, _event("09506000134376", T0 + 9, "purchase")]
    )
    assert storage.shoppers.profile_events(ANN) == [
        late,
        early,
        _event("09506000134376", T0 + 9, "purchase"),
    ]
    assert storage.shoppers.profile_events_of([BOB, CY]) == {
        BOB: [early, _event("09506000134376", T0 + 9, "purchase")]
    }
    assert storage.shoppers.profile_events(CY) == []


def test_erasure_deletes_the_shopper_and_everything_about_them(storage: Storage) -> None:
    storage.shoppers.add_shopper(_shopper(ANN, "FR-1"))
    storage.shoppers.add_shopper(_shopper(BOB, "FR-1"))
    storage.shoppers.add_consent_changes(
        ANN, [ConsentChange(Purpose.PERSONALIZED_OFFERS, True, T0)]
    )
    storage.shoppers.add_profile_events([ANN, BOB], [_event("09506000134352", T0)])
    assert storage.shoppers.erase(ANN)
    assert not storage.shoppers.erase(ANN)  # nothing left to erase
    assert storage.shoppers.shopper(ANN) is None
    assert storage.shoppers.consent_history(ANN) == []
    assert storage.shoppers.profile_events(ANN) == []
    assert storage.shoppers.shoppers_with_loyalty("FR-1") == [BOB]
    assert set(storage.shoppers.current_consents()) == {BOB}
    assert set(storage.shoppers.devices()) == {BOB}
    assert storage.shoppers.profile_events(BOB) == [_event("09506000134352", T0)]
