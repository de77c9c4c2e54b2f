"""The likely_to_buy segment rule (issue 18, point 9): pure, with the
prediction supplied by the service; through the engine with a supplier."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from omnizone.server.domain.offers import Outcome, check_campaign
from omnizone.server.domain.offers.matching import segment_holds
from omnizone.server.service.offer_engine import OfferEngine
from omnizone.store import StorePlan
from tests.server.offers.conftest import BOOTS, JEANS, NOW, make_campaign, make_shopper, run
from tests.server.offers.test_engine import Store, _campaign


def _rule(**fields: object) -> object:
    campaign = make_campaign(conditions={"segments": [{"rule": "likely_to_buy", **fields}]})
    return campaign.conditions.segments[0]


def test_the_rule_reads_the_supplied_prediction_only() -> None:
    by_category = _rule(categories=["denim"])
    by_product = _rule(gtins=[BOOTS], top=1)
    likes_denim = make_shopper(likely_products=(JEANS, BOOTS), likely_categories=("denim", "shoes"))
    unknown = make_shopper()  # no prediction: no consent, or nothing known
    assert segment_holds(by_category, likes_denim, NOW)  # type: ignore[arg-type]
    assert not segment_holds(by_category, unknown, NOW)  # type: ignore[arg-type]
    assert not segment_holds(by_product, likes_denim, NOW)  # type: ignore[arg-type]  # 2nd, top 1
    assert segment_holds(_rule(gtins=[BOOTS], top=2), likes_denim, NOW)  # type: ignore[arg-type]
    negated = _rule(categories=["denim"], negate=True)
    assert segment_holds(negated, unknown, NOW)  # type: ignore[arg-type]


def test_the_rule_names_something_that_exists() -> None:
    with pytest.raises(ValidationError, match="needs gtins or categories"):
        _rule()
    with pytest.raises(ValidationError):
        _rule(categories=["denim"], top=0)


def test_unknown_categories_and_products_are_named(plan: StorePlan) -> None:
    from tests.server.offers.conftest import CATALOG

    campaign = make_campaign(
        conditions={
            "segments": [
                {"rule": "likely_to_buy", "categories": ["denin"], "gtins": ["00000000000017"]}
            ]
        }
    )
    problems = check_campaign(campaign, plan, CATALOG)
    assert any("segments[0].categories[0]: category 'denin'" in p for p in problems)
    assert any("segments[0].gtins[0]: product '00000000000017'" in p for p in problems)


def test_decide_sends_to_the_likely_buyer_only() -> None:
    campaign = make_campaign(
        "denim-fans", conditions={"segments": [{"rule": "likely_to_buy", "categories": ["denim"]}]}
    )
    fan = make_shopper(likely_categories=("denim",))
    other = make_shopper(likely_categories=("shoes", "accessories", "outerwear"))
    assert run([campaign], shopper=fan).sent is not None
    batch = run([campaign], shopper=other)
    assert [d.outcome for d in batch.decisions] == [Outcome.NOT_IN_SEGMENT]


def test_the_engine_asks_the_service_for_the_shoppers_it_decides_on(
    plan: StorePlan, tmp_path: Path
) -> None:
    asked: list[tuple[str, list[str]]] = []
    fan_id: list[str] = []

    def likely(
        store: str, shoppers: Sequence[str], at_ms: int
    ) -> Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        asked.append((store, list(shoppers)))
        return {s: ((JEANS,), ("denim",)) for s in shoppers if s in fan_id}

    store = Store(plan, tmp_path)
    try:
        store.engine = OfferEngine(
            {plan.id: plan},
            store.campaigns,
            store.decisions,
            store.engine.catalog,
            store.shoppers,
            store.delivery.publish_many,
            likely=likely,
        )
        store.campaigns.save_campaign(
            _campaign(conditions={"segments": [{"rule": "likely_to_buy", "categories": ["denim"]}]})
        )
        fan, other = store.shopper(offers=True), store.shopper(offers=True)
        fan_id.append(fan)
        store.walk(fan, ["entrance", "menswear", "denim"])
        store.walk(other, ["entrance", "menswear", "denim"], start_ms=1_763_719_300_000)
        assert [o.campaign_id for o in store.delivery.offers_after(fan, 0, 10)] == ["hello"]
        assert store.delivery.offers_after(other, 0, 10) == []
        # Asked per batch of moments a likely_to_buy campaign listens for, for those shoppers.
        assert {store_id for store_id, _ in asked} == {plan.id}
        assert {s for _, who in asked for s in who} == {fan, other}
    finally:
        store.delivery.close()
