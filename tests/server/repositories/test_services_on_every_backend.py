"""The services over each backend's ports: the same traffic gives the same
answers in memory, on SQLite and on PostgreSQL, so a service test can run on
the in-memory storage."""

from collections.abc import Iterator

import pytest

from omnizone.paths import shipped_config
from omnizone.server.adapters.memory import MemoryStorage
from omnizone.server.domain.identity import Purpose
from omnizone.server.domain.offers import load_catalog
from omnizone.server.service.analytics import AnalyticsService
from omnizone.server.service.campaign_report import campaign_report
from omnizone.server.service.campaigns import CampaignAdmin
from omnizone.server.service.delivery import OfferDelivery
from omnizone.server.service.ingest import IngestService, Outcome
from omnizone.server.service.layouts import LayoutRejected, LayoutService, apply_saved_layouts
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.offer_engine import OfferEngine
from omnizone.server.service.queries import StoreQueries
from omnizone.server.service.running_stores import RunningStores
from omnizone.server.service.shoppers import ProfileEventIn, ShopperService
from omnizone.store import StorePlan
from tests.server.conftest import DEVICE_A, STORE, T0, ble
from tests.server.offers.test_engine import T0 as OFFER_T0
from tests.server.offers.test_engine import _campaign

from .conftest import Storage


def test_ingest_and_the_store_queries(plan: StorePlan, storage: Storage) -> None:
    service = IngestService({plan.id: plan}, storage.ingest)
    for t in range(15):
        outcome = service.handle(*ble("gw-shoes", t, T0 + t * 1000, {DEVICE_A: -60}), T0)
        assert outcome.outcome is Outcome.ACCEPTED
    for t in range(15, 30):
        service.handle(*ble("gw-denim", t, T0 + t * 1000, {DEVICE_A: -60}), T0)
    duplicate = service.handle(*ble("gw-shoes", 3, T0 + 3000, {DEVICE_A: -60}), T0)
    assert duplicate.outcome is Outcome.DUPLICATE
    assert service.handle("omnizone/v1/paris-rivoli/gw-shoes/ble", b"\x00", T0).outcome is (
        Outcome.DEAD_LETTERED
    )
    queries = StoreQueries({plan.id: plan}, storage.ingest, service.event_time)
    stats = queries.ingest_stats()
    assert (stats.ingested, stats.duplicates, stats.dead_lettered, stats.gaps) == (30, 1, 1, 0)
    summary = {s.zone: s for s in queries.zone_summaries(STORE)}
    assert summary["shoes"].visits == 1 and summary["shoes"].mean_dwell_s == 14.0
    occupancy = {z.zone: z.devices for z in queries.occupancy(STORE).zones}
    assert occupancy["denim"] == 1 and sum(occupancy.values()) == 1
    assert storage.ingest.dead_letters(5)[0].payload == b"\x00"
    assert len(storage.ingest.device_history(DEVICE_A)["sightings"]) == 30
    # a restart restores what ingest needs: presence and the highest seq per gateway
    again = IngestService({plan.id: plan}, storage.ingest)
    replayed = again.handle(*ble("gw-denim", 29, T0 + 29_000, {DEVICE_A: -60}), T0)
    assert replayed.outcome is Outcome.DUPLICATE
    assert storage.ingest.load_presence()[(STORE, DEVICE_A)].zone == "denim"


class Offers:
    """Shoppers, the offer engine and delivery over one backend's ports."""

    def __init__(self, plan: StorePlan, storage: Storage) -> None:
        self.storage = storage
        self.shoppers = ShopperService([STORE], storage.shoppers)
        self.delivery = OfferDelivery(storage.offers, clock=lambda: OFFER_T0 + 60_000)
        catalog = load_catalog(shipped_config("catalog/rivoli.yaml"), [plan])
        self.campaigns = CampaignAdmin({STORE: plan}, storage.campaigns, catalog)
        self.engine = OfferEngine(
            {STORE: plan},
            self.campaigns,
            storage.campaigns,
            catalog,
            self.shoppers,
            self.delivery.publish_many,
        )

    def shopper(self) -> str:
        registered = self.shoppers.register(STORE).shopper_id
        self.shoppers.set_consent(
            registered, {Purpose.PERSONALIZED_OFFERS: True, Purpose.LOCATION_ANALYTICS: True}
        )
        return registered

    def walk(self, shopper: str, zones: list[str | None], start_ms: int = OFFER_T0) -> None:
        for i, zone in enumerate(zones):
            at = start_ms + i * 1000
            self.engine.on_placement(STORE, ZonePlacement(shopper, zone, at, at, at - 40))


def _forget(_removed: int) -> None:
    """Erase listeners answer nothing; delivery says how many rows went."""


@pytest.fixture
def offers(plan: StorePlan, storage: Storage) -> Iterator[Offers]:
    built = Offers(plan, storage)
    yield built
    built.delivery.close()


def test_offers_decisions_and_the_campaign_report(offers: Offers) -> None:
    offers.campaigns.save_campaign(_campaign())
    ann, bob = offers.shopper(), offers.shopper()
    offers.walk(ann, ["entrance", "menswear", "denim", "denim", "menswear", "denim"])
    offers.walk(bob, ["entrance", "denim"])
    (offer,) = offers.delivery.offers_after(ann, 0, 100)
    assert offer.coupon_code.startswith("DENIM10-") and offer.seq == 1
    outcomes = sorted(d.outcome for d in offers.engine.decisions(shopper_id=ann))
    assert outcomes == ["capped_visit", "sent"]
    offers.delivery.ack(ann, 1)
    offers.delivery.redeem(STORE, offer.coupon_code.lower())
    offers.shoppers.add_profile_events(
        ann,
        [
            ProfileEventIn(
                type="purchase", gtin="09506000134376", channel="pos", at_ms=OFFER_T0 + 9000
            )
        ],
    )
    (figures,) = campaign_report(
        offers.campaigns.campaigns(STORE),
        offers.storage.campaigns,
        offers.storage.offers.campaign_counts,
        offers.shoppers,
        purchases=offers.storage.analytics.purchases_of,
    )
    assert (figures.triggered, figures.sent, figures.delivered, figures.redeemed) == (3, 2, 1, 1)
    assert (figures.treated_shoppers, figures.treated_converted) == (2, 1)

    # Within a range every figure is of the range: decisions and purchases
    # (before the delivery and the redemption, at the delivery's clock) ...
    def ranged(from_ms: int | None, to_ms: int | None) -> tuple[int, ...]:
        (f,) = campaign_report(
            offers.campaigns.campaigns(STORE),
            offers.storage.campaigns,
            offers.storage.offers.campaign_counts,
            offers.shoppers,
            purchases=offers.storage.analytics.purchases_of,
            from_ms=from_ms,
            to_ms=to_ms,
        )
        return (
            f.triggered,
            f.sent,
            f.delivered,
            f.redeemed,
            f.treated_shoppers,
            f.treated_converted,
        )

    assert ranged(OFFER_T0, OFFER_T0 + 9000) == (3, 2, 0, 0, 2, 0)  # bought at + 9000
    assert ranged(OFFER_T0, OFFER_T0 + 9001) == (3, 2, 0, 0, 2, 1)
    # ... and the receipts and redemptions made later, with no decision then.
    assert ranged(OFFER_T0 + 10_000, None) == (0, 0, 1, 1, 0, 0)
    # erasure: every part forgets the shopper
    offers.shoppers.subscribe_to_erasure(offers.storage.campaigns.erase_shopper)
    offers.shoppers.subscribe_to_erasure(lambda s: _forget(offers.delivery.erase_shopper(s)))
    offers.shoppers.erase(ann)
    assert offers.engine.decisions(shopper_id=ann) == []
    assert offers.delivery.offers_after(ann, 0, 100) == []
    assert offers.storage.shoppers.shopper(ann) is None
    assert [o.seq for o in offers.delivery.offers_after(bob, 0, 100)] == [1]


def test_a_restarted_engine_reads_its_campaigns_and_caps_back(
    plan: StorePlan, offers: Offers
) -> None:
    offers.campaigns.save_campaign(_campaign(limits={"per_campaign": 1}))
    ann = offers.shopper()
    offers.walk(ann, ["menswear", "denim"])
    restarted = Offers(plan, offers.storage)
    try:
        assert [c.id for c in restarted.campaigns.campaigns(STORE)] == ["hello"]
        restarted.walk(ann, ["menswear", "denim"], start_ms=OFFER_T0 + 3_600_000)
        assert len(restarted.delivery.offers_after(ann, 0, 100)) == 1  # capped across restarts
        last = restarted.engine.decisions(shopper_id=ann, limit=1)[0]
        assert last.outcome != "sent"
    finally:
        restarted.delivery.close()


def _walk_shoes_then_denim(service: IngestService) -> None:
    for t in range(15):
        service.handle(*ble("gw-shoes", t, T0 + t * 1000, {DEVICE_A: -60}), T0)
    for t in range(15, 30):
        service.handle(*ble("gw-denim", t, T0 + t * 1000, {DEVICE_A: -60}), T0)


def test_the_analytics_read_the_same_on_every_backend(plan: StorePlan, storage: Storage) -> None:
    stores = {plan.id: plan}
    _walk_shoes_then_denim(IngestService(stores, storage.ingest))
    reference = MemoryStorage()
    _walk_shoes_then_denim(IngestService(stores, reference.ingest))
    analytics = AnalyticsService(stores, storage.analytics)
    expected = AnalyticsService(stores, reference.analytics)
    assert analytics.index(STORE) == expected.index(STORE)
    assert analytics.index(STORE)["first_event_ms"] is not None
    visits = analytics.view(STORE, "visits", T0 - 3_600_000, T0 + 3_600_000)
    shoes = next(z for z in visits["zones"] if z["zone"] == "shoes")
    assert shoes["visits"] == 1
    for view in ("presence", "dwell", "footfall", "visits", "transitions", "routes", "funnel"):
        assert analytics.view(STORE, view, T0 - 3_600_000, T0 + 3_600_000) == expected.view(
            STORE, view, T0 - 3_600_000, T0 + 3_600_000
        ), view


def test_saved_layouts_apply_at_once_and_at_the_next_start(
    plan: StorePlan, storage: Storage
) -> None:
    stores = {plan.id: plan}
    running = RunningStores(stores)
    told: list[str] = []
    running.subscribe(lambda new: told.append(new.store.name))
    layouts = LayoutService(running, {plan.id: None}, storage.layouts, clock_ms=lambda: T0)
    body = plan.model_dump(mode="json")
    body["store"]["name"] = "Rivoli, rearranged"
    saved = layouts.save(STORE, body, None, "new shelves")
    assert saved.version == 1 and not layouts.status(STORE).pending_restart
    assert layouts.status(STORE).running_version == 1
    assert running[STORE].store.name == "Rivoli, rearranged" and told == ["Rivoli, rearranged"]
    # another server on the same database still runs what it started with
    elsewhere = LayoutService(RunningStores(stores), {plan.id: None}, storage.layouts)
    assert elsewhere.status(STORE).pending_restart
    plans, versions = apply_saved_layouts(stores, storage.layouts)
    assert versions == {STORE: 1} and plans[STORE].store.name == "Rivoli, rearranged"
    restarted = LayoutService(RunningStores(plans), versions, storage.layouts)
    assert not restarted.status(STORE).pending_restart
    assert [v.note for v in restarted.versions(STORE)] == ["new shelves"]


def test_a_layout_the_radio_files_do_not_fit_is_refused_and_nothing_changes(
    plan: StorePlan, storage: Storage
) -> None:
    running = RunningStores({plan.id: plan})
    layouts = LayoutService(
        running,
        {plan.id: None},
        storage.layouts,
        radio_problems=lambda _store, _plan: ["localization: cal.yaml: anchors.gw-x: not in"],
    )
    with pytest.raises(LayoutRejected) as refused:
        layouts.save(STORE, plan.model_dump(mode="json"), None)
    assert refused.value.problems == ["localization: cal.yaml: anchors.gw-x: not in"]
    assert layouts.versions(STORE) == [] and running[STORE] is plan
