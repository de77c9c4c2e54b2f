"""The offer engine over real repositories and real delivery (SQLite file):
placements become decisions with reasons; consent gates every offer; the
report's funnel and lift come from the stored facts."""

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnizone.paths import shipped_config
from omnizone.server.adapters.campaign_db import CampaignRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.domain.identity import Purpose
from omnizone.server.domain.offers import Campaign, load_catalog
from omnizone.server.service.campaign_report import campaign_report
from omnizone.server.service.campaigns import CampaignAdmin, CampaignRejected
from omnizone.server.service.delivery import OfferDelivery
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.offer_engine import OfferEngine
from omnizone.server.service.shoppers import ProfileEventIn, ShopperService
from omnizone.store import StorePlan

T0 = 1_763_719_200_000  # 2025-11-21 10:00 UTC: a Friday, 11:00 in Paris
STORE = "paris-rivoli"


def _campaign(**changes: object) -> Campaign:
    body = {
        "id": "hello",
        "name": "Hello",
        "store": STORE,
        "priority": 100,
        "trigger": {"kind": "zone_entered", "zones": ["denim"]},
        "content": {"title": "Denim", "body": "10% off", "coupon_code": "DENIM10"},
        "limits": {"per_visit": 1},
        "holdout_fraction": 0,
    }
    body.update(changes)
    return Campaign.model_validate(body)


class Store:
    def __init__(self, plan: StorePlan, tmp_path: Path, *, background: bool = False) -> None:
        db = SqlRepository.from_url(f"sqlite:///{tmp_path / 'omnizone.db'}")
        self.shoppers = ShopperService([STORE], ShopperRepository(db.engine))
        self.offers = OfferRepository(db.engine)
        self.delivery = OfferDelivery(self.offers)
        self.decisions = CampaignRepository(db.engine)
        catalog = load_catalog(shipped_config("catalog/rivoli.yaml"), [plan])
        self.campaigns = CampaignAdmin({STORE: plan}, self.decisions, catalog)
        self.engine = OfferEngine(
            {STORE: plan},
            self.campaigns,
            self.decisions,
            catalog,
            self.shoppers,
            self.delivery.publish_many,
            background=background,
        )

    def walk(self, shopper: str, zones: list[str | None], start_ms: int = T0) -> None:
        for i, zone in enumerate(zones):
            at = start_ms + i * 1000
            self.engine.on_placement(STORE, ZonePlacement(shopper, zone, at, at, at - 40))

    def shopper(self, *, offers: bool, location: bool = True) -> str:
        registered = self.shoppers.register(STORE).shopper_id
        self.shoppers.set_consent(
            registered,
            {Purpose.PERSONALIZED_OFFERS: offers, Purpose.LOCATION_ANALYTICS: location},
        )
        return registered


@pytest.fixture
def store(plan: StorePlan, tmp_path: Path) -> Iterator[Store]:
    built = Store(plan, tmp_path)
    yield built
    built.delivery.close()


def test_entering_the_zone_sends_one_offer_with_its_reason(store: Store) -> None:
    store.campaigns.save_campaign(_campaign())
    shopper = store.shopper(offers=True)
    store.walk(shopper, ["entrance", "menswear", "denim", "denim", "menswear", "denim"])
    offers = store.delivery.offers_after(shopper, 0, 100)
    assert [o.campaign_id for o in offers] == ["hello"]  # per_visit 1: the second entry is capped
    assert offers[0].coupon_code.startswith("DENIM10-")
    assert offers[0].trigger_published_ms == T0 + 2000 - 40
    outcomes = [d.outcome for d in store.engine.decisions(campaign_id="hello")]
    assert sorted(outcomes) == ["capped_visit", "sent"]


def test_a_crowd_decided_in_batches_on_the_engine_thread_keeps_every_cap(
    plan: StorePlan, tmp_path: Path
) -> None:
    """Moments queued while the engine writes are decided together; a shopper's
    second entry in the same batch still sees the first offer (per_visit 1)."""
    crowd = Store(plan, tmp_path, background=True)
    try:
        crowd.campaigns.save_campaign(_campaign())
        shoppers = [crowd.shopper(offers=True) for _ in range(30)]
        for shopper in shoppers:
            crowd.walk(shopper, ["menswear", "denim", "menswear", "denim"])
        assert crowd.engine.drain()
        for shopper in shoppers:
            assert len(crowd.delivery.offers_after(shopper, 0, 10)) == 1
        outcomes = Counter(d.outcome for d in crowd.engine.decisions(campaign_id="hello"))
        assert outcomes == {"sent": 30, "capped_visit": 30}
    finally:
        crowd.engine.close()
        crowd.delivery.close()


def test_without_offer_consent_no_offer_is_sent_and_the_log_says_why(store: Store) -> None:
    store.campaigns.save_campaign(_campaign())
    shopper = store.shopper(offers=False)
    store.walk(shopper, ["entrance", "menswear", "denim"])
    assert store.delivery.offers_after(shopper, 0, 100) == []
    (decision,) = store.engine.decisions(shopper_id=shopper)
    assert decision.outcome == "no_consent"


def test_not_a_shopper_is_ignored(store: Store) -> None:
    store.campaigns.save_campaign(_campaign())
    store.walk("ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1", ["denim"])
    assert store.engine.decisions() == []


def test_held_out_shoppers_get_nothing_and_form_the_control_group(store: Store) -> None:
    store.campaigns.save_campaign(_campaign(holdout_fraction=0.5))
    shoppers = [store.shopper(offers=True) for _ in range(40)]
    for s in shoppers:
        store.walk(s, ["menswear", "denim"])
    sent = {
        d.shopper_id for d in store.engine.decisions(campaign_id="hello") if d.outcome == "sent"
    }
    held = {
        d.shopper_id for d in store.engine.decisions(campaign_id="hello") if d.outcome == "held_out"
    }
    assert sent and held and not sent & held and len(sent | held) == 40
    for s in held:
        assert store.delivery.offers_after(s, 0, 10) == []
    # every treated shopper buys the jeans, no control shopper does
    for s in sent:
        store.shoppers.add_profile_events(
            s,
            [
                ProfileEventIn(
                    type="purchase",
                    gtin="09506000134376",
                    channel="pos",
                    at_ms=T0 + 60_000,
                    amount=79.0,
                )
            ],
        )
    (figures,) = campaign_report(
        store.campaigns.campaigns(STORE),
        store.decisions,
        store.offers.campaign_counts,
        store.shoppers,
    )
    assert figures.treated_shoppers == len(sent) and figures.control_shoppers == len(held)
    assert figures.treated_converted == len(sent) and figures.control_converted == 0
    assert figures.lift["absolute"] == pytest.approx(1.0)
    assert 0 < figures.lift["absolute_low"] < 1.0
    assert figures.lift_words.startswith("likely lifted purchases, by about 100 points")
    assert figures.not_sent == "" and figures.held_back_now is None


def test_the_report_says_why_offers_were_not_sent(store: Store) -> None:
    """Issue 16: "triggered 42 / sent 0" with no reason. The report gives the
    decision log's top refusals and what holds the campaign back now, on the
    store's clock (T0 is 11:00 in Paris, inside the 10:00-12:00 quiet hours)."""
    store.campaigns.save_campaign(
        _campaign(conditions={"quiet_hours": [{"start": "10:00", "end": "12:00"}]})
    )
    shoppers = [store.shopper(offers=True) for _ in range(3)]
    for s in shoppers:
        store.walk(s, ["menswear", "denim"])
    store.walk(store.shopper(offers=False), ["menswear", "denim"])
    logged = Counter(d.outcome for d in store.engine.decisions(campaign_id="hello"))
    assert logged == {"quiet_hours": 3, "no_consent": 1}
    (figures,) = campaign_report(
        store.campaigns.campaigns(STORE),
        store.decisions,
        store.offers.campaign_counts,
        store.shoppers,
        timezones={STORE: "Europe/Paris"},
        clock_ms=lambda: T0,
    )
    assert figures.sent == 0 and figures.triggered == 4
    assert figures.not_sent == "quiet hours: 3 · no consent to offers or location: 1"
    assert figures.held_back_now == "quiet hours now (10:00–12:00, 11:00 store time)"
    assert figures.lift_words.startswith("not enough data yet to tell")
    (later,) = campaign_report(
        store.campaigns.campaigns(STORE),
        store.decisions,
        store.offers.campaign_counts,
        store.shoppers,
        timezones={STORE: "Europe/Paris"},
        clock_ms=lambda: T0 + 2 * 3_600_000,
    )
    assert later.held_back_now is None


def test_a_campaign_for_an_unknown_zone_is_rejected_with_the_field(store: Store) -> None:
    with pytest.raises(CampaignRejected, match=r"trigger\.zones"):
        store.campaigns.save_campaign(
            _campaign(trigger={"kind": "zone_entered", "zones": ["dnim"]})
        )
