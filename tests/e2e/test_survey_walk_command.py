"""``omnizone sim survey-walk`` against a real broker and server: the
simulated staff phone pairs with the code a staff key got, walks each zone
it was given until the server says enough, and the survey finishes."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from omnizone.broker.files import write_private
from omnizone.server.domain.localize.survey import load_survey
from omnizone.suite.cli import app
from tests.e2e.conftest import Backend

ZONES = ["denim", "accessories"]


def test_a_simulated_phone_walks_the_zones_it_is_given(backend: Backend, tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    write_private(accounts, yaml.safe_dump(backend.accounts.clients_file()))
    store = backend.store.id
    with backend.api() as api:
        started = api.post(f"/api/v1/stores/{store}/surveys")
        assert started.status_code == 201, started.text
        survey = started.json()
        result = CliRunner().invoke(
            app,
            [
                "sim", "survey-walk", "--accounts", str(accounts),
                "--broker-port", str(backend.broker.port), "--api-url", backend.server.api_url,
                "--code", survey["code"], "--zones", ",".join(ZONES), "--speed", "8",
                "--wall-limit-s", "240", "--run-dir", str(tmp_path / "walk"), "--json",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["walked"] == ZONES
        assert all(summary["zones"][zone]["enough"] for zone in ZONES), summary
        # the walker paused when done: staff finish
        finished = api.post(f"/api/v1/stores/{store}/surveys/{survey['id']}/finish")
        assert finished.status_code == 200, finished.text
    walked = load_survey(finished.json()["survey"], backend.store)
    assert set(walked.zones) == set(ZONES)


def test_a_wrong_code_is_refused_with_the_reason(backend: Backend, tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    write_private(accounts, yaml.safe_dump(backend.accounts.clients_file()))
    result = CliRunner().invoke(
        app,
        [
            "sim", "survey-walk", "--accounts", str(accounts),
            "--broker-port", str(backend.broker.port), "--api-url", backend.server.api_url,
            "--code", "ZZZZZZ", "--run-dir", str(tmp_path / "walk"),
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "pairing refused: 404" in result.output and "pairing code" in result.output
