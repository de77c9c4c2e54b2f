"""What a store's localizer learns its radio from, beside the floor plan.

A store file may name a fingerprint survey (``localization.survey``) and a
calibration (``localization.calibration``: each anchor's power at 1 m,
path-loss exponent and spread, written by ``omnizone calibrate``), both
resolved relative to the store file by ``load_store``. The server reads them
at start, here, so a deployed store is localized with them and a bad file
stops the start with every problem named (``SurveyError``,
``StoreConfigError``); ``radio_reload.LocalizerReload`` reads them again when
they change. The localizer itself (``domain/localize``) gets plain data and
never opens a file.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omnizone.server.domain.localize.calibration import RadioParameters, radio_parameters
from omnizone.server.domain.localize.propagation import anchor_positions
from omnizone.server.domain.localize.survey import Survey, load_survey
from omnizone.store import StorePlan
from omnizone.store.calibration import StoreCalibration, load_calibration


@dataclass(frozen=True, slots=True)
class RadioSetup:
    """Everything one store's localizer learns from besides the plan."""

    survey: Survey | None = None
    survey_file: Path | None = None  # where ``survey`` was read from (for logs, reports)
    calibration: StoreCalibration | None = None
    calibration_file: Path | None = None

    def model_parameters(self, plan: StorePlan) -> RadioParameters:
        """The path-loss model's per-anchor parameters, in the plan's anchor
        order; none without a calibration (the model's defaults)."""
        if self.calibration is None:
            return RadioParameters()
        anchors, _ = anchor_positions(plan)
        return radio_parameters(anchors, self.calibration)


NO_SETUP = RadioSetup()


def radio_setup(plan: StorePlan) -> RadioSetup:
    """Read what ``plan.localization`` names. Raises ``SurveyError`` (file and
    line of each problem) for a bad survey, ``StoreConfigError`` (file and
    field) for a bad calibration or one that names another store's anchors."""
    named = plan.localization
    survey_file = Path(named.survey) if named.survey is not None else None
    calibration_file = Path(named.calibration) if named.calibration is not None else None
    return RadioSetup(
        survey=load_survey(survey_file, plan) if survey_file is not None else None,
        survey_file=survey_file,
        calibration=(
            load_calibration(calibration_file, plan) if calibration_file is not None else None
        ),
        calibration_file=calibration_file,
    )


def radio_setups(stores: Mapping[str, StorePlan]) -> dict[str, RadioSetup]:
    """``radio_setup`` of every store, by store id."""
    return {store: radio_setup(plan) for store, plan in stores.items()}
