"""The store's ``localization.evidence_tempering`` reaches the deployed filter."""

import pytest

from omnizone.server.domain.localize.localizer import StoreLocalizer
from omnizone.server.service.locators import evidence_tempering, grid_localizer
from omnizone.store import StorePlan


def _filter(plan: StorePlan) -> StoreLocalizer:
    built = grid_localizer(plan, 1000)
    assert isinstance(built, StoreLocalizer)
    return built


def _with(plan: StorePlan, setting: str) -> StorePlan:
    localization = plan.localization.model_copy(update={"evidence_tempering": setting})
    return plan.model_copy(update={"localization": localization})


def test_off_keeps_the_fixed_weight(plan: StorePlan) -> None:
    assert evidence_tempering(plan) is None  # the default
    assert _filter(plan).tempering is None


@pytest.mark.parametrize(("setting", "most"), [("lower", 1.0), ("learn", 2.5)])
def test_lower_may_only_lower_the_weight_and_learn_may_raise_it(
    plan: StorePlan, setting: str, most: float
) -> None:
    tempering = evidence_tempering(_with(plan, setting))
    assert tempering is not None and tempering.max_weight == most
    assert _filter(_with(plan, setting)).tempering == tempering
