"""HTTP routes of shopper identity, consent, profile, export/erase and the
associate QR hand-off (see docs/identity.md).

Shopper routes (``/me/...``) take the shopper's own token as
``Authorization: Bearer <token>``; the associate route takes a staff API key
with the ``associate`` scope; the profile webhook is authenticated by its
HMAC signature; ``POST /shoppers`` is open (it is how an app gets a token).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from omnizone.server.domain.identity import (
    SIGNATURE_HEADER,
    Channel,
    Consent,
    ProfileEvent,
    ProfileEventType,
    Purpose,
    QrTokenError,
    QrTokenExpired,
)
from omnizone.server.entrypoints.http import API_PREFIX, ErrorOut
from omnizone.server.entrypoints.shopper_auth import shopper_dependency
from omnizone.server.service.shoppers import (
    InvalidInput,
    LoyaltyId,
    NoConsent,
    ProfileEventIn,
    ShopperNotFound,
    ShopperService,
    UnknownStore,
    WebhookIn,
    WebhookNotConfigured,
    WebhookRejected,
)

# -- models ----------------------------------------------------------------------------


class RegisterIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"store": "paris-rivoli"}]}
    )

    store: str = Field(min_length=1, max_length=63, description="the store the app is used in")


class RegistrationOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "shopper_id": "3f2a0c9e8b1d4e6fa7c5b2d1e0f9a8b7",
                    "token": "3f2a0c9e8b1d4e6fa7c5b2d1e0f9a8b7.Jx3…",
                    "eid_key": "8d6f0e2b4a1c3e5f7091a2b3c4d5e6f7",
                    "eid_rotation_s": 512,
                    "eid_rotation_exponent": 9,
                    "eid_clock_offset_s": 2894361307,
                }
            ]
        }
    )

    shopper_id: str
    token: str = Field(description="bearer token; shown once, keep it on the phone")
    eid_key: str = Field(description="identity key of the rotating ephemeral id, 32 hex")
    eid_rotation_s: int = Field(description="the ephemeral id changes every this many seconds")
    eid_rotation_exponent: int = Field(
        description="Eddystone-EID rotation exponent K: eid_rotation_s is 2**K"
    )
    eid_clock_offset_s: int = Field(
        description="the phone's beacon time is (unix seconds + this) mod 2**32"
    )


class ConsentOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"location_analytics": True, "personalized_offers": False}]}
    )

    location_analytics: bool = Field(description="store where the phone was in the store")
    personalized_offers: bool = Field(
        description="use zone and profile to send offers; let associates see the profile"
    )


class ConsentIn(BaseModel):
    """Purposes left out keep their current value."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"location_analytics": True, "personalized_offers": True}]},
    )

    location_analytics: bool | None = None
    personalized_offers: bool | None = None


class ProfileEventOut(BaseModel):
    type: ProfileEventType
    gtin: str
    channel: Channel
    at_ms: int
    amount: float | None


class LoyaltyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"loyalty_id": "FR-0042-7781"}]}
    )

    loyalty_id: LoyaltyId


class LoyaltyOut(BaseModel):
    loyalty_id: str


class WebhookOut(BaseModel):
    events: int = Field(description="events stored per shopper")
    shoppers: int = Field(description="shoppers they were stored for")


class QrOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "qr_token": "3f2a0c9e8b1d4e6fa7c5b2d1e0f9a8b7.1767225900000.q2V…",
                    "expires_ms": 1767225900000,
                }
            ]
        }
    )

    qr_token: str = Field(description="show as a QR code; an associate scans it")
    expires_ms: int


class ProductViewOut(BaseModel):
    gtin: str
    at_ms: int
    channel: Channel


class PurchaseOut(BaseModel):
    gtin: str
    at_ms: int
    channel: Channel
    amount: float | None


class AssociateContextOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "shopper_id": "3f2a0c9e8b1d4e6fa7c5b2d1e0f9a8b7",
                    "store": "paris-rivoli",
                    "loyalty_id": "FR-0042-7781",
                    "cart": ["09506000134352"],
                    "wishlist": [],
                    "recent_views": [
                        {"gtin": "09506000134352", "at_ms": 1767225600000, "channel": "online"}
                    ],
                    "purchases": [],
                }
            ]
        }
    )

    shopper_id: str
    store: str
    loyalty_id: str | None
    cart: list[str] = Field(description="GTINs in the cart now, most recently added first")
    wishlist: list[str] = Field(description="GTINs on the wishlist now, most recent first")
    recent_views: list[ProductViewOut]
    purchases: list[PurchaseOut]


def _consent_out(consent: Consent) -> ConsentOut:
    return ConsentOut(
        location_analytics=consent.location_analytics,
        personalized_offers=consent.personalized_offers,
    )


def _event_out(e: ProfileEvent) -> ProfileEventOut:
    return ProfileEventOut(
        type=e.type, gtin=e.gtin, channel=e.channel, at_ms=e.at_ms, amount=e.amount
    )


# -- errors ----------------------------------------------------------------------------


def _field_error(loc: list[str | int], msg: str) -> HTTPException:
    """A 422 shaped like FastAPI's own, so clients read one format."""
    return HTTPException(
        422,
        [{"loc": loc, "msg": msg, "type": "value_error"}],
    )


@contextmanager
def _refusals() -> Iterator[None]:
    """Service refusals become HTTP answers that say what is wrong."""
    try:
        yield
    except ShopperNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except NoConsent as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from None
    except WebhookNotConfigured as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
    except WebhookRejected as error:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(error)) from None
    except InvalidInput as error:
        raise HTTPException(
            422,
            [
                {"loc": ["body", *e.loc], "msg": f"{e.where}: {e.msg}", "type": "value_error"}
                for e in error.errors
            ],
        ) from None
    except QrTokenExpired as error:
        raise HTTPException(status.HTTP_410_GONE, str(error)) from None
    except QrTokenError as error:
        raise _field_error(["query", "qr_token"], str(error)) from None


# -- the router ------------------------------------------------------------------------


def _webhook_body_schema() -> dict[str, Any]:
    schema = WebhookIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # ProfileEventIn is a component already
    return schema


def shopper_router(
    service: ShopperService,
    require_scope: Callable[[str], Any],
    *,
    prefix: str = API_PREFIX,
) -> APIRouter:
    """The shopper routes over ``service``; ``require_scope`` is api.py's authorizer."""
    router = APIRouter(prefix=prefix, tags=["shoppers"])
    errors: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}}

    current_shopper = shopper_dependency(service.authenticate)

    Me = Annotated[str, Depends(current_shopper)]

    @router.post(
        "/shoppers",
        status_code=status.HTTP_201_CREATED,
        response_model=RegistrationOut,
    )
    def register(body: RegisterIn) -> RegistrationOut:
        """Register an app install: its token and the key of its rotating BLE id."""
        try:
            registration = service.register(body.store)
        except UnknownStore as error:
            raise _field_error(["body", "store"], str(error)) from None
        return RegistrationOut(
            shopper_id=registration.shopper_id,
            token=registration.token,
            eid_key=registration.eid_key.hex(),
            eid_rotation_s=registration.rotation_s,
            eid_rotation_exponent=registration.eid.exponent,
            eid_clock_offset_s=registration.eid.clock_offset_s,
        )

    @router.get("/me/consent", response_model=ConsentOut, responses=errors)
    def get_consent(me: Me) -> ConsentOut:
        return _consent_out(service.consent(me) or Consent())

    @router.put("/me/consent", response_model=ConsentOut, responses=errors)
    def put_consent(me: Me, body: ConsentIn) -> ConsentOut:
        """Give or withdraw consent per purpose; every change is kept in the history."""
        changes = {
            Purpose(name): value for name, value in body.model_dump(exclude_none=True).items()
        }
        with _refusals():
            return _consent_out(service.set_consent(me, changes))

    @router.get("/me/export", responses=errors)
    def export(me: Me) -> JSONResponse:
        """Everything stored about the shopper (GDPR art. 15/20)."""
        with _refusals():
            return JSONResponse(jsonable_encoder(service.export(me)))

    @router.delete(
        "/me", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=errors
    )
    def erase(me: Me) -> Response:
        """Erase the shopper and everything about them; the token stops working."""
        with _refusals():
            service.erase(me)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/me/profile-events",
        status_code=status.HTTP_201_CREATED,
        response_model=ProfileEventOut,
        responses=errors,
    )
    def add_profile_event(me: Me, body: ProfileEventIn) -> ProfileEventOut:
        with _refusals():
            (stored,) = service.add_profile_events(me, [body])
        return _event_out(stored)

    @router.post("/me/loyalty", response_model=LoyaltyOut, responses=errors)
    def link_loyalty(me: Me, body: LoyaltyIn) -> LoyaltyOut:
        """Link a loyalty card so web shop and till events reach this profile."""
        with _refusals():
            service.link_loyalty(me, body.loyalty_id)
        return LoyaltyOut(loyalty_id=body.loyalty_id)

    @router.post(
        "/webhooks/profile",
        response_model=WebhookOut,
        responses={
            401: {"model": ErrorOut, "description": "missing or wrong signature"},
            404: {"model": ErrorOut, "description": "unknown loyalty id or shopper"},
            503: {"model": ErrorOut, "description": "no webhook secret configured"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _webhook_body_schema()}},
            }
        },
    )
    async def webhook(
        request: Request,
        signature: Annotated[
            str | None,
            Header(
                alias=SIGNATURE_HEADER,
                description="sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>",
            ),
        ] = None,
    ) -> WebhookOut:
        """Cart, wishlist, view and purchase events from the web shop or the POS."""
        body = await request.body()
        with _refusals():
            result = await run_in_threadpool(service.receive_webhook, body, signature)
        return WebhookOut(events=result.events, shoppers=len(result.shopper_ids))

    @router.get("/me/qr", response_model=QrOut, responses=errors)
    def qr(me: Me) -> QrOut:
        """A short-lived token for the QR code an associate scans."""
        with _refusals():
            token = service.issue_qr_token(me)
        return QrOut(qr_token=token.token, expires_ms=token.expires_ms)

    @router.get(
        "/associate/context",
        response_model=AssociateContextOut,
        dependencies=[Depends(require_scope("associate"))],
        responses={
            **errors,
            403: {"model": ErrorOut, "description": "no consent, or the key lacks the scope"},
            410: {"model": ErrorOut, "description": "the QR token expired"},
        },
        tags=["associates"],
    )
    def associate_context(
        qr_token: Annotated[
            str, Query(min_length=1, max_length=256, description="from the shopper's QR code")
        ],
    ) -> AssociateContextOut:
        """The scanned shopper's cart, wishlist, views and purchases, with their consent."""
        with _refusals():
            context = service.associate_context(qr_token)
        p = context.profile
        return AssociateContextOut(
            shopper_id=context.shopper_id,
            store=context.store,
            loyalty_id=context.loyalty_id,
            cart=list(p.cart),
            wishlist=list(p.wishlist),
            recent_views=[
                ProductViewOut(gtin=v.gtin, at_ms=v.at_ms, channel=v.channel)
                for v in p.recent_views
            ],
            purchases=[
                PurchaseOut(gtin=e.gtin, at_ms=e.at_ms, channel=e.channel, amount=e.amount)
                for e in p.purchases
            ],
        )

    return router
