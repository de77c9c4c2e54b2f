"""One strict pydantic base (``omnizone.contract.base.StrictModel``): models
derive from it and extend its config instead of restating it."""

import re
from pathlib import Path

import pytest
from pydantic import ConfigDict, ValidationError

from omnizone.contract import BleSighting, GatewayConfig
from omnizone.contract.base import StrictModel
from omnizone.gateway.settings import BleSettings
from omnizone.server.domain.offers.catalog import Product
from omnizone.sim.scenario import RadioModel
from omnizone.store.model import Zone

ROOT = Path(__file__).resolve().parents[2]
RESTATED = re.compile(r"""ConfigDict\([^)]*extra\s*=\s*["']forbid["'][^)]*frozen\s*=\s*True""")


class _Wire(StrictModel):
    model_config = ConfigDict(allow_inf_nan=False)

    rssi: float


def test_unknown_fields_are_refused_and_values_frozen() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        _Wire(rssi=-60, rsi=-61)  # type: ignore[call-arg]
    wire = _Wire(rssi=-60)
    with pytest.raises(ValidationError, match="frozen"):
        wire.rssi = -50  # type: ignore[misc]


def test_a_subclass_extends_the_config_it_inherits() -> None:
    assert _Wire.model_config == {"extra": "forbid", "frozen": True, "allow_inf_nan": False}
    with pytest.raises(ValidationError):
        _Wire(rssi=float("nan"))


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        (BleSighting, {"allow_inf_nan": False}),
        (GatewayConfig, {"allow_inf_nan": False}),
        (Zone, {}),
        (BleSettings, {}),
        (RadioModel, {}),
        (Product, {"strict": True}),
    ],
)
def test_each_part_derives_from_the_one_base(model: type, extra: dict[str, object]) -> None:
    assert issubclass(model, StrictModel)
    assert model.model_config == {"extra": "forbid", "frozen": True, **extra}  # type: ignore[attr-defined]


def test_no_model_restates_the_strict_config() -> None:
    home = ROOT / "omnizone" / "contract" / "base.py"
    sources = [
        path
        for part in ("omnizone", "gateway", "server", "firmware-sim", "suite")
        for path in (ROOT / part).rglob("*.py")
        if path != home
    ]
    restated = [
        str(path.relative_to(ROOT))
        for path in sources
        if RESTATED.search(path.read_text(encoding="utf-8"))
    ]
    assert restated == []
    assert RESTATED.search(home.read_text(encoding="utf-8"))
