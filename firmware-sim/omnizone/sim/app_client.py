"""The simulated shopper app's side of the public API: register phones and
give consent, exactly as the reference app does (docs/identity.md), so the
server resolves their rotating ids like real ones."""

import math
import time

import httpx

from omnizone.contract.eid import EidParams
from omnizone.sim.scenario import Scenario
from omnizone.sim.shoppers import AppPhone


def expected_shoppers(scenario: Scenario, simulated_s: float | None = None) -> int:
    """Enough phones for every shopper a run of ``simulated_s`` (default: the
    whole scenario) is likely to see: arrivals are Poisson, so the mean plus
    five standard deviations."""
    behaviour = scenario.shoppers
    seconds = scenario.duration_s if simulated_s is None else min(simulated_s, scenario.duration_s)
    mean = behaviour.arrivals_per_minute * seconds / 60
    return behaviour.initial_shoppers + math.ceil(mean + 5 * math.sqrt(mean) + 1)


def register_app_phones(
    api_url: str,
    store: str,
    count: int,
    *,
    location_analytics: bool = True,
    personalized_offers: bool = True,
    timeout_s: float = 10.0,
    max_wait_s: float = 600.0,
) -> list[AppPhone]:
    """``count`` phones registered through ``POST /api/v1/shoppers``, each with
    the given consent; raises ``httpx.HTTPStatusError`` with the server's reason.
    A server that rate-limits registration (``429``) is waited for as its
    ``Retry-After`` says, ``max_wait_s`` in all at most."""
    phones: list[AppPhone] = []
    consent = {
        "location_analytics": location_analytics,
        "personalized_offers": personalized_offers,
    }
    with httpx.Client(base_url=api_url, timeout=timeout_s) as client:
        for _ in range(count):
            registered = client.post("/api/v1/shoppers", json={"store": store})
            while registered.status_code == 429 and max_wait_s > 0:
                delay = min(max_wait_s, _retry_after_s(registered))
                time.sleep(delay)
                max_wait_s -= delay
                registered = client.post("/api/v1/shoppers", json={"store": store})
            registered.raise_for_status()
            phone = registered.json()
            client.put(
                "/api/v1/me/consent",
                json=consent,
                headers={"Authorization": f"Bearer {phone['token']}"},
            ).raise_for_status()
            phones.append(
                AppPhone(
                    shopper_id=phone["shopper_id"],
                    eid=EidParams(
                        key=bytes.fromhex(phone["eid_key"]),
                        exponent=int(phone["eid_rotation_exponent"]),
                        clock_offset_s=int(phone["eid_clock_offset_s"]),
                    ),
                    token=phone["token"],
                )
            )
    return phones


def _retry_after_s(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else 1.0
