"""A running store's localizer follows its newest floor and radio without a
restart: a layout saved in the dashboard, or a survey or calibration file
rewritten (``omnizone calibrate --out``, the gateways' self-calibration).

The windows the old localizer still holds are decided first; then the new one
takes over. Visits carry on (ingest keeps them, not the localizer); the new
filter finds each shopper again within a few windows. A file that no longer
reads keeps the running localizer and is reported (``status``: the server's
``/health``, ``/metrics`` and ``GET /api/v1/localizer``), never a crash.
``RadioWatch`` is the runtime's thread that looks at the files every
``radio_check_interval_s``.
"""

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from omnizone.server.domain.localize.survey import SurveyError
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import Locator
from omnizone.server.service.radio_setup import NO_SETUP, RadioSetup, radio_setup
from omnizone.store import Localization, StoreConfigError, StorePlan
from omnizone.store.calibration import StoreCalibration

log = logging.getLogger(__name__)

MakeLocator = Callable[[StorePlan, RadioSetup], Locator]
Stamp = tuple[tuple[str, int, int] | None, ...]


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    reloads: int  # localizers rebuilt since start (new files or a saved layout)
    failures: int  # times new files or a layout's radio could not be applied
    errors: Mapping[str, str]  # store -> why its newest files are not applied
    files: Mapping[str, Localization]  # store -> the survey and calibration it watches


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
        self._failures = 0
        # store -> a calibration fitted while running (the gateways hearing one
        # another), used instead of the file's until replaced
        self._fitted: dict[str, StoreCalibration] = {}
        # A layout saved (an HTTP thread) and a file check (the watch thread)
        # must not interleave: the later could put back the earlier's plan.
        self._lock = threading.Lock()

    @property
    def status(self) -> ReloadStatus:
        with self._lock:
            return ReloadStatus(
                self._reloads, self._failures, dict(self._errors), dict(self._files)
            )

    def problems(self, store: str, plan: StorePlan) -> list[str]:
        """Why the store's survey or calibration would not fit ``plan`` (a
        layout about to be saved: it would not start either); none if they fit."""
        try:
            radio_setup(self._radio_plan(store, plan))
        except (SurveyError, StoreConfigError) as error:
            return [f"localization: {error}"]
        return []

    def layout_saved(self, store: str, plan: StorePlan) -> bool:
        """A layout saved in the dashboard: localize on it from the next
        window. The plan always applies; if the radio files no longer fit it
        (they changed since ``problems`` was asked), the localizer runs on the
        plan's path-loss model alone and the error is reported. False then."""
        with self._lock:
            try:
                setup = self._setup(store, plan)
            except (SurveyError, StoreConfigError) as error:
                self._switch(store, plan, NO_SETUP)
                self._fail(store, plan, error, "the new layout runs on the model's defaults")
                return False
            self._switch(store, plan, setup)
            return True

    def use_calibration(self, store: str, calibration: StoreCalibration) -> None:
        """A calibration fitted while running (self-calibration): the store's
        localizer uses it from the next window, and keeps it across a saved
        layout or a rewritten survey. Whether it may override a calibration
        file is the caller's rule (``localization.self_calibration``)."""
        with self._lock:
            self._fitted[store] = calibration
            plan = self._plans[store]
            try:
                setup = self._setup(store, plan)
            except (SurveyError, StoreConfigError) as error:
                self._fail(store, plan, error, "the running localizer kept")
                return
            self._switch(store, plan, setup)

    def on_plan(self, plan: StorePlan) -> None:
        """``RunningStores`` listener: a new plan for ``plan``'s store."""
        self.layout_saved(plan.id, plan)

    def check_files(self) -> list[str]:
        """Reload every store whose survey or calibration file changed; the
        stores reloaded. Called periodically by the runtime (``RadioWatch``).
        A file that does not read keeps the running localizer."""
        changed = []
        with self._lock:
            for store, files in self._files.items():
                stamp = _stamp(files)
                if stamp == self._stamps.get(store):
                    continue
                self._stamps[store] = stamp
                plan = self._plans[store]
                try:
                    setup = self._setup(store, plan)
                except (SurveyError, StoreConfigError) as error:
                    self._fail(store, plan, error, "the running localizer kept")
                    continue
                self._switch(store, plan, setup)
                changed.append(store)
        return changed

    def _radio_plan(self, store: str, plan: StorePlan) -> StorePlan:
        return plan.model_copy(update={"localization": self._files.get(store, plan.localization)})

    def _setup(self, store: str, plan: StorePlan) -> RadioSetup:
        """The store's files as they are now, read against ``plan``, with a
        calibration fitted while running in place of the file's."""
        setup = radio_setup(self._radio_plan(store, plan))
        fitted = self._fitted.get(store)
        return setup if fitted is None else dataclasses.replace(setup, calibration=fitted)

    def _switch(self, store: str, plan: StorePlan, setup: RadioSetup) -> None:
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

    def _fail(self, store: str, plan: StorePlan, error: Exception, instead: str) -> None:
        named = _named(self._files.get(store, plan.localization))
        self._errors[store] = f"{named} not applied, {instead}: {error}"
        self._failures += 1
        log.warning("store %s: %s", store, self._errors[store])


class RadioWatch:
    """Calls ``check`` every ``interval_s`` on its own thread until ``stop``."""

    def __init__(self, check: Callable[[], object], interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive (0 means: do not watch)")
        self._check = check
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(self._interval_s):
                try:
                    self._check()
                except Exception:  # a reload must never end the watch
                    log.exception("checking the radio files failed")

        self._thread = threading.Thread(target=run, name="radio-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None


def _named(files: Localization) -> str:
    """``survey S and calibration C``: the files of one store, for a message."""
    names = [
        f"{what} {name}"
        for what, name in (("survey", files.survey), ("calibration", files.calibration))
        if name is not None
    ]
    return " and ".join(names) or "the store file's radio"


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
