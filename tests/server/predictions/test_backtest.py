"""The backtest (``omnizone eval predict``) on a held-out seed: the history is
stored, read back through the server's PredictionService, and the models
beat the naive baselines; the simulator's hidden favourites are found."""

import pytest
from typer.testing import CliRunner

from omnizone.suite.cli import app
from omnizone.suite.evaluation.predict import run_predict_eval


def test_models_beat_the_baselines_on_a_held_out_seed() -> None:
    result = run_predict_eval(seed=23, trips_per_day=250)
    products, footfall = result["products"], result["footfall"]
    assert products["shoppers_scored"] > 100
    model, base = products["model"], products["baseline_most_popular"]
    assert model["hit_rate_at_3"] > base["hit_rate_at_3"]
    assert model["mrr"] > base["mrr"]
    # Ground truth: the top predicted category is the shopper's hidden favourite.
    fav = products["favourite_category"]
    assert fav["model_top_category_is_favourite"] > 0.6
    assert fav["model_top_category_is_favourite"] > fav["baseline_top_category_is_favourite"] + 0.3
    fm, fb = footfall["model"], footfall["baseline_same_hour_last_week"]
    assert fm["cells"] == fb["cells"]
    assert fm["mae"] < fb["mae"]
    assert fm["wape"] < fb["wape"]
    assert footfall["dropped_days"] == ["2026-11-11"]  # the holiday, and only it
    assert 0.0 < footfall["trend_per_week"] < 0.1  # the simulated 4 % a week


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cut-day", "3"], "--cut-day must be 14 .. days - 7 (28), got 3"),
        (["--trips-per-day", "0"], "--trips-per-day must be at least 1"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["eval", "predict", "--json", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
