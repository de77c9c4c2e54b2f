"""A running store's localizer follows its newest floor and radio without a
restart: a layout saved in the dashboard, or a survey or calibration file
rewritten (``omnizone calibrate --out``, the gateways' self-calibration).

The windows the old localizer still holds are decided first; then the new one
takes over. Visits carry on (ingest keeps them, not the localizer); the new
filter finds each shopper again within a few windows. A file that no longer
reads keeps the running localizer and is reported (``errors``), never a crash.
"""

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from omnizone.server.domain.localize.survey import SurveyError
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import Locator
from omnizone.server.service.radio_setup import RadioSetup, radio_setup
from omnizone.store import Localization, StoreConfigError, StorePlan

log = logging.getLogger(__name__)

MakeLocator = Callable[[StorePlan, RadioSetup], Locator]
Stamp = tuple[tuple[str, int, int] | None, ...]


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    reloads: int
    errors: Mapping[str, str]  # store -> why its newest files were not applied


class LocalizerReload:
    def __init__(
        self,
        ingest: IngestService,
        running: Mapping[str, StorePlan],
        radio_files: Mapping[str, Localization],
        make_locator: MakeLocator,
    ) -> None:
        """``radio_files``: each store's survey and calibration as its store
        file names them (a layout saved in the dashboard is the floor, not the
        radio)."""
        self._ingest = ingest
        self._plans = dict(running)
        self._files = dict(radio_files)
        self._make = make_locator
        self._stamps = {store: _stamp(files) for store, files in self._files.items()}
        self._errors: dict[str, str] = {}
        self._reloads = 0

    @property
    def status(self) -> ReloadStatus:
        return ReloadStatus(self._reloads, dict(self._errors))

    def layout_saved(self, store: str, plan: StorePlan) -> bool:
        """A layout saved in the dashboard: localize on it from the next window."""
        return self._apply(store, plan)

    def check_files(self) -> list[str]:
        """Reload every store whose survey or calibration file changed; the
        stores reloaded. Called periodically by the runtime."""
        changed = []
        for store, files in self._files.items():
            stamp = _stamp(files)
            if stamp != self._stamps.get(store):
                self._stamps[store] = stamp
                if self._apply(store, self._plans[store]):
                    changed.append(store)
        return changed

    def _apply(self, store: str, plan: StorePlan) -> bool:
        radio_plan = plan.model_copy(
            update={"localization": self._files.get(store, plan.localization)}
        )
        try:
            setup = radio_setup(radio_plan)
        except (SurveyError, StoreConfigError) as error:
            self._errors[store] = str(error)
            log.warning(
                "store %s: new radio not applied, keeping the running one: %s", store, error
            )
            return False
        self._ingest.replace_store(plan, self._make(plan, setup))
        self._plans[store] = plan
        self._errors.pop(store, None)
        self._reloads += 1
        log.info(
            "store %s: localizer rebuilt (survey %s, calibration %s)",
            store,
            setup.survey_file or "none",
            setup.calibration_file or "none",
        )
        return True


def _stamp(files: Localization) -> Stamp:
    """What identifies a version of the files: path, modification time, size."""
    out: list[tuple[str, int, int] | None] = []
    for name in (files.survey, files.calibration):
        if name is None:
            out.append(None)
            continue
        try:
            info = os.stat(Path(name))
        except OSError:
            out.append((name, -1, -1))
            continue
        out.append((name, info.st_mtime_ns, info.st_size))
    return tuple(out)
