"""A simulated staff phone walks a guided survey (docs/localization.md): it
registers like any app phone (no consent: it is staff equipment), pairs with
the code the dashboard shows, and walks whichever zone the survey says,
browsing about inside it, while the simulated gateways hear its adverts.

With ``zones`` the walker drives the survey itself, as a person holding the
app would: walk to the zone, pick it, stay until the server says enough,
then the next. Without, it follows the zone staff pick in the dashboard.
"""

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from omnizone.sim.app_client import register_app_phones
from omnizone.sim.engine import Simulation
from omnizone.sim.runner import run_paced
from omnizone.sim.scenario import Scenario
from omnizone.sim.shoppers import AppPhone, Leg, Shopper
from omnizone.store import StorePlan, geometry

OPEN_STATES = ("waiting_for_phone", "paired")


class SurveyWalkError(RuntimeError):
    """The server refused the walk (bad code, survey closed): its reason."""


@dataclass
class SurveyWalker:
    """Steers one simulated person by the survey's state; ``poll`` from the
    pacing loop, ``steer`` as a simulation observer (every step)."""

    client: httpx.Client
    token: str
    store: StorePlan
    walker: Shopper
    zones: Sequence[str] = ()
    seed: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    status: dict[str, Any] = field(default_factory=dict)
    walked: list[str] = field(default_factory=list)
    _target: str | None = None
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def poll(self, _simulation: Simulation | None = None) -> None:
        """Read the survey; walk where it says, or (own zones) pick the next."""
        if self.done.is_set():
            return
        self.status = self._call("GET", "/api/v1/surveys/current")
        if self.status["state"] not in OPEN_STATES:
            self.done.set()
            return
        if self.zones:
            self._drive()
            return
        zone = self.status["zone"]
        if zone is not None and zone != self._target:
            self._walk_to(zone)

    def steer(self, _simulation: Simulation) -> None:
        """Keep browsing inside the zone: never run out of legs (gone)."""
        if self._target is None:
            if not self.walker.legs:
                self.walker.legs.append(Leg(self.walker.position, 0.4, 1000))
            return
        while len(self.walker.legs) < 2:
            point = self._inside(self._target)
            self.walker.legs.append(Leg(point, 0.4, self._rng.randrange(1000, 4000)))

    def _drive(self) -> None:
        """Walk to the next zone not yet enough with collecting paused, pick
        it once inside, stay until enough; pause when every zone is done."""
        current = self.status["zone"]
        progress = {z["zone"]: z for z in self.status["zones"]}
        if current is not None and not progress[current]["enough"]:
            return
        remaining = [z for z in self.zones if not progress[z]["enough"]]
        if current is not None:
            self.status = self._call("POST", "/api/v1/surveys/current/zone", {"zone": None})
        if not remaining:
            self.done.set()
            return
        if self._target != remaining[0]:
            self._walk_to(remaining[0])
        elif self.store.zone_at(self.walker.position) == remaining[0]:
            self.status = self._call("POST", "/api/v1/surveys/current/zone", {"zone": remaining[0]})

    def _walk_to(self, zone: str) -> None:
        self._target = zone
        self.walked.append(zone)
        self.walker.legs.clear()
        self.walker.pause_left_ms = 0
        self.walker.legs.append(Leg(self._inside(zone), 1.1, 0))

    def _inside(self, zone: str) -> tuple[float, float]:
        return geometry.random_point_in(self.store.zone(zone).polygon, self._rng, margin=0.5)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.request(
            method, path, json=body, headers={"X-Survey-Token": self.token}
        )
        if response.status_code >= 400:
            raise SurveyWalkError(f"{method} {path}: {response.status_code} {_detail(response)}")
        found: dict[str, Any] = response.json()
        return found


def pair_walker(
    simulation: Simulation,
    client: httpx.Client,
    code: str,
    *,
    zones: Sequence[str] = (),
    seed: int = 0,
) -> SurveyWalker:
    """Register a phone (no consent), pair it with ``code`` and let it walk."""
    (phone,) = register_app_phones(
        str(client.base_url),
        simulation.store.id,
        1,
        location_analytics=False,
        personalized_offers=False,
    )
    paired = client.post(
        "/api/v1/surveys/pair",
        json={"code": code},
        headers={"Authorization": f"Bearer {phone.token}"},
    )
    if paired.status_code >= 400:
        raise SurveyWalkError(f"pairing refused: {paired.status_code} {_detail(paired)}")
    return attach_walker(simulation, client, phone, paired.json()["token"], zones=zones, seed=seed)


def attach_walker(
    simulation: Simulation,
    client: httpx.Client,
    phone: AppPhone,
    token: str,
    *,
    zones: Sequence[str] = (),
    seed: int = 0,
) -> SurveyWalker:
    """A person carrying ``phone`` (paired already, e.g. by the app in survey
    mode, whose registration the phone's radio advertises), starting at the
    entrance; added to the simulation's observers."""
    store = simulation.store
    unknown = [z for z in zones if z not in {zone.id for zone in store.zones}]
    if unknown:
        known = ", ".join(z.id for z in store.zones)
        raise SurveyWalkError(f"zones {unknown} are not in store {store.id} (its zones: {known})")
    entrance = (store.entrances or [store.zones[0].id])[0]
    start = geometry.centroid(store.zone(entrance).polygon)
    walker = SurveyWalker(
        client, token, store, simulation.add_walker(phone, start), zones=tuple(zones), seed=seed
    )
    walker.steer(simulation)  # legs before the first step, or the person is "gone"
    simulation.observers.append(walker.steer)
    return walker


def survey_scenario(scenario: Scenario, hours: float = 8.0) -> Scenario:
    """``scenario`` with nobody else in the store, long enough for any walk."""
    nobody = scenario.shoppers.model_copy(update={"arrivals_per_minute": 0, "initial_shoppers": 0})
    empty = scenario.street.model_copy(update={"passers_by_per_minute": 0.0})
    return scenario.model_copy(
        update={"shoppers": nobody, "street": empty, "duration_s": hours * 3600}
    )


def walk_survey(
    simulation: Simulation,
    walker: SurveyWalker,
    *,
    speed: float | None,
    stop: threading.Event | None = None,
    wall_limit_s: float | None = None,
    poll_every_s: float = 0.5,
) -> None:
    """Step the simulation until the walk is done (own zones all enough, or
    the survey finished or cancelled), ``stop`` is set or time is up."""
    ended = walker.done if stop is None else _either(walker.done, stop)
    walker.poll()
    run_paced(
        simulation,
        speed=speed,
        stop=ended,
        wall_limit_s=wall_limit_s,
        on_progress=lambda _s: walker.poll(),
        progress_every_s=poll_every_s,
    )


class _Either(threading.Event):
    def __init__(self, a: threading.Event, b: threading.Event) -> None:
        super().__init__()
        self._a, self._b = a, b

    def is_set(self) -> bool:
        return self._a.is_set() or self._b.is_set()


def _either(a: threading.Event, b: threading.Event) -> threading.Event:
    return _Either(a, b)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:200]
