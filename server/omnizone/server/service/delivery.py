"""Delivering offers to shoppers' phones: durable, ordered per shopper, resumable.

An offer is stored first, with the next per-shopper ``seq``, and only then
handed to the shopper's live WebSockets. A phone resumes with ``after=<seq>``
and acknowledges cumulatively, so an offer is neither lost nor shown twice
across reconnects. When no live connection acknowledges an offer within
``ack_timeout_s`` (or none is open) it goes out over the background channels
(Web Push, FCM, APNs).

Offers are published from the MQTT ingest thread while WebSockets live on
uvicorn's event loop: the hub crosses over with ``loop.call_soon_threadsafe``.
"""

import asyncio
import base64
import binascii
import heapq
import itertools
import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.offers import OfferDraft
from omnizone.server.domain.offers.coupons import normalize_code, till_code, unique_code
from omnizone.server.service.endpoints import EndpointGuard, EndpointRefused

log = logging.getLogger(__name__)

ReceiptStatus = Literal["delivered", "opened", "dismissed"]
RECEIPT_STATUSES: tuple[ReceiptStatus, ...] = ("delivered", "opened", "dismissed")
RefusalReason = Literal["unknown", "already_redeemed", "expired"]
NativePlatform = Literal["fcm", "apns"]

DEFAULT_ACK_TIMEOUT_S = 2.0
CATCH_UP_BATCH = 200
# Web Push services accept 4096 bytes of payload; the encryption adds 86.
PUSH_PAYLOAD_LIMIT = 3800


def _covered_by(acked: Mapping[str, int]) -> Callable[["DeliveredOffer"], bool]:
    """Offers an ack settles: their shopper's cumulative ack reached their seq."""
    return lambda offer: offer.seq <= acked.get(offer.shopper_id, 0)


def till_codes() -> Callable[[OfferDraft], str]:
    """The till codes of one write of offers: unique to each offer, starting
    with its campaign's code (``coupons.till_code``).

    A code the decision already made unique (a ``{code}`` template) is kept;
    a fixed code, or none, gets a unique part. Asked again for the same
    offer (the store found the code taken and retries the write), it makes
    another one, so a collision costs a retry instead of the write.
    """
    asked: Counter[int] = Counter()

    def code(draft: OfferDraft) -> str:
        again = asked[id(draft)]
        asked[id(draft)] += 1
        if draft.coupon_unique and draft.coupon_code and not again:
            return normalize_code(draft.coupon_code)
        return till_code(draft.coupon_code, unique_code(draft.campaign_id, secrets.token_hex(16)))

    return code


# -- records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewOffer:
    """One offer to store: for whom, what, and when its trigger was published."""

    shopper_id: str
    draft: OfferDraft
    trigger_published_ms: int | None = None


@dataclass(frozen=True)
class DeliveredOffer:
    offer_id: str
    shopper_id: str
    seq: int
    store: str
    campaign_id: str
    title: str
    body: str
    coupon_code: str
    expires_ms: int
    created_ms: int
    trigger: Mapping[str, Any]
    image: str | None = None
    product_gtin: str | None = None
    trigger_published_ms: int | None = None

    def wire(self) -> dict[str, Any]:
        """The offer as the phone sees it (no shopper id, no latency bookkeeping)."""
        out: dict[str, Any] = {
            "offer_id": self.offer_id,
            "seq": self.seq,
            "store": self.store,
            "campaign_id": self.campaign_id,
            "title": self.title,
            "body": self.body,
            "coupon_code": self.coupon_code,
            "expires_ms": self.expires_ms,
            "created_ms": self.created_ms,
            "trigger": dict(self.trigger),
        }
        if self.image is not None:
            out["image"] = self.image
        if self.product_gtin is not None:
            out["product_gtin"] = self.product_gtin
        return out


@dataclass(frozen=True)
class InboxOffer:
    """An offer with what the shopper did with it, for the app's inbox."""

    offer: DeliveredOffer
    receipts: Mapping[ReceiptStatus, int]  # status -> first at_ms
    redeemed_ms: int | None


@dataclass(frozen=True)
class Receipt:
    offer_id: str
    status: ReceiptStatus
    at_ms: int
    created: bool  # False when this status had already been recorded


@dataclass(frozen=True)
class Redemption:
    offer_id: str
    campaign_id: str
    store: str
    code: str
    redeemed_ms: int


@dataclass(frozen=True)
class PushSubscription:
    """A W3C PushSubscription: where to post and the keys to encrypt for."""

    endpoint: str
    p256dh: str  # base64url, 65-byte uncompressed P-256 point
    auth: str  # base64url, 16-byte secret


@dataclass(frozen=True)
class PushReceipt:
    """What one background channel did with one offer."""

    channel: str
    sent: int = 0
    failed: int = 0
    removed: int = 0  # subscriptions/tokens the push service said are gone
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionClosed:
    """Tells a live stream to end (shopper erased, server stopping)."""

    code: int
    reason: str


class OfferNotFound(LookupError):
    pass


class NoOfferConsent(PermissionError):
    pass


class InvalidPushSubscription(ValueError):
    pass


class RedemptionRefused(Exception):
    def __init__(self, reason: RefusalReason, message: str) -> None:
        self.reason = reason
        super().__init__(message)


# -- ports -------------------------------------------------------------------------


class OfferStore(Protocol):
    """Durable offers, acks, receipts and redemptions (``OfferRepository``)."""

    def add_offer(
        self,
        shopper_id: str,
        draft: OfferDraft,
        *,
        created_ms: int,
        trigger_published_ms: int | None,
        new_code: Callable[[], str],
    ) -> DeliveredOffer: ...

    def add_offers(
        self,
        offers: Sequence[NewOffer],
        *,
        created_ms: int,
        new_code: Callable[[OfferDraft], str],
    ) -> list[DeliveredOffer]: ...

    def offers_after(self, shopper_id: str, after: int, limit: int) -> list[DeliveredOffer]: ...

    def inbox(self, shopper_id: str, after: int, limit: int) -> list[InboxOffer]: ...

    def cursor(self, shopper_id: str) -> tuple[int, int]: ...  # (last seq, acked seq)

    def ack(self, shopper_id: str, seq: int, at_ms: int) -> int: ...

    def ack_many(self, acks: Mapping[str, int], at_ms: int) -> dict[str, int]: ...

    def is_delivered(self, offer_id: str) -> bool: ...

    def offer_exists(self, offer_id: str) -> bool: ...

    def add_receipt(
        self, shopper_id: str, offer_id: str, status: ReceiptStatus, at_ms: int
    ) -> Receipt: ...

    def redeem(self, store: str, code: str, at_ms: int) -> Redemption: ...

    def save_push_subscription(
        self, shopper_id: str, subscription: PushSubscription, at_ms: int
    ) -> None: ...

    def remove_push_subscription(self, endpoint: str, shopper_id: str | None = None) -> bool: ...

    def save_push_token(
        self, shopper_id: str, platform: NativePlatform, token: str, at_ms: int
    ) -> None: ...

    def erase_shopper(self, shopper_id: str) -> int: ...

    def export_shopper(self, shopper_id: str) -> dict[str, Any]: ...


class PushChannel(Protocol):
    """A background channel: finds the shopper's subscriptions/tokens and sends."""

    name: str

    def send(self, shopper_id: str, offer: DeliveredOffer) -> PushReceipt: ...


# -- pure decisions ----------------------------------------------------------------


def next_ack(current: int, requested: int, last_seq: int) -> int:
    """Acks are cumulative and never go backwards, nor past the last offer sent."""
    return max(current, min(requested, last_seq))


def resume_point(after: int | None, last_seq: int, acked_seq: int) -> int:
    """Where a (re)connecting phone's stream starts.

    Without ``after`` the server's own ack cursor is used. An ``after`` beyond
    the last offer (a phone out of step with the server) is clamped, so
    nothing later is skipped.
    """
    if after is None:
        return acked_seq
    return max(0, min(after, last_seq))


def place(last_sent: int, seq: int) -> Literal["skip", "send", "fill"]:
    """What a live stream does with an offer handed over by the hub.

    Publishers on different threads can hand offers over out of order; a gap
    is filled from storage (every lower seq is committed already), and offers
    already sent by that fill or the catch-up are skipped.
    """
    if seq <= last_sent:
        return "skip"
    return "send" if seq == last_sent + 1 else "fill"


def refusal(
    *, found: bool, redeemed_ms: int | None, expires_ms: int, now: int
) -> tuple[RefusalReason, str] | None:
    if not found:
        return "unknown", "no offer has this code"
    if redeemed_ms is not None:
        return "already_redeemed", f"this code was already redeemed at {redeemed_ms} (epoch ms)"
    if now > expires_ms:
        return "expired", f"this offer expired at {expires_ms} (epoch ms)"
    return None


def offer_message(offer: DeliveredOffer) -> dict[str, Any]:
    """The WebSocket message (and Web Push payload) for one offer."""
    return {"type": "offer", "seq": offer.seq, "offer": offer.wire()}


def push_payload(offer: DeliveredOffer, limit: int = PUSH_PAYLOAD_LIMIT) -> bytes:
    """The full offer when it fits a push message, else just enough to fetch it."""
    full = json.dumps(offer_message(offer), separators=(",", ":")).encode()
    if len(full) <= limit:
        return full
    short = {
        "type": "offer",
        "seq": offer.seq,
        "offer": {"offer_id": offer.offer_id, "seq": offer.seq, "title": offer.title[:200]},
        "truncated": True,
    }
    return json.dumps(short, separators=(",", ":")).encode()


def check_push_subscription(
    endpoint: str, p256dh: str, auth: str, *, allow_http: bool = False
) -> PushSubscription:
    """A subscription the server can post to; the error names the bad field.

    The endpoint must be https: the server posts to whatever URL a shopper
    hands in, so plain http (and with it most internal services) is refused
    unless ``allow_http`` (tests, a local push service).
    """
    parts = urlsplit(endpoint)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise InvalidPushSubscription(
            f"endpoint: expected an {' or '.join(schemes)} URL, got {endpoint[:200]!r}"
        )

    def decode(name: str, value: str) -> bytes:
        try:
            return base64.b64decode(value + "=" * (-len(value) % 4), b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidPushSubscription(f"keys.{name}: not base64url") from None

    key = decode("p256dh", p256dh)
    if len(key) != 65 or key[0] != 4:
        raise InvalidPushSubscription(
            f"keys.p256dh: expected a 65-byte uncompressed P-256 point, got {len(key)} bytes"
        )
    secret = decode("auth", auth)
    if len(secret) != 16:
        raise InvalidPushSubscription(f"keys.auth: expected 16 bytes, got {len(secret)}")
    return PushSubscription(endpoint=endpoint, p256dh=p256dh, auth=auth)


# -- the in-process hub ------------------------------------------------------------


class LiveSession:
    """One live WebSocket of a shopper, bound to the event loop that serves it."""

    def __init__(self, shopper_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.shopper_id = shopper_id
        self.loop = loop
        self.queue: asyncio.Queue[DeliveredOffer | SessionClosed] = asyncio.Queue()


class _Hub:
    """Live sessions by shopper; ``notify`` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, set[LiveSession]] = {}

    def join(self, session: LiveSession) -> None:
        with self._lock:
            self._sessions.setdefault(session.shopper_id, set()).add(session)

    def leave(self, session: LiveSession) -> None:
        with self._lock:
            sessions = self._sessions.get(session.shopper_id)
            if sessions is not None:
                sessions.discard(session)
                if not sessions:
                    del self._sessions[session.shopper_id]

    def count(self, shopper_id: str) -> int:
        with self._lock:
            return len(self._sessions.get(shopper_id, ()))

    def notify(self, shopper_id: str, item: DeliveredOffer | SessionClosed) -> int:
        """Hand ``item`` to every live session of the shopper; how many took it."""
        with self._lock:
            sessions = list(self._sessions.get(shopper_id, ()))
        handed = 0
        for session in sessions:
            try:
                session.loop.call_soon_threadsafe(session.queue.put_nowait, item)
                handed += 1
            except RuntimeError:  # its event loop is closed: the server stopped
                self.leave(session)
        return handed

    def shoppers(self) -> list[str]:
        with self._lock:
            return list(self._sessions)


# -- the use cases -----------------------------------------------------------------


class OfferDelivery:
    """Publishes offers and serves the phone's side: stream, inbox, acks, receipts.

    ``may_deliver(shopper_id)`` is the personalized-offers consent; it is checked
    again at publish and before any background push, as consent can be
    withdrawn in between. ``close()`` stops the fallback worker.
    """

    def __init__(
        self,
        store: OfferStore,
        *,
        channels: Sequence[PushChannel] = (),
        ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
        may_deliver: Callable[[str], bool] | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        allow_http_push_endpoints: bool = False,
        endpoint_guard: EndpointGuard | None = None,
        push_workers: int = 4,
        on_push: Callable[[DeliveredOffer, PushReceipt], None] | None = None,
        sessions_elsewhere: bool = False,
    ) -> None:
        """``sessions_elsewhere``: the shoppers' sockets are held by other nodes
        (a chain worker, whose offers reach the phones through the API nodes):
        the background channels then always wait ``ack_timeout_s`` and ask the
        database whether the phone acknowledged, instead of pushing at once
        because no socket is open here."""
        self._store = store
        self._sessions_elsewhere = sessions_elsewhere
        self._channels = tuple(channels)
        self._ack_timeout_s = ack_timeout_s
        self._may_deliver = may_deliver
        self._clock = clock
        self._allow_http = allow_http_push_endpoints
        # Public hosts only unless allowed: push endpoints come from shoppers.
        self._guard = endpoint_guard if endpoint_guard is not None else EndpointGuard()
        self._on_push = on_push
        #: Told (shopper, offer id, at) of an offer first opened, and of a redemption.
        self.opened_listeners: list[Callable[[str, str, int], None]] = []
        self.redeemed_listeners: list[Callable[[Redemption], None]] = []
        self._hub = _Hub()
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []  # (due monotonic, tie, offer_id)
        self._pending: dict[str, DeliveredOffer] = {}  # awaiting an ack or the push
        self._inflight = 0
        self._ticket = itertools.count()
        self._stopping = False
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, push_workers), thread_name_prefix="offer-push"
        )
        self._worker = threading.Thread(target=self._run, name="offer-fallback", daemon=True)
        self._worker.start()
        self._acks: dict[str, int] = {}  # shopper -> highest seq acked, not yet written
        self._acks_ready = threading.Condition()
        self._acker = threading.Thread(target=self._write_acks, name="offer-acks", daemon=True)
        self._acker.start()

    # -- publishing (any thread) ----------------------------------------------------

    def publish(
        self, shopper_id: str, draft: OfferDraft, *, trigger_published_ms: int | None = None
    ) -> DeliveredOffer:
        """Store the offer, then hand it to live sessions and schedule the fallback.

        Raises ``NoOfferConsent`` when ``may_deliver`` says no: nothing is stored.
        """
        if self._may_deliver is not None and not self._may_deliver(shopper_id):
            raise NoOfferConsent(f"shopper {shopper_id!r} has not consented to offers")
        return self._hand_over(
            self._store.add_offers(
                [NewOffer(shopper_id, draft, trigger_published_ms)],
                created_ms=self._clock(),
                new_code=till_codes(),
            )
        )[0]

    def publish_many(self, offers: Sequence[NewOffer]) -> list[DeliveredOffer]:
        """Many offers in one transaction (a burst of decisions); shoppers who
        withdrew consent in the meantime are skipped, not raised."""
        allowed = [
            o for o in offers if self._may_deliver is None or self._may_deliver(o.shopper_id)
        ]
        if len(allowed) < len(offers):
            log.info("%d offers not delivered: consent withdrawn", len(offers) - len(allowed))
        if not allowed:
            return []
        stored = self._store.add_offers(allowed, created_ms=self._clock(), new_code=till_codes())
        return self._hand_over(stored)

    def _hand_over(self, stored: list[DeliveredOffer]) -> list[DeliveredOffer]:
        """Committed: to the live sessions, and the fallback scheduled."""
        for offer in stored:
            live = self._hub.notify(offer.shopper_id, offer)
            waits = live or self._sessions_elsewhere
            self._schedule(offer, self._ack_timeout_s if waits else 0.0)
        return stored

    def hand_to_live(self, offer: DeliveredOffer) -> int:
        """An offer another node stored (a chain worker, docs/scaling.md): to
        this node's live sessions of the shopper only, nothing stored and no
        fallback scheduled. A session that missed one fills the gap from the
        database on the next (``place``); how many sessions took it."""
        return self._hub.notify(offer.shopper_id, offer)

    # -- the phone's side -----------------------------------------------------------

    async def stream(
        self, shopper_id: str, after: int | None
    ) -> AsyncGenerator[DeliveredOffer | SessionClosed, None]:
        """Every offer with seq > the resume point, once, in order, then live ones.

        Runs on the event loop; close it with ``contextlib.aclosing``.
        """
        session = LiveSession(shopper_id, asyncio.get_running_loop())
        self._hub.join(session)  # before the catch-up read: nothing slips between
        try:
            last_seq, acked = await asyncio.to_thread(self._store.cursor, shopper_id)
            last = resume_point(after, last_seq, acked)
            for offer in await self._after(shopper_id, last):
                yield offer
                last = offer.seq
            while True:
                item = await session.queue.get()
                if isinstance(item, SessionClosed):
                    yield item
                    return
                action = place(last, item.seq)
                if action == "send":
                    yield item
                    last = item.seq
                elif action == "fill":
                    for offer in await self._after(shopper_id, last):
                        yield offer
                        last = offer.seq
        finally:
            self._hub.leave(session)

    async def _after(self, shopper_id: str, after: int) -> list[DeliveredOffer]:
        out: list[DeliveredOffer] = []
        while True:
            batch = await asyncio.to_thread(
                self._store.offers_after, shopper_id, after, CATCH_UP_BATCH
            )
            out.extend(batch)
            if len(batch) < CATCH_UP_BATCH:
                return out
            after = batch[-1].seq

    def live_sessions(self, shopper_id: str) -> int:
        return self._hub.count(shopper_id)

    def offers_after(
        self, shopper_id: str, after: int = 0, limit: int = 100
    ) -> list[DeliveredOffer]:
        return self._store.offers_after(shopper_id, after, limit)

    def inbox(self, shopper_id: str, after: int = 0, limit: int = 100) -> list[InboxOffer]:
        return self._store.inbox(shopper_id, after, limit)

    def acked_seq(self, shopper_id: str) -> int:
        return self._store.cursor(shopper_id)[1]

    def ack(self, shopper_id: str, seq: int) -> int:
        """Cumulative ack (records ``delivered`` receipts); returns the ack now stored."""
        acked = self._store.ack(shopper_id, seq, self._clock())
        self._cancel(lambda o: o.shopper_id == shopper_id and o.seq <= acked)
        return acked

    def ack_soon(self, shopper_id: str, seq: int) -> None:
        """A phone's ack over its WebSocket, written with every other ack that
        came in meanwhile: a crowd's acks are one transaction, not hundreds
        competing with ingest for the database. An ack lost in a crash only
        means the phone is sent that offer again, which its seq check drops."""
        with self._acks_ready:
            self._acks[shopper_id] = max(seq, self._acks.get(shopper_id, 0))
            self._acks_ready.notify()

    def _write_acks(self) -> None:
        while True:
            with self._acks_ready:
                while not self._acks and not self._stopping:
                    self._acks_ready.wait()
                acks, self._acks = self._acks, {}
            if acks:
                try:
                    acked = self._store.ack_many(acks, self._clock())
                except Exception:
                    log.exception("%d acks could not be written", len(acks))
                else:
                    self._cancel(_covered_by(acked))
            elif self._stopping:
                return

    def receipt(self, shopper_id: str, offer_id: str, status: ReceiptStatus) -> Receipt:
        """Idempotent: the first time of each status is kept.

        ``opened`` and ``dismissed`` imply ``delivered``, which is recorded too.
        Raises ``OfferNotFound`` for an offer that is not this shopper's.
        """
        at = self._clock()
        if status != "delivered":
            self._store.add_receipt(shopper_id, offer_id, "delivered", at)
        done = self._store.add_receipt(shopper_id, offer_id, status, at)
        self._cancel(lambda o: o.offer_id == offer_id)
        if done.created and status == "opened":
            for tell in self.opened_listeners:  # the event stream (issue 18 point 8)
                tell(shopper_id, offer_id, done.at_ms)
        return done

    def redeem(self, store: str, code: str) -> Redemption:
        """Redeem at the till; raises ``RedemptionRefused`` with the reason."""
        if not code.strip():
            raise RedemptionRefused("unknown", "code: must not be empty")
        done = self._store.redeem(store, normalize_code(code), self._clock())
        for tell in self.redeemed_listeners:  # the event stream (issue 18 point 8)
            tell(done)
        return done

    def subscribe_push(self, shopper_id: str, endpoint: str, p256dh: str, auth: str) -> None:
        """Raises ``InvalidPushSubscription`` naming the bad field."""
        subscription = check_push_subscription(endpoint, p256dh, auth, allow_http=self._allow_http)
        try:
            self._guard.check_url(endpoint)
        except EndpointRefused as error:
            raise InvalidPushSubscription(f"endpoint: {error}") from None
        self._store.save_push_subscription(shopper_id, subscription, self._clock())

    def unsubscribe_push(self, shopper_id: str, endpoint: str) -> bool:
        return self._store.remove_push_subscription(endpoint, shopper_id)

    def register_push_token(self, shopper_id: str, platform: NativePlatform, token: str) -> None:
        """An FCM registration token or an APNs device token of the shopper's app."""
        if not token.strip() or len(token) > 4096:
            raise InvalidPushSubscription("token: expected 1 to 4096 characters")
        self._store.save_push_token(shopper_id, platform, token.strip(), self._clock())

    def export_shopper(self, shopper_id: str) -> dict[str, Any]:
        return self._store.export_shopper(shopper_id)

    def erase_shopper(self, shopper_id: str) -> int:
        """Erase everything and end the shopper's live sessions (close code 4401)."""
        self._cancel(lambda o: o.shopper_id == shopper_id)
        erased = self._store.erase_shopper(shopper_id)
        self._hub.notify(shopper_id, SessionClosed(4401, "shopper erased"))
        return erased

    # -- the fallback worker --------------------------------------------------------

    def settle(self, timeout_s: float | None = None) -> bool:
        """Wait until no offer awaits an ack or a push; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and self._inflight == 0, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the worker (pending fallbacks are dropped) and end live sessions."""
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify_all()
        self._worker.join(timeout_s)
        with self._acks_ready:
            self._acks_ready.notify_all()  # written before the thread ends
        self._acker.join(timeout_s)
        self._executor.shutdown(wait=True)
        for shopper_id in self._hub.shoppers():
            self._hub.notify(shopper_id, SessionClosed(1001, "server stopping"))

    def _schedule(self, offer: DeliveredOffer, delay_s: float) -> None:
        if not self._channels:
            return
        with self._cond:
            if self._stopping:
                return
            self._pending[offer.offer_id] = offer
            due = time.monotonic() + delay_s
            heapq.heappush(self._heap, (due, next(self._ticket), offer.offer_id))
            self._cond.notify_all()

    def _cancel(self, which: Callable[[DeliveredOffer], bool]) -> None:
        with self._cond:
            for offer_id in [k for k, o in self._pending.items() if which(o)]:
                del self._pending[offer_id]
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stopping:
                    return
                _, _, offer_id = heapq.heappop(self._heap)
                offer = self._pending.pop(offer_id, None)
                if offer is None:  # acknowledged in the meantime
                    continue
                self._inflight += 1
            try:
                self._executor.submit(self._background, offer)
            except RuntimeError:  # executor shut down
                self._done()
                return

    def _done(self) -> None:
        with self._cond:
            self._inflight -= 1
            self._cond.notify_all()

    def _background(self, offer: DeliveredOffer) -> None:
        try:
            if not self._still_needed(offer):
                return
            for channel in self._channels:
                try:
                    receipt = channel.send(offer.shopper_id, offer)
                except Exception as error:  # one broken channel must not stop the others
                    log.exception("push channel %s failed for %s", channel.name, offer.offer_id)
                    receipt = PushReceipt(channel.name, failed=1, errors=(repr(error),))
                if receipt.failed or receipt.errors:
                    log.warning("push %s of offer %s: %s", channel.name, offer.offer_id, receipt)
                if self._on_push is not None:
                    self._on_push(offer, receipt)
        except Exception:
            log.exception("background delivery of offer %s failed", offer.offer_id)
        finally:
            self._done()

    def _still_needed(self, offer: DeliveredOffer) -> bool:
        if self._clock() > offer.expires_ms:
            return False
        if self._may_deliver is not None and not self._may_deliver(offer.shopper_id):
            return False
        if not self._store.offer_exists(offer.offer_id):  # erased meanwhile
            return False
        _, acked = self._store.cursor(offer.shopper_id)
        return acked < offer.seq and not self._store.is_delivered(offer.offer_id)
