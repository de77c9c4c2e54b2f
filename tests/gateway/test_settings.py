"""Gateway settings: the example file loads; a broken one names file and field."""

import os
from pathlib import Path

import pytest

from omnizone.gateway.settings import GatewayConfigError, load_gateway_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "gateway.example.yaml"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read OMNIZONE_GATEWAY_*: a developer's shell must not leak in."""
    for name in list(os.environ):
        if name.upper().startswith("OMNIZONE_GATEWAY_"):
            monkeypatch.delenv(name)


def test_the_example_file_loads() -> None:
    settings = load_gateway_settings(EXAMPLE)
    assert (settings.store, settings.gateway) == ("paris-rivoli", "gw-entrance")
    assert (settings.broker_host, settings.broker_port) == ("omnizone-server.local", 8883)
    assert settings.username is None  # defaults to the gateway id where it is used
    assert settings.tls_ca == "/etc/omnizone/ca.crt"
    assert settings.window_ms == 1000
    assert settings.outbox_path == Path("/var/lib/omnizone/outbox.db")
    assert settings.outbox_max_messages == 200_000
    assert settings.health_interval_s == 30


def test_keyword_overrides_win_and_none_means_not_given() -> None:
    settings = load_gateway_settings(EXAMPLE, broker_port=1883, tls_ca=None, gateway="gw-denim")
    assert (settings.broker_port, settings.gateway) == (1883, "gw-denim")
    assert settings.tls_ca == "/etc/omnizone/ca.crt"


def test_without_a_file_the_environment_supplies_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIZONE_GATEWAY_STORE", "paris-rivoli")
    monkeypatch.setenv("OMNIZONE_GATEWAY_GATEWAY", "gw-shoes")
    monkeypatch.setenv("OMNIZONE_GATEWAY_PASSWORD", "s3cret")
    settings = load_gateway_settings(None)
    assert (settings.gateway, settings.password, settings.broker_port) == (
        "gw-shoes",
        "s3cret",
        1883,
    )


def test_the_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIZONE_GATEWAY_PASSWORD", "from-the-environment")
    assert load_gateway_settings(EXAMPLE).password == "from-the-environment"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "store: s\ngateway: g\npassword: p\nwindow_ms: 5\n",
            ["window_ms", "greater than or equal to 100"],
        ),
        ("store: s\ngateway: g\npassword: p\nbroker_port: 70000\n", ["broker_port", "65535"]),
        ("store: s\ngateway: g\npassword: p\nwindows_ms: 500\n", ["windows_ms", "Extra inputs"]),
        ("store: s\ngateway: g\n", ["password", "Field required"]),
        ("store: Paris Rivoli\ngateway: g\npassword: p\n", ["store", "should match pattern"]),
        ("store: s\ngateway: [g\n", ["not valid YAML"]),
        ("- store\n- gateway\n", ["expected a mapping of settings"]),
    ],
    ids=["window", "port", "typo", "missing", "bad-id", "yaml", "list"],
)
def test_a_broken_file_names_the_file_and_the_field(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GatewayConfigError) as caught:
        load_gateway_settings(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for fragment in expected:
        assert fragment in message, message


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(GatewayConfigError, match="cannot read"):
        load_gateway_settings(path)
