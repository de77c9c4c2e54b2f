"""What a store's localizer learns its radio from, beside the floor plan.

A store file may name a fingerprint survey (``localization.survey``, resolved
relative to the store file by ``load_store``); the server reads it once at
start, here, so a deployed store is localized with its survey and a bad file
stops the start with every bad line named (``SurveyError``). The localizer
itself (``domain/localize``) gets plain data and never opens a file.

A per-anchor calibration file (``localization.calibration``) is named in the
model but not read yet (issue 14): a store that names one is refused rather
than run as if it had none.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omnizone.server.domain.localize.survey import Survey, load_survey
from omnizone.store import StoreConfigError, StorePlan


@dataclass(frozen=True, slots=True)
class RadioSetup:
    """Everything one store's localizer learns from besides the plan."""

    survey: Survey | None = None
    survey_file: Path | None = None  # where ``survey`` was read from (for logs, reports)


NO_SETUP = RadioSetup()


def radio_setup(plan: StorePlan) -> RadioSetup:
    """Read what ``plan.localization`` names. Raises ``SurveyError`` (file and
    line of each problem) for a bad survey, ``StoreConfigError`` for a
    calibration file, which is not supported yet."""
    named = plan.localization
    if named.calibration is not None:
        raise StoreConfigError(
            f"store {plan.id}",
            [
                f"localization.calibration: {named.calibration}: calibration files are not "
                "read yet (issue 14); remove the line to run with the default radio map"
            ],
        )
    if named.survey is None:
        return NO_SETUP
    path = Path(named.survey)
    return RadioSetup(survey=load_survey(path, plan), survey_file=path)


def radio_setups(stores: Mapping[str, StorePlan]) -> dict[str, RadioSetup]:
    """``radio_setup`` of every store, by store id."""
    return {store: radio_setup(plan) for store, plan in stores.items()}
