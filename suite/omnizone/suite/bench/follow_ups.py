"""``omnizone bench follow-ups``: the cost of follow-ups after the visit on
one store's database (docs/benchmarks.md): visits that end and schedule a
follow-up, the runner deciding and delivering the due ones (Web Push path,
no push service: the offer is stored and handed over), and the campaign
report with the follow-up figures. CPU time (``time.process_time``) is the
per-core cost; wall time is shown too."""

import tempfile
import time
from pathlib import Path
from typing import Any

from omnizone.paths import shipped_config

HOUR_MS = 3_600_000


def run_follow_ups_bench(shoppers: int = 2000, database_url: str | None = None) -> dict[str, Any]:
    from omnizone.server.adapters.campaign_db import CampaignRepository
    from omnizone.server.adapters.db import SqlRepository
    from omnizone.server.adapters.follow_up_db import FollowUpRepository
    from omnizone.server.adapters.offer_db import OfferRepository
    from omnizone.server.adapters.shopper_db import ShopperRepository
    from omnizone.server.domain.identity import Purpose
    from omnizone.server.domain.offers import Campaign, load_catalog
    from omnizone.server.service.campaign_report import campaign_report
    from omnizone.server.service.campaigns import CampaignAdmin
    from omnizone.server.service.delivery import OfferDelivery
    from omnizone.server.service.follow_ups import FollowUpService
    from omnizone.server.service.locators import ZonePlacement
    from omnizone.server.service.offer_engine import OfferEngine
    from omnizone.server.service.shoppers import ShopperService
    from omnizone.store import load_store

    if shoppers < 1:
        raise ValueError("--shoppers must be at least 1")
    plan = load_store(shipped_config("stores/rivoli.yaml"))
    store = plan.id
    with tempfile.TemporaryDirectory() as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        db = SqlRepository.from_url(url)
        t0 = 1_800_000_000_000
        clock = [t0]
        people = ShopperService([store], ShopperRepository(db.engine))
        offers = OfferRepository(db.engine)
        delivery = OfferDelivery(offers, clock=lambda: clock[0])
        decisions = CampaignRepository(db.engine)
        catalog = load_catalog(shipped_config("catalog/rivoli.yaml"), [plan])
        campaigns = CampaignAdmin({store: plan}, decisions, catalog)
        campaigns.save_campaign(
            Campaign.model_validate(
                {
                    "id": "bench-tried-back",
                    "name": "bench",
                    "store": store,
                    "trigger": {"kind": "tried_on_not_bought", "after": "2h"},
                    "content": {"title": "Still thinking?", "coupon_code": "BACK-{code}"},
                    "holdout_fraction": 0.2,
                }
            )
        )
        storage = FollowUpRepository(db.engine)
        service = FollowUpService(
            {store: plan},
            campaigns.campaigns,
            storage,
            decisions,
            catalog,
            people,
            offers,
            delivery.publish,
            clock=lambda: clock[0],
        )
        engine = OfferEngine(
            {store: plan},
            campaigns,
            decisions,
            catalog,
            people,
            delivery.publish_many,
            clock=lambda: clock[0],
            on_visits=service.observe,
        )
        ids = []
        for _ in range(shoppers):
            shopper = people.register(store).shopper_id
            people.set_consent(
                shopper, {Purpose.PERSONALIZED_OFFERS: True, Purpose.LOCATION_ANALYTICS: True}
            )
            ids.append(shopper)
        cpu, wall = time.process_time(), time.perf_counter()
        left = t0
        for i, shopper in enumerate(ids):
            start = t0 + i * 1000
            engine.on_placement(store, ZonePlacement(shopper, "fitting-room-1", start, start))
            engine.on_try_on(store, "rfid-fitting-1", "09506000134369", start + 100)
            left = start + 500
            engine.on_placement(store, ZonePlacement(shopper, None, left, left))
        visits_cpu, visits_wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu, wall = time.process_time(), time.perf_counter()
        run = service.run_due(left + 2 * HOUR_MS, limit=shoppers)
        run_cpu, run_wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu, wall = time.process_time(), time.perf_counter()
        (figures,) = campaign_report(
            campaigns.campaigns(store),
            decisions,
            offers.campaign_counts,
            people,
            follow_ups=storage.of_campaign,
        )
        report_cpu, report_wall = time.process_time() - cpu, time.perf_counter() - wall
        delivery.close()
        engine.close()
        db.close()
    follow_up = figures.follow_up or {}
    return {
        "shoppers": shoppers,
        "database": url.split(":", 1)[0],
        "scheduled": follow_up.get("scheduled"),
        "sent": run.sent,
        "held_out": run.held_out,
        "visits_cpu_ms_per_visit": round(1000 * visits_cpu / shoppers, 3),
        "visits_wall_s": round(visits_wall, 3),
        "run_cpu_ms_per_follow_up": round(1000 * run_cpu / max(run.claimed, 1), 3),
        "run_wall_s": round(run_wall, 3),
        "report_cpu_ms": round(1000 * report_cpu, 1),
        "report_wall_ms": round(1000 * report_wall, 1),
    }
