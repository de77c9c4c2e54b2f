"""What every route of the HTTP API shares: where it lives and how it fails.

One home each, so a new part's router cannot drift from the others: the
version prefix every route but ``/health``, ``/metrics`` and the static files
sits under, and the body of an error answer (FastAPI's ``HTTPException``).
"""

from pydantic import BaseModel

API_PREFIX = "/api/v1"


class ErrorOut(BaseModel):
    """An error answer: ``{"detail": "what went wrong"}``."""

    detail: str
