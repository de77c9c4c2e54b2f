"""The one way a shopper's app authenticates: ``Authorization: Bearer <token>``
(the token ``POST /api/v1/shoppers`` returned). Every part's router uses it."""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ShopperToken",
    description="the token POST /api/v1/shoppers returned",
)


def shopper_dependency(authenticate: Callable[[str], str | None]) -> Callable[..., str]:
    """A FastAPI dependency giving the shopper id, or 401 saying what is wrong."""

    def current_shopper(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> str:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing shopper token: send Authorization: Bearer <token> "
                "(the token POST /api/v1/shoppers returned)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        shopper_id = authenticate(credentials.credentials)
        if shopper_id is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown shopper token (never issued, or the shopper was erased)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return shopper_id

    return current_shopper
