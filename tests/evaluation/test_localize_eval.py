"""End to end against ground truth: the simulated store through the real gateway
pipeline and the server's ingest, scored for the default (grid) localizer and
the nearest-gateway baseline on the same messages."""

import pytest

from omnizone.evaluation.localize import run_localize_eval
from omnizone.paths import shipped_config
from omnizone.sim.scenario import load_scenario


@pytest.fixture(scope="module")
def result() -> dict:  # type: ignore[type-arg]
    scenario = load_scenario(shipped_config("scenarios/quick.yaml"), duration_s=300)
    return run_localize_eval(scenario)


def test_the_report_has_every_figure_for_both_localizers(result: dict) -> None:  # type: ignore[type-arg]
    figures = {
        "zone_accuracy",
        "flaps_per_shopper_hour",
        "change_latency_median_s",
        "change_latency_p90_s",
        "dwell_mae_ratio",
    }
    assert figures <= set(result) and figures <= set(result["baseline"])
    assert result["shopper_seconds"] == result["baseline"]["shopper_seconds"] > 1000


def test_the_localizer_places_shoppers_better_and_far_more_steadily(result: dict) -> None:  # type: ignore[type-arg]
    ours, nearest = result, result["baseline"]
    assert ours["localizer"] == "grid" and nearest["localizer"] == "nearest-gateway"
    # Tolerances from docs/benchmarks.md, with room for a short run's noise.
    assert ours["zone_accuracy"] >= 0.9
    assert ours["zone_accuracy"] > nearest["zone_accuracy"]
    assert ours["flaps_per_shopper_hour"] * 10 < nearest["flaps_per_shopper_hour"]
    assert ours["dwell_mae_ratio"] < nearest["dwell_mae_ratio"]
    assert ours["change_latency_median_s"] <= 3
