"""The accuracy definitions on hand-made timelines: each figure moves when it should."""

from omnizone.suite.evaluation.metrics import Placement, RecordedVisit, TruthRow, evaluate

T0 = 1_795_251_600_000


def _truth(zones: list[str | None], shopper: str = "s1", device: str = "eid:01") -> list[TruthRow]:
    return [TruthRow(T0 + i * 1000, shopper, device, z) for i, z in enumerate(zones)]


def test_a_perfect_report_scores_perfectly() -> None:
    truth = _truth(["a"] * 30 + ["b"] * 30)
    placements = {"eid:01": [Placement(T0, "a"), Placement(T0 + 30_000, "b")]}
    visits = [
        RecordedVisit("eid:01", "a", T0, T0 + 29_000, 29.0),
        RecordedVisit("eid:01", "b", T0 + 30_000, T0 + 59_000, 29.0),
    ]
    result = evaluate(truth, placements, visits, min_stay_s=10)
    assert result["zone_accuracy"] == 1.0
    assert result["flaps_per_shopper_hour"] == 0
    assert result["change_latency_median_s"] == 0
    assert result["changes_already_reported_fraction"] == 1.0
    assert result["dwell_mae_ratio"] == 0
    assert result["true_visits"] == 2


def test_a_late_report_costs_accuracy_and_shows_as_latency() -> None:
    truth = _truth(["a"] * 30 + ["b"] * 30)
    placements = {"eid:01": [Placement(T0, "a"), Placement(T0 + 33_000, "b")]}
    result = evaluate(truth, placements, [], min_stay_s=10)
    assert result["zone_accuracy"] == 57 / 60 == round(57 / 60, 4)
    assert result["change_latency_median_s"] == 3.0
    assert result["dwell_mae_ratio"] == 1.0  # no visit recorded at all


def test_flapping_between_neighbours_is_counted() -> None:
    truth = _truth(["a"] * 3600)  # one hour in one zone
    flips = [Placement(T0 + i * 60_000, "a" if i % 2 == 0 else "b") for i in range(11)]
    result = evaluate(truth, {"eid:01": flips}, [], min_stay_s=10)
    assert result["flaps_per_shopper_hour"] == 10.0


def test_a_change_never_reported_is_missed_not_slow() -> None:
    truth = _truth(["a"] * 20 + ["b"] * 20)
    result = evaluate(truth, {"eid:01": [Placement(T0, "a")]}, [], min_stay_s=10)
    assert result["changes_missed_fraction"] == 1.0
    assert result["change_latency_median_s"] is None


def test_dwell_error_uses_the_best_overlapping_visit() -> None:
    truth = _truth(["a"] * 40)
    visits = [
        RecordedVisit("eid:01", "a", T0 + 5_000, T0 + 35_000, 30.0),
        RecordedVisit("eid:01", "a", T0 + 36_000, T0 + 38_000, 2.0),
    ]
    result = evaluate(truth, {"eid:01": [Placement(T0, "a")]}, visits, min_stay_s=10)
    assert result["dwell_mae_ratio"] == round(abs(30 - 39) / 39, 4)


def test_stays_cut_off_by_the_end_of_the_run_are_left_out_of_dwell() -> None:
    truth = _truth(["a"] * 100)
    result = evaluate(truth, {}, [], min_stay_s=10, end_ms=T0 + 100_000)
    assert result["true_visits"] == 0 and result["dwell_mae_ratio"] is None


def test_finer_ground_truth_measures_latency_below_a_second_and_keeps_the_hour() -> None:
    """One row per 100 ms: a report 400 ms after the true entry is 0.4 s late,
    where one row per second can only say 0 or 1 s."""
    truth = [
        TruthRow(T0 + i * 100, "s1", "eid:01", "a" if i < 18_000 else "b") for i in range(36_000)
    ]
    placements = {"eid:01": [Placement(T0, "a"), Placement(T0 + 1_800_400, "b")]}
    result = evaluate(truth, placements, [], min_stay_s=10)
    assert result["change_latency_median_s"] == 0.4
    assert result["changes_already_reported_fraction"] == 0.0
    assert result["zone_accuracy"] == round(1 - 4 / 36_000, 4)
    # one hour of rows is one shopper-hour: two spurious changes are two per hour
    flaps = [*placements["eid:01"][:1], Placement(T0 + 60_000, "b"), Placement(T0 + 61_000, "a")]
    flapping = evaluate(truth, {"eid:01": [*flaps, placements["eid:01"][1]]}, [], min_stay_s=10)
    assert flapping["flaps_per_shopper_hour"] == 2.0
