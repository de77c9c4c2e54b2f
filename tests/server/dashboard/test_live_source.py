"""What ingest hands the live map: open stays of devices whose location may be
stored, with the grid filter's position where it has one."""

from pathlib import Path

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import make_locators
from omnizone.store import StorePlan
from tests.server.conftest import DEVICE_A, T0, ble

SHOPPERS = {"eid:00000000000000aa": "consented", "eid:00000000000000bb": "offers-only"}


class OnlyOffers:
    """Identity where one shopper consented to offers only: tracked, never written down."""

    def resolve(self, device: str, at_ms: int, store: str) -> str | None:
        return SHOPPERS.get(device)

    def may_store_location(self, device: str) -> bool:
        return device != "offers-only"

    def may_track(self, device: str) -> bool:
        return True


def test_live_leaves_out_shoppers_without_location_consent(plan: StorePlan, tmp_path: Path) -> None:
    repo = SqlRepository.from_url(f"sqlite:///{tmp_path / 'o.db'}")
    ingest = IngestService({plan.id: plan}, repo, identity=OnlyOffers())
    for s in range(3):
        at = T0 + (s + 1) * 1000
        ingest.handle(*ble("gw-shoes", s + 1, at, dict.fromkeys(SHOPPERS, -50.0)), at)
    stays, positions = ingest.live(plan.id)
    assert stays == {"consented": "shoes"}
    assert positions == {}  # the nearest-gateway baseline has no positions
    repo.close()


def test_live_positions_come_from_the_grid_filter(plan: StorePlan, tmp_path: Path) -> None:
    repo = SqlRepository.from_url(f"sqlite:///{tmp_path / 'o.db'}")
    ingest = IngestService({plan.id: plan}, repo, locators=make_locators({plan.id: plan}, "grid"))
    seq = 0
    for s in range(20):
        at = T0 + (s + 1) * 1000
        for gateway, rssi in (("gw-shoes", -50.0), ("gw-outerwear", -72.0), ("gw-denim", -74.0)):
            seq += 1
            ingest.handle(*ble(gateway, seq, at, {DEVICE_A: rssi}), at)
    stays, positions = ingest.live(plan.id)
    assert stays == {DEVICE_A: "shoes"}
    x, y = positions[DEVICE_A]
    assert plan.zone_at((x, y)) == "shoes"
    repo.close()


def test_a_restarted_ingest_has_received_nothing_yet(plan: StorePlan, tmp_path: Path) -> None:
    """The open stays survive a restart (``device_presence``), the receipt
    time does not: the live map shows them as stale until data comes."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    repo = SqlRepository.from_url(url)
    ingest = IngestService({plan.id: plan}, repo)
    for s in range(3):
        at = T0 + (s + 1) * 1000
        ingest.handle(*ble("gw-shoes", s + 1, at, {DEVICE_A: -50.0}), at + 7)
    assert ingest.last_received_ms(plan.id) == T0 + 3007
    assert ingest.live(plan.id)[0]
    repo.close()
    again = SqlRepository.from_url(url)
    restarted = IngestService({plan.id: plan}, again)
    assert restarted.live(plan.id)[0]  # the last run's shoppers, still "present"
    assert restarted.last_received_ms(plan.id) is None
    again.close()
