"""Issue 18, point 4 at ingest: what a street-front gateway hears of phones
that are not consented shoppers is counted per hour, and nothing of it is
stored but the count; consented shoppers are not passers-by; replays and
fixed tags are nobody. A real SQLite database, the server's identity gate."""

from pathlib import Path

from sqlalchemy import inspect, text

from omnizone.contract.eid import eid_device_key
from omnizone.server.adapters.capture_db import PassersByRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.domain.identity import EidPolicy, Purpose
from omnizone.server.service.device_identity import RegisteredDevices
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.passers_by import PasserByCounter
from omnizone.server.service.shoppers import ShopperService
from omnizone.store import StorePlan
from tests.server.conftest import T0, ble

STREET = "gw-entrance"  # street_front in the example store
INSIDE = "gw-womenswear"
H = 3_600_000


def test_only_unconsented_phones_at_the_street_front_are_counted_and_never_stored(
    plan: StorePlan, tmp_path: Path
) -> None:
    assert plan.street_gateways == {STREET}
    repo = SqlRepository.from_url(f"sqlite:///{tmp_path / 'omnizone.db'}")
    shoppers = ShopperService(
        [plan.id],
        ShopperRepository(repo.engine),
        eid_policy=EidPolicy(min_exponent=10, max_exponent=10),
    )
    identity = RegisteredDevices(shoppers)
    shoppers.subscribe_to_devices(identity.update)
    counts = PassersByRepository(repo.engine)
    ingest = IngestService(
        {plan.id: plan},
        repo,
        identity=identity,
        passers_by=PasserByCounter({plan.id: plan}, counts),
    )
    consented = shoppers.register(plan.id)
    shoppers.set_consent(consented.shopper_id, {Purpose.LOCATION_ANALYTICS: True})
    silent = shoppers.register(plan.id)  # registered, allows nothing
    offers = shoppers.register(plan.id)
    shoppers.set_consent(offers.shopper_id, {Purpose.PERSONALIZED_OFFERS: True})
    strangers = ["eid:00112233445566ff", "eid:8899aabbccddee00"]
    seq = 0

    def hear(gateway: str, at_ms: int, devices: dict[str, float]) -> None:
        nonlocal seq
        seq += 1
        ingest.handle(*ble(gateway, seq, at_ms, devices, store=plan.id), at_ms)

    hour = (T0 // H + 1) * H  # a whole store-local hour of Paris (UTC+1)
    for s in range(1, 11):
        at = hour + s * 1000
        heard = {k: -70.0 for k in strangers}
        for phone in (consented, silent, offers):
            heard[eid_device_key(phone.eid, at)] = -60.0
        heard["ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e08999:1:1"] = -80.0  # a tag, no phone
        hear(STREET, at, heard)
        hear(INSIDE, at, {"eid:aaaaaaaaaaaaaaaa": -60.0})  # not a street-front gateway
    # Two strangers, the shopper who allows nothing and the one who allows
    # offers only: 4, each once however often heard; the consented shopper
    # is an entrant, not a passer-by.
    assert counts.counts(plan.id, 0, 2**62) == {hour: 4}
    # A stranger in the next hour counts again there (a new salt: unlinkable).
    hear(STREET, hour + H + 1000, {strangers[0]: -70.0})
    assert counts.counts(plan.id, 0, 2**62) == {hour: 4, hour + H: 1}
    # Replayed: a phone's id of the period before, heard two minutes into
    # the next one, is nobody.
    period = silent.eid.period(hour + H + 300_000)
    replay = eid_device_key(silent.eid, period.start_ms - 1000)
    hear(STREET, period.start_ms + 120_000, {replay: -60.0})
    assert ingest.counters.replayed_dropped == 1
    assert counts.count(plan.id, hour + H) == 1
    # Nothing of a passer-by is stored: no key and no shopper id of theirs anywhere.
    with repo.engine.connect() as conn:
        values = [
            str(v)
            for table in inspect(repo.engine).get_table_names()
            if table not in ("shoppers", "shopper_consents")  # the registrations themselves
            for row in conn.execute(text(f'SELECT * FROM "{table}"'))
            for v in row
            if isinstance(v, str)
        ]
    blob = "\n".join(values)
    for key in [*strangers, silent.shopper_id, offers.shopper_id, "eid:aaaaaaaaaaaaaaaa"]:
        assert key not in blob, key
    assert consented.shopper_id in blob  # the consented shopper's sightings are stored
    repo.close()
