"""The plans the server runs, one per store, shared by every part that reads them.

A layout saved in the dashboard applies at once (``layouts.LayoutService``),
so no part may keep its own copy of a plan: ingest's gate on gateways, the
live map, the store queries, the gateway admin, the campaigns, the offer
engine and the analytics all hold this one mapping and read a store's plan
when they need it. The set of stores is fixed at start (a layout cannot
rename a store, a store file cannot be added while running); only a store's
plan is replaced.

Who derives state from a plan (ingest's localizer and visit states) listens
(``subscribe``) and is told *before* the mapping changes, so no other part
sees a plan the localizer does not yet run. A listener that raises stops the
replacement: the old plan keeps running everywhere.
"""

import threading
from collections.abc import Callable, Iterator, Mapping

from omnizone.store import StorePlan

PlanListener = Callable[[StorePlan], None]


class RunningStores(Mapping[str, StorePlan]):
    """A read-only mapping of store id to its running plan, plus ``replace``."""

    def __init__(self, plans: Mapping[str, StorePlan]) -> None:
        self._plans = dict(plans)
        self._listeners: list[PlanListener] = []
        self._lock = threading.Lock()

    def __getitem__(self, store: str) -> StorePlan:
        return self._plans[store]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._plans))

    def __len__(self) -> int:
        return len(self._plans)

    def subscribe(self, listener: PlanListener) -> None:
        """Tell ``listener`` of every new plan, before the others see it."""
        with self._lock:
            self._listeners.append(listener)

    def replace(self, plan: StorePlan) -> None:
        """Run ``plan`` for its store from now on, in every part. One
        replacement at a time; ``KeyError`` for a store this server does not run."""
        with self._lock:
            if plan.id not in self._plans:
                known = ", ".join(sorted(self._plans)) or "none"
                raise KeyError(f"unknown store {plan.id!r} (this server runs: {known})")
            for listener in self._listeners:
                listener(plan)
            self._plans[plan.id] = plan
