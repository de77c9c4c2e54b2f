"""A store's offers stack with follow-ups after the visit, over one database
(SQLite file or PostgreSQL schema): the engine, delivery, the follow-up
service and a real signed-webhook receiver on a local port."""

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from omnizone.paths import shipped_config
from omnizone.server.adapters.campaign_db import CampaignRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.follow_up_db import FollowUpRepository
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.adapters.signed_webhook import SignedWebhook
from omnizone.server.domain.identity import Purpose
from omnizone.server.domain.offers import load_catalog
from omnizone.server.service.campaign_report import CampaignFigures, campaign_report
from omnizone.server.service.campaigns import CampaignAdmin
from omnizone.server.service.delivery import OfferDelivery
from omnizone.server.service.endpoints import EndpointGuard
from omnizone.server.service.follow_ups import FollowUpService
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.offer_engine import OfferEngine
from omnizone.server.service.shoppers import ProfileEventIn, ShopperService
from omnizone.store import StorePlan

STORE = "paris-rivoli"
SECRET = b"follow-up-webhook-secret"


class Receiver:
    """A CRM's webhook endpoint: keeps each signed body it accepts."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refuse = 0  # answer 503 to this many requests first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(self.headers.get("X-Omnizone-Signature", ""), expected)
                if receiver.refuse > 0:
                    receiver.refuse -= 1
                    ok = False
                if ok:
                    receiver.bodies.append(json.loads(body))
                self.send_response(204 if ok else 503)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/crm/follow-ups"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Stack:
    def __init__(self, plan: StorePlan, url: str, receiver: Receiver, clock: list[int]) -> None:
        self.plan = plan
        self.clock = clock
        self.db = SqlRepository.from_url(url)
        engine = self.db.engine
        self.shoppers = ShopperService([STORE], ShopperRepository(engine))
        self.offers = OfferRepository(engine)
        self.delivery = OfferDelivery(self.offers, clock=lambda: clock[0])
        self.decisions = CampaignRepository(engine)
        self.catalog = load_catalog(shipped_config("catalog/rivoli.yaml"), [plan])
        self.campaigns = CampaignAdmin({STORE: plan}, self.decisions, self.catalog)
        self.storage = FollowUpRepository(engine)
        self.hook = SignedWebhook(
            receiver.url,
            SECRET,
            guard=EndpointGuard(["127.0.0.1/32"]),
            first_wait_s=0.0,
            attempts=1,
        )
        self.follow_ups = FollowUpService(
            {STORE: plan},
            self.campaigns.campaigns,
            self.storage,
            self.decisions,
            self.catalog,
            self.shoppers,
            self.offers,
            self.delivery.publish,
            webhook=lambda payload: self.hook.send(payload).delivered,
            clock=lambda: clock[0],
        )
        self.engine = OfferEngine(
            {STORE: plan},
            self.campaigns,
            self.decisions,
            self.catalog,
            self.shoppers,
            self.delivery.publish_many,
            clock=lambda: clock[0],
            on_visits=self.follow_ups.observe,
        )

    def shopper(self, *, offers: bool = True, location: bool = True) -> str:
        shopper = self.shoppers.register(STORE).shopper_id
        self.shoppers.set_consent(
            shopper, {Purpose.PERSONALIZED_OFFERS: offers, Purpose.LOCATION_ANALYTICS: location}
        )
        return shopper

    def place(self, shopper: str, zone: str | None, at_ms: int) -> None:
        self.engine.on_placement(STORE, ZonePlacement(shopper, zone, at_ms, at_ms))

    def try_on(self, gtin: str, at_ms: int, reader: str = "rfid-fitting-1") -> None:
        self.engine.on_try_on(STORE, reader, gtin, at_ms)

    def buy(self, shopper: str, gtin: str, at_ms: int, channel: str, amount: float = 89.0) -> None:
        event = ProfileEventIn.model_validate(
            {"type": "purchase", "gtin": gtin, "channel": channel, "at_ms": at_ms, "amount": amount}
        )
        self.shoppers.add_profile_events(shopper, [event])

    def report(self, **kw: Any) -> dict[str, CampaignFigures]:
        figures = campaign_report(
            self.campaigns.campaigns(STORE),
            self.decisions,
            self.offers.campaign_counts,
            self.shoppers,
            follow_ups=self.storage.of_campaign,
            clock_ms=lambda: self.clock[0],
            **kw,
        )
        return {f.campaign_id: f for f in figures}

    def close(self) -> None:
        self.engine.close()
        self.follow_ups.close()
        self.delivery.close()
        self.hook.close()
        self.db.close()


@contextmanager
def stack(plan: StorePlan, url: str, clock: list[int]) -> Iterator[tuple[Stack, Receiver]]:
    receiver = Receiver()
    built = Stack(plan, url, receiver, clock)
    try:
        yield built, receiver
    finally:
        built.close()
        receiver.close()
