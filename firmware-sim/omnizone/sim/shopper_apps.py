"""What the simulated shoppers do after the radio: their app reads its offer
inbox and posts receipts (``delivered``, then ``opened`` or ``dismissed``),
and a shopper who reaches the till pays: the till redeems an offer's code
(``POST /stores/{store}/redemptions``, scope ``pos``) and sends the purchase
through the profile webhook, as a real POS does (docs/identity.md).

Everything goes through the public API, on a worker thread of its own, so the
simulation's pace never waits for HTTP. The choices (open, redeem, what to
buy) are seeded per shopper and offer, so a run's outcome does not depend on
the worker's timing. The campaign effect is a parameter of the simulation
(``redeem_probability``): lift measured on a demo shows the server's
arithmetic, not a finding about shoppers.
"""

import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from omnizone.store import StorePlan, ZoneKind, geometry

if TYPE_CHECKING:
    from omnizone.sim.engine import Simulation

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Omnizone-Signature"  # the profile webhook's (docs/identity.md)


@dataclass(frozen=True, slots=True)
class Product:
    gtin: str
    price: float


@dataclass
class AppCounters:
    """What the apps and the till did; ``errors`` counts refused or failed calls."""

    inbox_reads: int = 0
    delivered: int = 0
    opened: int = 0
    dismissed: int = 0
    checkouts: int = 0
    purchases: int = 0
    redeemed: int = 0
    redemptions_refused: int = 0
    errors: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "app_inbox_reads": self.inbox_reads,
            "receipts_delivered": self.delivered,
            "receipts_opened": self.opened,
            "receipts_dismissed": self.dismissed,
            "checkouts": self.checkouts,
            "purchases_sent": self.purchases,
            "redemptions": self.redeemed,
            "redemptions_refused": self.redemptions_refused,
            "app_errors": self.errors,
        }


@dataclass
class _Held:
    """An offer a shopper's app holds."""

    code: str
    gtin: str | None
    expires_ms: int
    opened: bool


@dataclass
class _Phone:
    shopper_id: str
    token: str
    after: int = 0
    paid: bool = False
    next_read_ms: int = 0
    held: dict[str, _Held] = field(default_factory=dict)


def sign(secret: bytes, body: bytes) -> str:
    """The profile webhook's signature header value: sha256=<hex HMAC-SHA256>."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class ShopperApps:
    """The apps and the till of one simulated store, over the public API.

    ``observe`` is a simulation observer (called each tick): it only notes
    what is due (an inbox read every ``read_every_s`` simulated seconds, a
    checkout when a shopper stands in a checkout zone) for the worker thread."""

    def __init__(
        self,
        api_url: str,
        store: StorePlan,
        products: Sequence[Product],
        *,
        pos_key: str,
        webhook_secret: str,
        seed: int,
        read_every_s: float = 20.0,
        open_probability: float = 0.7,
        redeem_probability: float = 0.6,
        timeout_s: float = 5.0,
    ) -> None:
        self._store = store
        self._products = list(products)
        self._secret = webhook_secret.encode()
        self._seed = seed
        self._read_every_ms = round(read_every_s * 1000)
        self._open_p = open_probability
        self._redeem_p = redeem_probability
        self._checkouts = [z for z in store.zones if z.kind is ZoneKind.CHECKOUT]
        self._client = httpx.Client(base_url=api_url, timeout=timeout_s)
        self._pos_headers = {"X-API-Key": pos_key}
        self._phones: dict[str, _Phone] = {}
        self._pending: set[tuple[str, str]] = set()
        self._work: queue.Queue[tuple[str, str, int] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.counters = AppCounters()

    # -- the simulation's side ----------------------------------------------------------

    def observe(self, sim: "Simulation") -> None:
        now = sim.clock.now_ms
        for shopper in sim.shoppers:
            app = shopper.app
            if app is None or app.token is None:
                continue
            phone = self._phones.get(app.shopper_id)
            if phone is None:
                phone = _Phone(app.shopper_id, app.token, next_read_ms=now)
                self._phones[app.shopper_id] = phone
            if now >= phone.next_read_ms:
                phone.next_read_ms = now + self._read_every_ms
                self._submit("read", phone.shopper_id, now)
            if not phone.paid and any(
                geometry.contains(z.polygon, shopper.position) for z in self._checkouts
            ):
                phone.paid = True
                self._submit("checkout", phone.shopper_id, now)

    def _submit(self, kind: str, shopper_id: str, at_ms: int) -> None:
        with self._lock:
            if (kind, shopper_id) in self._pending:
                return  # one of each waiting per shopper: a slow server is not flooded
            self._pending.add((kind, shopper_id))
        self._work.put((kind, shopper_id, at_ms))

    # -- the worker ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shopper-apps", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = 10.0) -> None:
        """Finish what is queued (at most ``drain_s``), then stop."""
        if self._thread is None:
            return
        end = time.monotonic() + drain_s
        while not self._work.empty() and time.monotonic() < end:
            time.sleep(0.05)
        self._work.put(None)
        self._thread.join(timeout=max(0.1, end - time.monotonic()) + 5)
        self._thread = None
        self._client.close()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            kind, shopper_id, at_ms = item
            with self._lock:
                self._pending.discard((kind, shopper_id))
            phone = self._phones[shopper_id]
            try:
                self._read_inbox(phone)
                if kind == "checkout":
                    self._pay(phone, at_ms)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
                # a server that is down or answers oddly: counted, and the worker goes on
                self.counters.errors += 1
                log.warning("shopper app %s: %s", shopper_id[:8], error)

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(str(p) for p in (self._seed, "shopper-apps", *parts)))

    def _read_inbox(self, phone: _Phone) -> None:
        """The app's inbox: a receipt for each new offer, as the reference app sends."""
        bearer = {"Authorization": f"Bearer {phone.token}"}
        answer = self._client.get(
            "/api/v1/me/offers", params={"after": phone.after}, headers=bearer
        )
        self.counters.inbox_reads += 1
        if answer.status_code != 200:
            self.counters.errors += 1
            return
        for offer in answer.json():
            phone.after = max(phone.after, int(offer["seq"]))
            offer_id = str(offer["offer_id"])
            opened = self._rng(phone.shopper_id, offer_id, "open").random() < self._open_p
            status = "opened" if opened else "dismissed"
            done = self._client.post(
                f"/api/v1/me/offers/{offer_id}/receipts", json={"status": status}, headers=bearer
            )
            if done.status_code != 200:
                self.counters.errors += 1
                continue
            self.counters.delivered += 1
            if opened:
                self.counters.opened += 1
            else:
                self.counters.dismissed += 1
            phone.held[offer_id] = _Held(
                str(offer["coupon_code"]),
                offer.get("product_gtin"),
                int(offer["expires_ms"]),
                opened,
            )

    def _pay(self, phone: _Phone, at_ms: int) -> None:
        """At the till: redeem what the shopper chose to use, then the purchase."""
        self.counters.checkouts += 1
        bought: list[Product] = []
        by_gtin = {p.gtin: p for p in self._products}
        for offer_id, held in sorted(phone.held.items()):
            if not held.opened or held.expires_ms <= at_ms:
                continue
            if self._rng(phone.shopper_id, offer_id, "redeem").random() >= self._redeem_p:
                continue
            done = self._client.post(
                f"/api/v1/stores/{self._store.id}/redemptions",
                json={"code": held.code},
                headers=self._pos_headers,
            )
            if done.status_code == 201:
                self.counters.redeemed += 1
                if held.gtin in by_gtin:
                    bought.append(by_gtin[held.gtin])
            else:
                self.counters.redemptions_refused += 1
        if not bought and self._products:
            bought.append(self._rng(phone.shopper_id, "basket").choice(self._products))
        if bought:
            self._purchase(phone, bought, at_ms)

    def _purchase(self, phone: _Phone, products: list[Product], at_ms: int) -> None:
        events: list[dict[str, Any]] = [
            {
                "type": "purchase",
                "gtin": p.gtin,
                "channel": "pos",
                "at_ms": at_ms,
                "amount": p.price,
            }
            for p in products
        ]
        body = json.dumps({"shopper_id": phone.shopper_id, "events": events}).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}
        for _attempt in range(5):
            done = self._client.post("/api/v1/webhooks/profile", content=body, headers=headers)
            if done.status_code != 429:
                break
            time.sleep(float(done.headers.get("retry-after", "1") or 1))
        if done.status_code == 200:
            self.counters.purchases += len(products)
        else:
            self.counters.errors += 1
            log.warning("till: purchase refused (%s): %s", done.status_code, done.text[:200])
