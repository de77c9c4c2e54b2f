"""The predictions' reads (``adapters/prediction_db.py``) on SQLite and
PostgreSQL: the latest consent change per purpose decides, per store; the
profile events of the shoppers asked for, in a half-open range."""

import pytest

from omnizone.server.adapters.prediction_db import PredictionRepository
from omnizone.server.domain.identity import ConsentChange, ProfileEvent, Purpose, Shopper

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
