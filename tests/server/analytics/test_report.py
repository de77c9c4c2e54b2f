"""`omnizone report` and `omnizone bench analytics`, run as commands."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from omnizone.suite.cli import app
from omnizone.suite.report import ReportError, parse_time

from .conftest import READ, STORE, STORE_FILE, VIEWS, Filled

CHARTS = ["presence", "dwell", "transitions"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_report(filled: Filled, out: Path, *extra: str, start: str = "2026-11-16") -> object:
    return CliRunner().invoke(
        app,
        [
            "report",
            "--store",
            STORE,
            "--from",
            start,
            "--to",
            "2026-11-17",
            "--out",
            str(out),
            "--database-url",
            filled.url,
            "--store-file",
            str(STORE_FILE),
            *extra,
        ],
    )


def test_report_writes_each_view_as_the_api_answers_it(
    filled: Filled, client: TestClient, tmp_path: Path
) -> None:
    raised_ms = filled.from_ms + 3_600_000
    log_alert(filled, "occupancy:shoes", "raised", raised_ms)
    log_alert(filled, "occupancy:shoes", "cleared", raised_ms + 90_000)
    log_alert(filled, "gateway_silent:gw-shoes", "raised", filled.to_ms + 1)  # after the range
    result = run_report(filled, tmp_path, "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    summary = json.loads(result.stdout)  # type: ignore[attr-defined]
    # Dates alone are local midnights in the store's timezone (Paris, UTC+1 in November).
    assert (summary["from_ms"], summary["to_ms"]) == (filled.from_ms, filled.to_ms)
    assert summary["from"] == "2026-11-16T00:00:00+01:00"
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    for view in VIEWS:
        written = (tmp_path / f"{STORE}-{view}.csv").read_text(encoding="utf-8")
        answer = client.get(
            f"/api/v1/stores/{STORE}/analytics/{view}",
            params={"from_ms": filled.from_ms, "to_ms": filled.to_ms, "format": "csv"},
            headers=READ,
        )
        assert written == answer.text, view
    # The campaign file is of the range too (issue 16): one day is not both days.
    both = client.get(
        f"/api/v1/stores/{STORE}/analytics/campaigns",
        params={"from_ms": filled.from_ms, "to_ms": filled.to_ms + 86_400_000, "format": "csv"},
        headers=READ,
    )
    assert (tmp_path / f"{STORE}-campaigns.csv").read_text(encoding="utf-8") != both.text
    for chart in CHARTS:
        path = tmp_path / f"{STORE}-{chart}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()  # a whole, readable PNG
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 300
            assert len(image.getcolors(maxcolors=1 << 20) or []) > 10  # something drawn
    # Issue 18's tables: the same bytes as the insight API's format=csv.
    insight = {
        "headline": {"at_ms": filled.to_ms - 1},
        "compare": {"view": "visits", "b_from_ms": filled.from_ms, "b_to_ms": filled.to_ms},
        "loyalty": {"from_ms": filled.from_ms, "to_ms": filled.to_ms},
        "staff": {"at_ms": filled.to_ms},
    }
    for kind, params in insight.items():
        written = (tmp_path / f"{STORE}-{kind}.csv").read_text(encoding="utf-8")
        answer = client.get(
            f"/api/v1/stores/{STORE}/insight/{kind}",
            params={**params, "format": "csv"},
            headers=READ,
        )
        assert answer.status_code == 200, answer.text
        assert written == answer.text, kind
    # Issue 18 point 7: the alert history of the range, raised to cleared, from the log.
    history = (tmp_path / f"{STORE}-alert-history.csv").read_text(encoding="utf-8").splitlines()
    assert history[0].startswith("key,kind,subject,severity,raised_ms,cleared_ms,duration_s")
    assert [row.split(",")[:7] for row in history[1:]] == [
        [
            "occupancy:shoes",
            "occupancy",
            "shoes",
            "warning",
            str(raised_ms),
            str(raised_ms + 90_000),
            "90.0",
        ]
    ]
    # Issue 18 point 6: the floor heatmap at 1 m, as the heatmap route answers it.
    written = (tmp_path / f"{STORE}-heatmap.csv").read_text(encoding="utf-8")
    answer = client.get(
        f"/api/v1/stores/{STORE}/heatmap",
        params={"from_ms": filled.from_ms, "to_ms": filled.to_ms, "cell_m": 1, "format": "csv"},
        headers=READ,
    )
    assert written == answer.text
    assert len(written.splitlines()) > 100  # the fill's cells: most of the floor
    with Image.open(tmp_path / f"{STORE}-heatmap.png") as image:
        assert image.format == "PNG" and len(image.getcolors(maxcolors=1 << 20) or []) > 10
    # Issue 18 point 9: the predictions as of the range's end, as their API's format=csv.
    predictions = {"footfall-forecast": "footfall", "next-products": "products"}
    for name, route in predictions.items():
        written = (tmp_path / f"{STORE}-{name}.csv").read_text(encoding="utf-8")
        answer = client.get(
            f"/api/v1/stores/{STORE}/predictions/{route}",
            params={"at_ms": filled.to_ms, "format": "csv", "limit": 1000},
            headers=READ,
        )
        assert answer.status_code == 200, answer.text
        assert written == answer.text, name
    assert sorted(summary["files"]) == sorted(
        [f"{STORE}-{v}.csv" for v in VIEWS]
        + [f"{STORE}-{k}.csv" for k in insight]
        + [f"{STORE}-{k}.csv" for k in predictions]
        + [f"{STORE}-alert-history.csv"]
        + [f"{STORE}-{c}.png" for c in CHARTS]
        + [f"{STORE}-heatmap.csv", f"{STORE}-heatmap.png"]
    )


def log_alert(filled: Filled, key: str, state: str, at_ms: int) -> None:
    from omnizone.server.adapters.alert_db import AlertRepository
    from omnizone.server.adapters.db import make_engine
    from omnizone.server.domain.analytics.alerts import AlertLogEntry

    kind, subject = key.split(":", 1)
    engine = make_engine(filled.url)
    try:
        entry = AlertLogEntry(key, kind, subject, "warning", state, 6, 5, f"{subject}: 6", at_ms)  # type: ignore[arg-type]
        AlertRepository(engine).append(STORE, [entry])
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "nowhere"], "unknown store 'nowhere'"),
        (["--from", "2026-11-18"], "--to"),
        (["--from", "last tuesday"], "--from: 'last tuesday' is not an ISO date"),
    ],
)
def test_report_refuses_bad_input_with_exit_2(
    filled: Filled, tmp_path: Path, args: list[str], message: str
) -> None:
    base = {
        "--store": STORE,
        "--from": "2026-11-16",
        "--to": "2026-11-17",
        "--out": str(tmp_path / "out"),
        "--database-url": filled.url,
        "--store-file": str(STORE_FILE),
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = CliRunner().invoke(app, ["report", *(x for kv in base.items() for x in kv)])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_report_defaults_to_the_databases_only_store_and_all_of_its_data(
    filled: Filled, client: TestClient, tmp_path: Path
) -> None:
    """No --store, --from or --to: the one store with data, first event to last."""
    index = client.get(f"/api/v1/stores/{STORE}/analytics", headers=READ).json()
    result = CliRunner().invoke(
        app,
        ["report", "--out", str(tmp_path), "--database-url", filled.url, "--json"],
        env={"OMNIZONE_STORE_FILES": json.dumps([str(STORE_FILE)])},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["store"] == STORE
    assert summary["from_ms"] == index["first_event_ms"]
    assert summary["to_ms"] == index["last_event_ms"] + 1
    # two simulated days: wider than the one-day range the other tests ask for
    assert summary["to_ms"] - summary["from_ms"] > filled.to_ms - filled.from_ms
    funnel = client.get(
        f"/api/v1/stores/{STORE}/analytics/funnel",
        params={"from_ms": summary["from_ms"], "to_ms": summary["to_ms"], "format": "csv"},
        headers=READ,
    )
    assert (tmp_path / f"{STORE}-funnel.csv").read_text(encoding="utf-8") == funnel.text


@pytest.mark.parametrize("url", ["sqlite:///{missing}", "sqlite://"])
def test_report_refuses_a_database_that_does_not_exist(tmp_path: Path, url: str) -> None:
    missing = tmp_path / "nowhere.db"
    result = CliRunner().invoke(
        app,
        ["report", "--out", str(tmp_path / "out"), "--database-url", url.format(missing=missing)],
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--database-url" in result.output
    assert "Traceback" not in result.output
    assert not missing.exists() and not (tmp_path / "out").exists()


def test_times_without_an_offset_are_store_local() -> None:
    assert parse_time("2026-11-16T10:30", "Europe/Paris", "--from") == parse_time(
        "2026-11-16T09:30:00Z", "UTC", "--from"
    )
    assert parse_time("2026-07-01", "Europe/Paris", "--from") == parse_time(
        "2026-06-30T22:00:00+00:00", "Europe/Paris", "--from"
    )
    with pytest.raises(ReportError, match="--to"):
        parse_time("2026-13-01", "UTC", "--to")


def test_bench_analytics_prints_latency_and_rows_per_view() -> None:
    result = CliRunner().invoke(
        app, ["bench", "analytics", "--days", "1", "--trips", "60", "--runs", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["views"]) == set(VIEWS)
    for figures in report["views"].values():
        assert figures["median_ms"] <= figures["max_ms"]
        assert figures["http_ms"] > 0 and figures["csv_rows"] >= 1
    assert report["rows"]["visits"] > 60 and report["rows"]["purchases"] > 0
    assert report["runs"] == 2 and isinstance(report["all_under_1s"], bool)
