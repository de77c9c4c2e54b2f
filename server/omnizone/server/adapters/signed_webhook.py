"""Signed outgoing webhooks with retries: alerts (and store events) to the
retailer's systems.

The body is signed with the project's one webhook signature
(``domain.identity.webhook_signature``: ``X-Omnizone-Signature: sha256=<hex
HMAC-SHA256 of the raw body>``), the same one the server checks on incoming
profile webhooks, so a receiver verifies it with ``check_webhook_signature``.
Each delivery carries an ``X-Omnizone-Delivery`` id that stays the same across
retries, so a receiver can drop duplicates. A 2xx is delivered; a 4xx other
than 408/429 is refused (not retried: the receiver said no); anything else,
or a connection error, is retried with doubling waits up to ``attempts``.
The target URL passes the server's ``EndpointGuard`` (no private hosts unless
allowed), as a Web Push endpoint does.
"""

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from omnizone.server.domain.identity import SIGNATURE_HEADER, webhook_signature
from omnizone.server.service.endpoints import EndpointGuard

log = logging.getLogger(__name__)

DELIVERY_HEADER = "X-Omnizone-Delivery"
RETRYABLE_4XX = (408, 429)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivery_id: str
    delivered: bool
    attempts: int
    status: int | None
    error: str | None


class SignedWebhook:
    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        guard: EndpointGuard | None = None,
        attempts: int = 5,
        first_wait_s: float = 0.5,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not secret:
            raise ValueError("a webhook needs a signing secret")
        (guard or EndpointGuard()).check_url(url)
        self.url = url
        self._secret = secret
        self.attempts = max(1, attempts)
        self.first_wait_s = first_wait_s
        self._sleep = sleep
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, payload: Mapping[str, object], delivery_id: str | None = None) -> DeliveryResult:
        """POST ``payload`` until delivered or refused; ``delivery_id``: the
        caller's stable id (an alert log row, a batch of stream events), else a new one."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        delivery_id = delivery_id or str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: webhook_signature(self._secret, body),
            DELIVERY_HEADER: delivery_id,
        }
        wait = self.first_wait_s
        status: int | None = None
        error: str | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._client.post(self.url, content=body, headers=headers)
                status = response.status_code
                if 200 <= status < 300:
                    return DeliveryResult(delivery_id, True, attempt, status, None)
                error = f"HTTP {status}"
                if 400 <= status < 500 and status not in RETRYABLE_4XX:
                    break
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"[:200]
            if attempt < self.attempts:
                self._sleep(wait)
                wait *= 2
        log.warning("webhook %s: delivery %s failed: %s", self.url, delivery_id, error)
        return DeliveryResult(delivery_id, False, attempt, status, error)

    def close(self) -> None:
        self._client.close()
