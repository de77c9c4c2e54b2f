"""HTTP routes of the guided survey (``service/surveys.py``, docs/localization.md).

Staff routes (``/stores/{store}/surveys…``) take an API key with the
``survey`` (or ``admin``) scope. The surveying phone pairs with
``POST /surveys/pair`` and its shopper token (it is a registered phone, so
ingest resolves its rotating ids), then follows its survey with the survey
token the pairing returned, as ``X-Survey-Token``.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from omnizone.server.entrypoints.http import API_PREFIX, ErrorOut
from omnizone.server.entrypoints.shopper_auth import shopper_dependency
from omnizone.server.service.surveys import (
    SurveyConflict,
    SurveyInvalid,
    SurveyNotFound,
    SurveyNotWritten,
    SurveyService,
)


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zone: str | None = Field(
        max_length=63, description="the zone being walked from now on; null pauses"
    )


class PairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=4, max_length=16, description="the code the dashboard shows")


class RuleOut(BaseModel):
    min_windows: int
    min_anchors: int


class SurveyZoneOut(BaseModel):
    zone: str
    name: str
    windows: int = Field(description="samples (1 s windows) collected in the zone")
    anchors: int = Field(description="distinct gateways with at least one reading")
    anchors_heard: list[str]
    enough: bool = Field(description="windows >= rule.min_windows and anchors >= rule.min_anchors")


class SurveyOut(BaseModel):
    id: str
    store: str
    state: str = Field(description="waiting_for_phone, paired, finished or cancelled")
    code: str | None = Field(description="the pairing code, until a phone pairs")
    pair_path: str | None = Field(
        description="the shopper app's survey mode with the code: what a QR code should hold"
    )
    code_expires_ms: int
    paired: bool
    zone: str | None = Field(description="the zone being walked; null: paused")
    rule: RuleOut
    windows: int
    max_windows: int
    full: bool
    late_readings: int = Field(description="readings for a window already closed, not merged")
    settling_windows: int = Field(description="walk-in windows left out after each pick")
    over_limit_windows: int
    zones: list[SurveyZoneOut]
    report: dict[str, Any] | None = Field(description="the calibration report, once finished")


class PairOut(SurveyOut):
    token: str = Field(description="the survey token: send it as X-Survey-Token")


def _refused(error: Exception) -> HTTPException:
    if isinstance(error, SurveyNotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(error.args[0]))
    if isinstance(error, SurveyConflict):
        return HTTPException(status.HTTP_409_CONFLICT, str(error))
    return HTTPException(422, str(error))


_REFUSALS = (SurveyNotFound, SurveyConflict, SurveyInvalid)
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
    500: {"model": ErrorOut, "description": "finish: a file could not be written (named)"},
}


def survey_router(
    surveys: SurveyService,
    authenticate: Callable[[str], str | None],
    require: Callable[[str], Callable[..., None]],
) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["survey"])
    staff = [Depends(require("survey"))]
    shopper = shopper_dependency(authenticate)

    def survey_of(
        token: Annotated[str | None, Header(alias="X-Survey-Token")] = None,
    ) -> tuple[str, str]:
        found = surveys.by_token(token) if token else None
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or unknown survey token: send X-Survey-Token (POST /surveys/pair)",
            )
        return found

    Surveying = Annotated[tuple[str, str], Depends(survey_of)]

    @router.post(
        "/stores/{store}/surveys",
        status_code=status.HTTP_201_CREATED,
        response_model=SurveyOut,
        dependencies=staff,
        responses=_ERRORS,
    )
    def start(store: str) -> dict[str, Any]:
        """Open a survey; the answer's ``code`` pairs the surveying phone."""
        try:
            return surveys.start(store)
        except _REFUSALS as error:
            raise _refused(error) from None

    @router.get(
        "/stores/{store}/surveys/{survey}",
        response_model=SurveyOut,
        dependencies=staff,
        responses=_ERRORS,
    )
    def progress(store: str, survey: str) -> dict[str, Any]:
        """Per zone: windows collected, anchors heard, enough or not."""
        try:
            return surveys.status(store, survey)
        except _REFUSALS as error:
            raise _refused(error) from None

    @router.post(
        "/stores/{store}/surveys/{survey}/zone",
        response_model=SurveyOut,
        dependencies=staff,
        responses=_ERRORS,
    )
    def pick(store: str, survey: str, body: ZoneIn) -> dict[str, Any]:
        try:
            return surveys.pick_zone(store, survey, body.zone)
        except _REFUSALS as error:
            raise _refused(error) from None

    @router.post("/stores/{store}/surveys/{survey}/finish", dependencies=staff, responses=_ERRORS)
    async def finish(store: str, survey: str) -> dict[str, Any]:
        """Write the survey CSV and the calibration YAML; the calibration report."""
        try:
            return await run_in_threadpool(surveys.finish, store, survey)
        except _REFUSALS as error:
            raise _refused(error) from None
        except SurveyNotWritten as error:
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(error)) from None

    @router.post(
        "/stores/{store}/surveys/{survey}/cancel",
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=staff,
        responses=_ERRORS,
    )
    def cancel(store: str, survey: str) -> Response:
        try:
            surveys.cancel(store, survey)
        except _REFUSALS as error:
            raise _refused(error) from None
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/surveys/pair", response_model=PairOut, responses=_ERRORS)
    def pair(body: PairIn, me: Annotated[str, Depends(shopper)]) -> dict[str, Any]:
        """The surveying phone (shopper token) pairs with the dashboard's code."""
        try:
            return surveys.pair(body.code, me)
        except _REFUSALS as error:
            raise _refused(error) from None

    @router.get("/surveys/current", response_model=SurveyOut, responses=_ERRORS)
    def current(found: Surveying) -> dict[str, Any]:
        """The paired phone's view: which zone to walk, and the progress."""
        try:
            return surveys.status(*found)
        except _REFUSALS as error:
            raise _refused(error) from None

    @router.post("/surveys/current/zone", response_model=SurveyOut, responses=_ERRORS)
    def pick_from_phone(found: Surveying, body: ZoneIn) -> dict[str, Any]:
        """The walker picks the next zone (as staff can in the dashboard)."""
        try:
            return surveys.pick_zone(*found, body.zone)
        except _REFUSALS as error:
            raise _refused(error) from None

    return router
