"""The floor heatmap as ``build_server`` wires it (issue 18 point 6): ingest's
placements reach ``FloorPresence``; a shopper without location consent and a
registered staff phone add nothing; an erased shopper's open hour is
forgotten; a heatmap asked for now has the hour under way; closing the
server writes the rest, added to what was written."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnizone.server.domain.identity import Purpose
from omnizone.server.runtime import ServerRuntime
from omnizone.server.service.locators import ZonePlacement
from omnizone.store import StorePlan

from .conftest import STORE
from .test_bootstrap import ADMIN, WAIT_S, Phone, settings_for

H = 3_600_000


@pytest.fixture
def runtime(plan: StorePlan, tmp_path: Path) -> Iterator[tuple[ServerRuntime, httpx.Client]]:
    with (
        ServerRuntime(settings_for(tmp_path), stores={plan.id: plan}) as running,
        httpx.Client(base_url=running.api_url, timeout=WAIT_S) as client,
    ):
        yield running, client


def _phone(client: httpx.Client, location: bool) -> Phone:
    registered = client.post("/api/v1/shoppers", json={"store": STORE})
    assert registered.status_code == 201, registered.text
    phone = Phone.registered(registered.json())
    consent = {
        Purpose.PERSONALIZED_OFFERS.value: True,
        Purpose.LOCATION_ANALYTICS.value: location,
    }
    assert client.put("/api/v1/me/consent", json=consent, headers=phone.auth).status_code == 200
    return phone


def test_the_server_accumulates_consented_shoppers_only_and_writes_on_close(
    runtime: tuple[ServerRuntime, httpx.Client], tmp_path: Path, plan: StorePlan
) -> None:
    running, client = runtime
    parts = running.parts
    floor = parts.floor_presence
    assert floor is not None
    shopper, refuser, colleague, erased = (
        _phone(client, True),
        _phone(client, False),
        _phone(client, True),
        _phone(client, True),
    )
    path = f"/api/v1/stores/{STORE}/staff/{colleague.shopper_id}"
    staff = client.put(path, json={"label": "till"}, headers=ADMIN)
    assert staff.status_code == 204, staff.text
    t0 = 1_795_000_000_000 // H * H
    for k in range(30):  # 30 s in womenswear, at (3.2, 3.2): base cell (6, 6)
        for phone in (shopper, refuser, colleague, erased):
            floor.on_placement(
                STORE,
                ZonePlacement(phone.shopper_id, "womenswear", t0 + k * 1000, t0, xy=(3.2, 3.2)),
            )
    assert client.delete("/api/v1/me", headers=erased.auth).status_code == 204
    # Asked for now, the heatmap has the hour under way (written as it is asked).
    now = client.get(
        f"/api/v1/stores/{STORE}/heatmap",
        params={"from_ms": t0, "to_ms": t0 + H, "cell_m": 0.5},
        headers=ADMIN,
    )
    assert now.status_code == 200, now.text
    assert now.json()["cells"] == [[6, 6, 30.0]]
    for k in range(30, 40):  # 10 s more in the same hour, after it was written once
        floor.on_placement(
            STORE, ZonePlacement(shopper.shopper_id, "womenswear", t0 + k * 1000, t0, xy=(3.2, 3.2))
        )
    running.close()  # writes what it holds: added to what was written

    from omnizone.server.adapters.db import SqlRepository
    from omnizone.server.adapters.heatmap_db import FloorCellRepository

    repository = SqlRepository.from_url(f"sqlite:///{tmp_path / 'server.db'}")
    try:
        # One shopper's 40 s: not the refuser's, the colleague's or the erased one's.
        [(ix, iy, seconds)] = FloorCellRepository(repository.engine).cells(STORE, t0, t0 + H)
        assert (ix, iy) == (6, 6) and seconds == pytest.approx(40.0)
    finally:
        repository.close()
