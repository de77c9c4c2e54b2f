"""Fingerprint evaluation against kNN, likelihood sanity, and the bench's shape."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from omnizone.server.domain.localize import (
    combine,
    fingerprint_map,
    log_likelihood,
    path_loss_map,
    simulate_survey,
    write_survey,
)
from omnizone.server.domain.localize.propagation import anchor_positions, mean_rssi_dbm
from omnizone.store import StorePlan
from omnizone.suite.bench.localize import run_localize_bench, synthetic_plan
from omnizone.suite.cli import app
from omnizone.suite.evaluation.fingerprint import (
    SuiteError,
    evaluate_fingerprint,
    evaluate_fingerprint_files,
    evaluate_fingerprint_suite,
    suite_pairs,
)

ROOT = Path(__file__).resolve().parents[3]
SURVEYS = ROOT / "config" / "surveys"


def test_next_to_a_gateway_is_most_likely_its_zone(plan: StorePlan) -> None:
    radio = path_loss_map(plan)
    anchors, xy = anchor_positions(plan)
    for gateway, position in zip(anchors, xy, strict=True):
        rssi = mean_rssi_dbm(np.linalg.norm(xy - position, axis=1), -59.0, 2.2)[None, :]
        scores = log_likelihood(radio, rssi)
        assert radio.zones[int(scores.argmax())] == plan.gateway_zones[gateway]


def test_silence_is_evidence(plan: StorePlan) -> None:
    """A gateway that reports without hearing the device counts against the
    zones it would hear, most against its own; one that did not report says nothing."""
    radio = path_loss_map(plan)
    rssi = np.full((1, len(radio.anchors)), -80.0)
    checkout = radio.anchors.index("gw-checkout")
    rssi[0, checkout] = np.nan
    everyone = np.ones(len(radio.anchors), dtype=bool)
    without_checkout = everyone.copy()
    without_checkout[checkout] = False
    drop = log_likelihood(radio, rssi, everyone) - log_likelihood(radio, rssi, without_checkout)
    drop_by_zone = dict(zip(radio.zones, drop[0], strict=True))
    assert (drop < 0).all()
    assert drop_by_zone["checkout"] < drop_by_zone["womenswear"]
    assert drop_by_zone["checkout"] == pytest.approx(drop.min())  # ties: p_heard is capped


def test_combine_keeps_the_model_zones_and_adds_survey_anchors(plan: StorePlan) -> None:
    model = path_loss_map(plan, points_per_zone=20)
    survey = simulate_survey(plan, 10, 3.0, seed=3, zones=["entrance", "shoes"])
    renamed = fingerprint_map(survey)
    extra = type(renamed)(
        zones=renamed.zones,
        anchors=(*renamed.anchors[:-1], "bcn-checkout"),
        mean_dbm=renamed.mean_dbm,
        sigma_db=renamed.sigma_db,
        p_heard=renamed.p_heard,
    )
    both = combine(model, extra, 0.7)
    assert both.zones == model.zones
    assert both.anchors == (*model.anchors, "bcn-checkout")
    assert np.all(both.sigma_db >= 2.0) and np.all((both.p_heard >= 0.01) & (both.p_heard <= 0.99))
    # a cell only the model knows is the model's
    z, a = model.zones.index("menswear"), model.anchors.index("gw-menswear")
    assert both.mean_dbm[z, a] == model.mean_dbm[z, a]
    # a cell both know lies between them
    z = model.zones.index("shoes")
    lo, hi = sorted((model.mean_dbm[z, 0], extra.mean_dbm[extra.zones.index("shoes"), 0]))
    assert lo <= both.mean_dbm[z, 0] <= hi


def test_fingerprint_eval_on_shipped_surveys_ties_or_beats_knn(plan: StorePlan) -> None:
    result = evaluate_fingerprint_files(
        SURVEYS / "rivoli-train-3db.csv", SURVEYS / "rivoli-test-3db.csv"
    )
    assert {"zone_accuracy", "n_test", "confusion", "baseline"} <= result.keys()
    assert {"zone_accuracy", "n_test", "confusion", "k"} <= result["baseline"].keys()
    assert result["n_test"] == result["baseline"]["n_test"] == 1000
    assert sum(sum(row.values()) for row in result["confusion"].values()) == 1000
    assert result["zone_accuracy"] >= result["baseline"]["zone_accuracy"]
    assert result["zone_accuracy"] > 0.8
    assert set(result["peers"]) == {"knn3", "random_forest", "hist_gradient_boosting"}
    best = max(peer["zone_accuracy"] for peer in result["peers"].values())
    assert result["peers"][result["best_peer"]]["zone_accuracy"] == best
    assert result["margin_over_best_peer"] == round(result["zone_accuracy"] - best, 4)
    assert result["ahead_of_best_peer"] == (result["margin_over_best_peer"] >= 0.03)
    assert 0.0 < result["log_loss"] < result["peers"]["knn3"]["log_loss"]


def test_fingerprint_eval_with_the_plan_prior(plan: StorePlan) -> None:
    train = simulate_survey(plan, 8, 6.0, seed=5)
    test = simulate_survey(plan, 30, 6.0, seed=6)
    result = evaluate_fingerprint(train, test, plan=plan)
    assert result["method"] == "learned+trees"
    assert result["radio_map"]["method"] == "fingerprint+path-loss"
    assert result["radio_map"]["zone_accuracy"] >= result["baseline"]["zone_accuracy"]


def test_fingerprint_suite_runs_every_pair_and_names_the_sets_behind(
    plan: StorePlan, tmp_path: Path
) -> None:
    for name, seed in (("alpha", 1), ("beta", 3)):
        write_survey(simulate_survey(plan, 12, 6.0, seed=seed), tmp_path / f"{name}-train.csv")
        write_survey(simulate_survey(plan, 8, 6.0, seed=seed + 1), tmp_path / f"{name}-test.csv")
    result = evaluate_fingerprint_suite(tmp_path)
    assert [row["name"] for row in result["pairs"]] == ["alpha", "beta"]
    assert result["behind"] == [r["name"] for r in result["pairs"] if not r["ahead_of_best_peer"]]
    assert result["ahead_everywhere"] == (not result["behind"])
    for row in result["pairs"]:
        assert row["best_peer_accuracy"] == max(row["peers"].values())


def test_fingerprint_suite_refuses_an_unpaired_file(plan: StorePlan, tmp_path: Path) -> None:
    write_survey(simulate_survey(plan, 4, 6.0, seed=1), tmp_path / "alpha-train.csv")
    with pytest.raises(SuiteError, match=r"alpha-train\.csv has no alpha-test\.csv"):
        suite_pairs(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SuiteError, match=r"no '<name>-train\.csv'"):
        suite_pairs(empty)
    with pytest.raises(SuiteError, match="not a folder"):
        suite_pairs(tmp_path / "missing")


def test_fingerprint_cli_needs_either_a_pair_or_a_suite(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "fingerprint", "--suite", str(tmp_path), "--train", "a"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["eval", "fingerprint", "--suite", str(tmp_path)])
    assert result.exit_code == 2
    assert "pairs" in result.output and "Traceback" not in result.output


def test_synthetic_plan_has_the_requested_size() -> None:
    plan = synthetic_plan(7, 5)
    assert len(plan.zones) == 7 and len(plan.gateways) == 5
    assert plan.entrances == ["z000"]


def test_bench_reports_its_figures() -> None:
    result = run_localize_bench(devices=40, anchors=6, zones=5, windows=3, sizes=(10, 20))
    assert result["sightings_per_s"] > 0
    assert [row["devices"] for row in result["scaling"]] == [10, 20, 40]
    for row in result["scaling"]:
        assert {"devices", "sightings_per_s", "seconds_per_window"} <= row.keys()
        # CPU-based and wall-based figures side by side
        assert row["us_per_device_window"] > 0 and row["wall_us_per_device_window"] > 0
        assert row["wall_sightings_per_s"] > 0
    assert result["us_per_device_window"] == result["scaling"][-1]["us_per_device_window"]
    assert result["clock"] == "process_time"
    assert isinstance(result["linear"], bool)
    assert result["threads"] == 1
