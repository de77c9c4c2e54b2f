"""What every route of the HTTP API shares: where it lives and how it fails.

One home each, so a new part's router cannot drift from the others: the
version prefix every route but ``/health``, ``/metrics`` and the static files
sits under, and the body of an error answer (FastAPI's ``HTTPException``),
including a validation error's, whose echo of the input is capped.
"""

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

API_PREFIX = "/api/v1"


class ErrorOut(BaseModel):
    """An error answer: ``{"detail": "what went wrong"}``."""

    detail: str


#: How much of the offending input a 422 answer echoes back (characters).
MAX_ECHOED_CHARS = 200
#: At most this many problems are listed in one 422 answer.
MAX_ECHOED_ERRORS = 50


def _capped(value: Any, limit: int = MAX_ECHOED_CHARS) -> Any:
    """``value`` itself when small, else the start of its JSON text and its size."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(jsonable_encoder(value), default=str)
    if len(text) <= limit:
        return value
    return f"{text[:limit]}… ({len(text)} characters)"


def capped_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's validation errors with what they echo of the input cut short,
    so a 422 never sends back a huge body (or a huge field name)."""
    out: list[dict[str, Any]] = []
    for error in list(errors)[:MAX_ECHOED_ERRORS]:
        item = dict(error)
        item["loc"] = [_capped(part) for part in item.get("loc", ())]
        if "msg" in item:
            item["msg"] = _capped(str(item["msg"]), 1000)
        if "input" in item:
            item["input"] = _capped(item["input"])
        if "ctx" in item:
            item["ctx"] = {k: _capped(v) for k, v in dict(item["ctx"]).items()}
        out.append(item)
    if len(errors) > MAX_ECHOED_ERRORS:
        out.append(
            {
                "loc": [],
                "msg": f"{len(errors) - MAX_ECHOED_ERRORS} more problem(s) not listed",
                "type": "too_many_errors",
            }
        )
    return out


async def validation_error(_request: Request, error: Exception) -> JSONResponse:
    """The 422 answer for a request that fails validation (input echoes capped)."""
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": jsonable_encoder(capped_errors(error.errors()))}, 422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
