"""Two chain nodes over one database (docs/scaling.md, "The shopper change
feed"): what one node changes, the other learns by re-reading, from a notice
(``refresh_shopper``) or in full (``refresh_all``), whatever notices it missed
and in whatever order they came."""

from omnizone.contract.eid import EidParams
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.domain.identity import Consent, Purpose, current_consent, shopper_drift
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


class _RegistersDuringTheRead:
    """The repository, with a registration on the same node between the
    re-read's two queries (devices, then consents)."""

    def __init__(self, repo: ShopperRepository) -> None:
        self._repo = repo
        self.during: list[str] = []
        self.node: ShopperService | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._repo, name)

    def current_consents(self) -> dict[str, Consent]:
        if self.node is not None and not self.during:
            self.during.append(self.node.register(STORE).shopper_id)
        return self._repo.current_consents()


def test_a_registration_during_the_full_re_read_is_not_taken_for_an_erasure(
    shopper_repo: ShopperRepository, clock: Clock
) -> None:
    repo = _RegistersDuringTheRead(shopper_repo)
    node = make_service(repo, clock)  # type: ignore[arg-type]
    forgotten: list[str] = []
    node.subscribe_to_erasure(forgotten.append)
    repo.node = node
    drift = node.refresh_all()
    (joined,) = repo.during
    assert joined not in drift.erased and forgotten == []
    assert node.consent(joined) == Consent() and shopper_repo.shopper(joined) is not None


def test_a_consent_changed_here_during_a_re_read_is_kept(
    shopper_repo: ShopperRepository, clock: Clock
) -> None:
    api, worker = Node(shopper_repo, clock), Node(shopper_repo, clock)
    shopper = api.shoppers.register(STORE).shopper_id
    worker.shoppers.refresh_shopper(shopper)
    api.shoppers.set_consent(shopper, BOTH)  # the notice the worker is about to read

    real = shopper_repo.consent_history

    def history_then_a_local_change(shopper_id: str) -> list:  # type: ignore[type-arg]
        read = real(shopper_id)
        shopper_repo.consent_history = real  # type: ignore[method-assign]
        worker.shoppers.set_consent(shopper, NONE)  # on the worker, while it reads
        return read

    shopper_repo.consent_history = history_then_a_local_change  # type: ignore[method-assign]
    worker.shoppers.refresh_shopper(shopper)
    # The newer one stays, and it is what the database holds.
    assert worker.shoppers.consent(shopper) == Consent(False, False)
    assert current_consent(shopper_repo.consent_history(shopper)) == Consent(False, False)


def test_a_change_on_a_node_not_yet_told_of_another_is_recorded(
    shopper_repo: ShopperRepository, clock: Clock
) -> None:
    """The shopper granted on one node and revokes on another whose memory
    still says nothing was granted: the revocation is stored all the same."""
    api, other = Node(shopper_repo, clock), Node(shopper_repo, clock)
    shopper = api.shoppers.register(STORE).shopper_id
    other.shoppers.refresh_shopper(shopper)
    api.shoppers.set_consent(shopper, BOTH)  # the other node has not heard yet
    assert other.shoppers.set_consent(shopper, NONE) == Consent(False, False)
    assert current_consent(shopper_repo.consent_history(shopper)) == Consent(False, False)
    assert other.changes == [(shopper, "consent")]


def test_consent_given_on_a_node_that_has_not_heard_of_the_registration(
    shopper_repo: ShopperRepository, clock: Clock
) -> None:
    """The app registers on one API node and sets consent through another at
    once: the second reads the shopper from the database instead of refusing."""
    first, second = Node(shopper_repo, clock), Node(shopper_repo, clock)
    shopper = first.shoppers.register(STORE).shopper_id
    assert second.shoppers.set_consent(shopper, BOTH) == Consent(True, True)
    assert (shopper, True) in second.devices
    assert second.changes == [(shopper, "consent")]
    assert first.shoppers.refresh_shopper(shopper) == "consent"
