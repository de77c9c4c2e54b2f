"""The one mapping of running plans every part of the server reads: a
replacement is told to the listeners before anyone sees it, a listener that
refuses stops it, and the set of stores never changes."""

import pytest

from omnizone.server.service.running_stores import RunningStores
from omnizone.store import StorePlan

from .conftest import STORE


def _renamed(plan: StorePlan, name: str) -> StorePlan:
    return plan.model_copy(update={"store": plan.store.model_copy(update={"name": name})})


def test_listeners_see_the_new_plan_before_the_readers_do(plan: StorePlan) -> None:
    running = RunningStores({STORE: plan})
    seen: list[tuple[str, str]] = []
    running.subscribe(lambda new: seen.append((new.store.name, running[STORE].store.name)))
    running.replace(_renamed(plan, "Rivoli, rearranged"))
    assert seen == [("Rivoli, rearranged", plan.store.name)]
    assert running[STORE].store.name == "Rivoli, rearranged" and list(running) == [STORE]


def test_a_listener_that_refuses_keeps_the_old_plan(plan: StorePlan) -> None:
    running = RunningStores({STORE: plan})

    def refuse(_plan: StorePlan) -> None:
        raise ValueError("the localizer cannot run it")

    running.subscribe(refuse)
    with pytest.raises(ValueError, match="cannot run"):
        running.replace(_renamed(plan, "elsewhere"))
    assert running[STORE] is plan


def test_a_store_this_server_does_not_run_is_refused(plan: StorePlan) -> None:
    running = RunningStores({STORE: plan})
    other = plan.model_copy(update={"store": plan.store.model_copy(update={"id": "lyon"})})
    with pytest.raises(KeyError, match="unknown store 'lyon'"):
        running.replace(other)
    assert dict(running) == {STORE: plan}
