"""Two chain nodes over one database (docs/scaling.md, "The shopper change
feed"): what one node changes, the other learns by re-reading, from a notice
(``refresh_shopper``) or in full (``refresh_all``), whatever notices it missed
and in whatever order they came."""

from omnizone.contract.eid import EidParams
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.domain.identity import Consent, Purpose, shopper_drift
from omnizone.server.service.device_identity import RegisteredDevices
from omnizone.server.service.shoppers import ShopperService

from .conftest import STORE, Clock, make_service

BOTH = {Purpose.LOCATION_ANALYTICS: True, Purpose.PERSONALIZED_OFFERS: True}
NONE = {Purpose.LOCATION_ANALYTICS: False, Purpose.PERSONALIZED_OFFERS: False}
EID = EidParams(bytes(16), 10, 0)


class Node:
    """A node's shopper service, its resolver and what its parts were told."""

    def __init__(self, repo: ShopperRepository, clock: Clock) -> None:
        self.shoppers: ShopperService = make_service(repo, clock)
        self.identity = RegisteredDevices(self.shoppers)
        self.shoppers.subscribe_to_devices(self.identity.update)
        self.devices: list[tuple[str, bool]] = []
        self.shoppers.subscribe_to_devices(lambda d, eid: self.devices.append((d, eid is not None)))
        self.forgotten: list[str] = []
        self.shoppers.subscribe_to_erasure(self.forgotten.append)
        self.changes: list[tuple[str, str]] = []
        self.shoppers.subscribe_to_changes(lambda s, c: self.changes.append((s, c)))


def test_the_drift_is_what_the_database_says_and_memory_does_not() -> None:
    known = {"a": Consent(True, True), "b": Consent(True, False), "gone": Consent(True, True)}
    devices = {"a": EID, "b": EID, "new": EID}
    consents = {"a": Consent(True, True), "b": Consent(False, False), "new": Consent(True, False)}
    drift = shopper_drift(known, devices, consents)
    assert drift.added == {"new": (EID, Consent(True, False))}
    assert drift.erased == frozenset({"gone"})
    assert drift.consents == {"b": Consent(False, False)}
    assert not drift.empty
    assert shopper_drift(consents, devices, consents).empty
    # A device whose consent rows are not read yet has the default: nothing granted.
    assert shopper_drift({}, {"x": EID}, {}).added == {"x": (EID, Consent())}


def test_each_change_is_announced_after_it_is_committed(
    shopper_repo: ShopperRepository, clock: Clock
) -> None:
    node = Node(shopper_repo, clock)
    seen: list[tuple[str, str, bool]] = []
    node.shoppers.subscribe_to_changes(
        lambda s, c: seen.append((s, c, shopper_repo.shopper(s) is not None))
    )
    shopper = node.shoppers.register(STORE).shopper_id
    node.shoppers.set_consent(shopper, BOTH)
    node.shoppers.set_consent(shopper, BOTH)  # no change: no notice
    node.shoppers.erase(shopper)
    assert seen == [
        (shopper, "registered", True),
        (shopper, "consent", True),
        (shopper, "erased", False),  # the rows are gone when the others hear it
    ]


def test_a_notice_makes_the_other_node_re_read_that_shopper(
    shopper_repo: ShopperRepository, clock: Clock
) -> None:
    api, worker = Node(shopper_repo, clock), Node(shopper_repo, clock)
    reg = api.shoppers.register(STORE)
    shopper = reg.shopper_id
    assert worker.shoppers.consent(shopper) is None
    assert worker.shoppers.refresh_shopper(shopper) == "added"
    assert (shopper, True) in worker.devices  # the resolver was given its key
    assert worker.shoppers.consent(shopper) == Consent()

    api.shoppers.set_consent(shopper, BOTH)
    assert worker.shoppers.refresh_shopper(shopper) == "consent"
    assert worker.shoppers.consent(shopper) == Consent(True, True)
    assert worker.shoppers.refresh_shopper(shopper) == "unchanged"  # a notice twice

    api.shoppers.erase(shopper)
    assert worker.shoppers.refresh_shopper(shopper) == "erased"
    assert worker.shoppers.is_erased(shopper) and worker.shoppers.consent(shopper) is None
    assert worker.forgotten == [shopper]  # its parts dropped what they hold
    assert (shopper, False) in worker.devices  # and its ids resolve to no one
    assert worker.shoppers.refresh_shopper(shopper) == "unknown"  # the same notice again
    assert worker.forgotten == [shopper]
    assert worker.changes == []  # a node does not re-announce what it was told


def test_notices_out_of_order_end_in_what_the_database_holds(
    shopper_repo: ShopperRepository, clock: Clock
) -> None:
    api, worker = Node(shopper_repo, clock), Node(shopper_repo, clock)
    shopper = api.shoppers.register(STORE).shopper_id
    worker.shoppers.refresh_shopper(shopper)
    api.shoppers.set_consent(shopper, BOTH)
    api.shoppers.set_consent(shopper, NONE)
    # Two notices for the two changes, however they come: each reads the latest.
    for _notice in ("consent", "consent"):
        worker.shoppers.refresh_shopper(shopper)
    assert worker.shoppers.consent(shopper) == Consent(False, False)


def test_a_full_re_read_catches_up_on_every_missed_notice(
    shopper_repo: ShopperRepository, clock: Clock
) -> None:
    api = Node(shopper_repo, clock)
    kept = api.shoppers.register(STORE).shopper_id
    gone = api.shoppers.register(STORE).shopper_id
    api.shoppers.set_consent(kept, BOTH)
    api.shoppers.set_consent(gone, BOTH)
    worker = Node(shopper_repo, clock)  # starts knowing both
    assert worker.shoppers.consent(gone) == Consent(True, True)

    # The worker hears none of these.
    joined = api.shoppers.register(STORE).shopper_id
    api.shoppers.set_consent(joined, {Purpose.LOCATION_ANALYTICS: True})
    api.shoppers.set_consent(kept, NONE)
    api.shoppers.erase(gone)

    drift = worker.shoppers.refresh_all()
    assert set(drift.added) == {joined} and drift.erased == {gone}
    assert drift.consents == {kept: Consent(False, False)}
    assert worker.shoppers.consent(joined) == Consent(True, False)
    assert (joined, True) in worker.devices
    assert worker.shoppers.consent(kept) == Consent(False, False)
    assert worker.shoppers.is_erased(gone) and worker.forgotten == [gone]
    assert worker.shoppers.refresh_all().empty  # nothing left to do
