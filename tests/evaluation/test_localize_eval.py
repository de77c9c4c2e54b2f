"""End to end against ground truth: the simulated store through the real gateway
pipeline and the server's ingest, scored for the default (grid) localizer and
the nearest-gateway baseline on the same messages."""

import pytest

from omnizone.paths import shipped_config
from omnizone.sim.scenario import load_scenario
from omnizone.suite.evaluation.localize import run_localize_eval


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


def test_the_command_takes_a_finer_truth_and_another_hysteresis_bar() -> None:
    """`omnizone eval localize --truth-interval-ms 100 --enter-probability 0.5`:
    the trade-off runs of docs/benchmarks.md, through the command itself."""
    import json

    from typer.testing import CliRunner

    from omnizone.suite.cli import app

    scenario = shipped_config("scenarios/quick.yaml")
    outcome = CliRunner().invoke(
        app,
        [
            "eval", "localize", "--scenario", str(scenario), "--duration", "120",
            "--truth-interval-ms", "100", "--enter-probability", "0.5", "--json",
        ],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert result["truth_interval_ms"] == 100 and result["enter_probability"] == 0.5
    assert "enter_probability" not in result["baseline"]
    # ten truth rows per shopper-second
    assert result["truth_rows"] == result["baseline"]["truth_rows"]
    assert result["truth_rows"] == pytest.approx(10 * result["shopper_seconds"], rel=0.01)
    refused = CliRunner().invoke(
        app, ["eval", "localize", "--scenario", str(scenario), "--enter-probability", "1.5"]
    )
    assert refused.exit_code == 2


def test_the_command_takes_a_window_and_scores_the_delayed_truth() -> None:
    """`--window-ms 500 --delayed-truth 2.0`: half-second gateway windows, and
    the true zones reported 2 s late beside the localizer (the ceiling)."""
    import json

    from typer.testing import CliRunner

    from omnizone.suite.cli import app

    scenario = shipped_config("scenarios/quick.yaml")
    outcome = CliRunner().invoke(
        app,
        [
            "eval", "localize", "--scenario", str(scenario), "--duration", "120",
            "--window-ms", "500", "--delayed-truth", "0", "--delayed-truth", "2.0", "--json",
        ],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert result["window_ms"] == 500
    exact, late = result["delayed_truth"]["0"], result["delayed_truth"]["2"]
    assert exact["zone_accuracy"] == 1.0 and exact["flaps_per_shopper_hour"] == 0
    assert late["zone_accuracy"] < 1.0 and late["flaps_per_shopper_hour"] == 0
    if late["entries_scored"]:
        assert late["change_latency_median_s"] == 2.0
