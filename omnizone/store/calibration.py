"""The calibration file a store file points to (``localization.calibration``):
each anchor's radio parameters, fitted by ``omnizone calibrate`` from a survey
walk or by the server from what the gateways hear of one another.

The model (docs/localization.md): a device at distance d from anchor j reports
``power_1m_dbm + offset_db[j] - 10 · exponent[j] · log10(d)``, give or take
``spread_db[j]``. ``power_1m_dbm`` is the store's devices as a typical anchor
hears them at 1 m; ``offset_db`` is how much louder (or quieter) anchor j
hears than that (its antenna, mounting, enclosure).
"""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from omnizone.contract.base import StrictModel
from omnizone.store.load import StoreConfigError, validation_problems
from omnizone.store.model import Identifier, StorePlan

CalibrationSource = Literal["survey", "self", "manual"]


class AnchorCalibration(StrictModel):
    offset_db: float = Field(0.0, ge=-60, le=60, description="dB louder than a typical anchor")
    exponent: float = Field(2.2, gt=0.5, le=8.0, description="path-loss exponent")
    spread_db: float = Field(4.0, gt=0, le=40, description="spread of a window's mean RSSI")
    samples: int = Field(0, ge=0, description="readings the fit used (0: set by hand)")

    def power_1m_dbm(self, store_power_1m_dbm: float) -> float:
        return store_power_1m_dbm + self.offset_db


class StoreCalibration(StrictModel):
    version: Literal[1] = 1
    store: Identifier
    source: CalibrationSource = "survey"
    fitted_at: str | None = Field(None, description="ISO 8601 time of the fit")
    power_1m_dbm: float = Field(-59.0, ge=-120, le=20, description="devices' power at 1 m")
    anchors: dict[Identifier, AnchorCalibration] = Field(default_factory=dict)


def parse_calibration(text: str, plan: StorePlan | None = None, *, source: str) -> StoreCalibration:
    """Problems name the file and field, as the store file's do; anchors must be the plan's."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise StoreConfigError(source, [f"{where}not valid YAML"]) from None
    if not isinstance(data, dict):
        raise StoreConfigError(source, ["expected a mapping with 'store' and 'anchors'"])
    try:
        calibration = StoreCalibration.model_validate(data)
    except ValidationError as error:
        raise StoreConfigError(source, validation_problems(error, data)) from None
    if plan is not None:
        problems = []
        if calibration.store != plan.store.id:
            problems.append(f"store: {calibration.store!r} is not this store ({plan.store.id!r})")
        known = {g.id for g in plan.gateways} | {b.id for b in plan.beacons}
        problems += [
            f"anchors.{anchor}: not a gateway or beacon of the store"
            for anchor in calibration.anchors
            if anchor not in known
        ]
        if problems:
            raise StoreConfigError(source, problems)
    return calibration


def load_calibration(path: str | Path, plan: StorePlan | None = None) -> StoreCalibration:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise StoreConfigError(str(path), [f"cannot read the file: {error.strerror}"]) from None
    return parse_calibration(text, plan, source=str(path))


def dump_calibration(calibration: StoreCalibration) -> str:
    header = (
        "# omnizone calibration (docs/localization.md). A device at distance d from an\n"
        "# anchor reports power_1m_dbm + offset_db - 10 * exponent * log10(d) dBm.\n"
    )
    body = yaml.safe_dump(calibration.model_dump(mode="json"), sort_keys=False)
    return header + body
