"""`omnizone eval selfcal` on a short run: the gateways' hidden radio is far
from the defaults, and self-calibration alone gets close to the truth."""

import subprocess
import sys

from omnizone.paths import shipped_config
from omnizone.sim.scenario import load_scenario
from omnizone.suite.evaluation.selfcal import run_selfcal_eval


def test_self_calibration_alone_comes_close_to_the_true_parameters() -> None:
    scenario = load_scenario(shipped_config("scenarios/selfcal.yaml"), duration_s=180)
    result = run_selfcal_eval(scenario, warmup_s=60)
    default, true, self_ = (result[m]["zone_accuracy"] for m in ("default", "true", "self"))
    assert true - default >= 0.1  # the hidden radio matters
    assert self_ >= true - 0.03
    assert result["self"]["gateway_beacons_ingested"] > 10_000
    assert result["self_fit_warmup"]["fitted"] is True
    assert result["self"]["alerts"] == []  # nothing moved


def test_the_command_refuses_an_unknown_calibration_by_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omnizone.suite", "eval", "selfcal", "--calibration", "best"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "'best'" in done.stderr and "default, true, self" in done.stderr
