"""GET /stores/{store}/heatmap (issue 18 point 6) through the server's read
side (``reports_app``): the read scope, JSON and CSV agreeing, the range and
cell size checked with a 422 that names the parameter."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.heatmap_db import FloorCellRepository
from omnizone.server.bootstrap import Storage, build_reports, reports_app
from omnizone.store import StorePlan

from .conftest import ADMIN_KEY, POS_KEY, READ, READ_KEY, STORE, STORE_FILE

H = 3_600_000
T0 = 1_795_000_000 * 1000 // H * H


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from omnizone.store import load_store

    plan: StorePlan = load_store(STORE_FILE)
    db: Path = tmp_path_factory.mktemp("heatmap") / "store.db"
    repository = SqlRepository.from_url(f"sqlite:///{db}")
    cells = FloorCellRepository(repository.engine)
    # 40 s by the checkout (x 28, y 17) in the first hour, 10 s in womenswear in the next
    cells.add_cells(STORE, {T0: {(56, 34): 40.0}, T0 + H: {(4, 4): 10.0}})
    storage = Storage.over(repository)
    reports = build_reports(storage, {plan.id: plan})
    app = reports_app(
        storage, reports, {READ_KEY: ["read"], ADMIN_KEY: ["admin"], POS_KEY: ["pos"]}
    )
    with TestClient(app) as test_client:
        yield test_client
    repository.close()


def get(client: TestClient, headers: dict[str, str] | None = None, **params: Any) -> Response:
    chosen = READ if headers is None else headers
    answer: Response = client.get(f"/api/v1/stores/{STORE}/heatmap", params=params, headers=chosen)
    return answer


def test_the_heatmap_of_a_range_as_json_and_csv(client: TestClient) -> None:
    body = get(client, from_ms=T0, to_ms=T0 + 2 * H, cell_m=1).json()
    assert (body["columns"], body["rows"], body["cell_m"]) == (30, 20, 1.0)
    assert body["cells"] == [[2, 2, 10.0], [28, 17, 40.0]]
    assert body["total_s"] == 50.0
    assert body["hottest"]["zone"] == "checkout"
    shares = {z["zone"]: z["share"] for z in body["zones"]}
    assert shares["checkout"] == 0.8 and shares["womenswear"] == 0.2
    first_hour = get(client, from_ms=T0, to_ms=T0 + H).json()
    assert first_hour["total_s"] == 40.0
    compared = get(
        client, from_ms=T0 + H, to_ms=T0 + 2 * H, compare_from_ms=T0, compare_to_ms=T0 + H
    ).json()
    assert compared["compare"]["total_s"] == 40.0
    assert sorted(compared["compare"]["difference_cells"]) == [[2, 2, 10.0], [28, 17, -40.0]]
    csv_text = get(client, from_ms=T0, to_ms=T0 + 2 * H, format="csv")
    assert csv_text.headers["content-type"].startswith("text/csv")
    lines = csv_text.text.splitlines()
    assert lines[0] == "ix,iy,x_m,y_m,cell_m,seconds"
    assert lines[1:] == ["2,2,2.5,2.5,1.0,10.0", "28,17,28.5,17.5,1.0,40.0"]


def test_only_a_read_key_sees_the_heatmap(client: TestClient) -> None:
    assert get(client, headers={}, from_ms=T0).status_code == 401
    assert get(client, headers={"X-API-Key": "not-a-key-123456"}, from_ms=T0).status_code == 401
    assert get(client, headers={"X-API-Key": POS_KEY}, from_ms=T0).status_code == 403
    assert get(client, headers={"X-API-Key": ADMIN_KEY}, from_ms=T0).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from_ms": T0 + H, "to_ms": T0}, "to_ms"),
        ({"from_ms": T0, "cell_m": 0.3}, "cell_m"),
        ({"from_ms": T0, "compare_from_ms": T0 + H, "compare_to_ms": T0}, "compare_to_ms"),
        ({"from_ms": T0, "to_ms": T0 + 100 * 86_400_000}, "to_ms"),
    ],
)
def test_a_bad_range_or_cell_size_is_a_422_naming_it(
    client: TestClient, params: dict[str, int | float], field: str
) -> None:
    response = get(client, None, **params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_an_unknown_store_is_a_404(client: TestClient) -> None:
    response = client.get("/api/v1/stores/nowhere/heatmap", headers=READ)
    assert response.status_code == 404
