"""The predictions' reads (``adapters/prediction_db.py``) on SQLite and
PostgreSQL: the latest consent change per purpose decides, per store; the
profile events of the shoppers asked for, in a half-open range."""

import pytest

from omnizone.server.adapters.prediction_db import PredictionRepository
from omnizone.server.domain.identity import ConsentChange, ProfileEvent, Purpose, Shopper
from omnizone.server.domain.visits import VisitClosed

from .conftest import Storage

STORE, OTHER = "paris-rivoli", "lyon-part-dieu"
T0 = 1_767_225_600_000
ANN, BOB, CY, DAN = "a" * 32, "b" * 32, "c" * 32, "d" * 32
JEANS = "09506000134369"


def test_consented_shoppers_and_their_events(storage: Storage) -> None:
    if storage.backend == "memory":
        pytest.skip("the predictions read the SQL database only")
    engine = storage.ingest.engine  # type: ignore[attr-defined]
    for shopper, store in ((ANN, STORE), (BOB, STORE), (CY, STORE), (DAN, OTHER)):
        storage.shoppers.add_shopper(
            Shopper(shopper, store, "f" * 64, b"k" * 16, T0, eid_exponent=9, eid_clock_offset_s=0)
        )
    offers = Purpose.PERSONALIZED_OFFERS
    storage.shoppers.add_consent_changes(ANN, [ConsentChange(offers, True, T0)])
    storage.shoppers.add_consent_changes(
        BOB, [ConsentChange(offers, True, T0), ConsentChange(offers, False, T0 + 1)]
    )  # withdrawn: the latest change decides
    storage.shoppers.add_consent_changes(
        CY, [ConsentChange(Purpose.LOCATION_ANALYTICS, True, T0)]
    )  # location only: no personalisation
    storage.shoppers.add_consent_changes(DAN, [ConsentChange(offers, True, T0)])  # other store
    reads = PredictionRepository(engine)
    assert reads.consented_shoppers(STORE) == [ANN]
    assert reads.consented_shoppers(OTHER) == [DAN]
    events = [
        ProfileEvent("wishlist_add", JEANS, "app", T0 + 10),
        ProfileEvent("purchase", JEANS, "pos", T0 + 20, 89.0),
    ]
    storage.shoppers.add_profile_events([ANN, BOB], events)
    assert sorted(reads.profile_rows([ANN], T0, T0 + 20)) == [(ANN, "wishlist_add", JEANS, T0 + 10)]
    assert len(reads.profile_rows([ANN, BOB], T0, T0 + 21)) == 4
    assert reads.profile_rows([], T0, T0 + 21) == []


def test_stays_are_counted_per_zone_and_bin(storage: Storage) -> None:
    if storage.backend == "memory":
        pytest.skip("the predictions read the SQL database only")
    engine = storage.ingest.engine  # type: ignore[attr-defined]
    bin_ms = 900_000
    with storage.ingest.transaction() as tx:
        for device, zone, at in (
            (ANN, "shoes", T0 + 1),
            (BOB, "shoes", T0 + bin_ms - 1),  # the same first bin
            (ANN, "shoes", T0 + 2 * bin_ms),  # the third
            (CY, "denim", T0 + 5),
            (DAN, "denim", T0 + 7),  # excluded below
            (ANN, "denim", T0 + 4 * bin_ms),  # at to_ms: outside
        ):
            tx.apply_visit_events(
                STORE, device, [VisitClosed(zone, at, at + 60_000, pass_by=False)]
            )
    reads = PredictionRepository(engine)
    found = sorted(reads.entry_bins(STORE, T0, T0 + 4 * bin_ms, bin_ms, [DAN]))
    assert found == [("denim", 0, 1), ("shoes", 0, 2), ("shoes", 2, 1)]
    assert reads.entry_bins(OTHER, T0, T0 + 4 * bin_ms, bin_ms, []) == []
