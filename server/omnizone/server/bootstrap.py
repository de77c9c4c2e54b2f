"""The server's composition root: the one place its parts are made and wired.

``build_server`` turns ``ServerSettings`` and the store plans into a
``ServerParts``: the repositories over one database, the services, the
campaign admin, the offer engine and delivery, who listens to whom, and the
HTTP API over all of it. ``ServerRuntime`` runs what it builds (the MQTT
connection, the background threads, uvicorn). ``omnizone report`` and the
benchmarks take the smaller pieces: ``open_storage`` for the repositories and
``build_reports`` for the analytics with the campaign report.

Nothing outside this module constructs a repository for the server or
subscribes one part to another, so this file is where to read how the
server hangs together.
"""

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from omnizone.contract import wall_clock_ms
from omnizone.paths import shipped_config
from omnizone.server.adapters import schema
from omnizone.server.adapters.analytics_db import AnalyticsRepository
from omnizone.server.adapters.campaign_db import CampaignRepository
from omnizone.server.adapters.capture_db import PassersByRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.event_db import EventRepository
from omnizone.server.adapters.follow_up_db import FollowUpRepository
from omnizone.server.adapters.heatmap_db import FloorCellRepository
from omnizone.server.adapters.insight_db import InsightRepository
from omnizone.server.adapters.layout_db import LayoutRepository
from omnizone.server.adapters.mqtt_ingest import MqttIngest
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.adapters.phone_db import PhoneSightingRepository
from omnizone.server.adapters.prediction_db import PredictionRepository
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.adapters.time_partitions import prepare_month_partitions
from omnizone.server.adapters.webpush import VapidKeys, WebPushChannel
from omnizone.server.domain.analytics.alerts import AlertEpisode
from omnizone.server.domain.identity import may_send_offer
from omnizone.server.domain.offers import Catalog, load_campaigns, load_catalog
from omnizone.server.entrypoints.alerts_api import alerts_router
from omnizone.server.entrypoints.analytics_api import analytics_router
from omnizone.server.entrypoints.api import RouterFactory, create_app
from omnizone.server.entrypoints.beacon_fleet_api import (
    BeaconFleetCollector,
    beacon_fleet_router,
)
from omnizone.server.entrypoints.campaign_api import campaign_router
from omnizone.server.entrypoints.dashboard import DashboardPart, mount_dashboard
from omnizone.server.entrypoints.events_api import events_router
from omnizone.server.entrypoints.heatmap_api import heatmap_router
from omnizone.server.entrypoints.insight_api import insight_router
from omnizone.server.entrypoints.limits import RateSettings
from omnizone.server.entrypoints.offers_api import offers_router
from omnizone.server.entrypoints.phone_api import phone_router
from omnizone.server.entrypoints.predictions_api import predictions_router
from omnizone.server.entrypoints.self_calibration_api import (
    SelfCalibrationCollector,
    self_calibration_router,
)
from omnizone.server.entrypoints.shopper_api import shopper_router
from omnizone.server.entrypoints.shopper_app import mount_shopper_app
from omnizone.server.entrypoints.survey_api import survey_router
from omnizone.server.service.alerts import AlertLoop, AlertsService
from omnizone.server.service.analytics import AnalyticsService
from omnizone.server.service.beacon_fleet import BeaconFleet
from omnizone.server.service.campaign_report import (
    CampaignFigures,
    CampaignReport,
    campaign_report,
)
from omnizone.server.service.campaigns import CampaignAdmin
from omnizone.server.service.delivery import DeliveredOffer, NewOffer, OfferDelivery
from omnizone.server.service.device_identity import RegisteredDevices
from omnizone.server.service.endpoints import EndpointGuard
from omnizone.server.service.event_stream import EventStream
from omnizone.server.service.follow_ups import FollowUpService
from omnizone.server.service.gateways import GatewayAdmin
from omnizone.server.service.heatmap import FloorPresence, HeatmapService
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.insight import InsightService
from omnizone.server.service.layouts import LayoutService, apply_saved_layouts
from omnizone.server.service.live_map import LiveMap
from omnizone.server.service.locators import LocatorKind, make_locator, make_locators
from omnizone.server.service.offer_engine import OfferEngine
from omnizone.server.service.passers_by import PasserByCounter
from omnizone.server.service.phone_sightings import PhoneSightings
from omnizone.server.service.predictions import PredictionService
from omnizone.server.service.queries import StoreQueries
from omnizone.server.service.radio_reload import LocalizerReload, RadioWatch
from omnizone.server.service.radio_setup import radio_setups
from omnizone.server.service.retention import SightingRetention
from omnizone.server.service.running_stores import RunningStores
from omnizone.server.service.self_calibration import SelfCalibration, SelfCalibrationJob
from omnizone.server.service.shoppers import ShopperNotFound, ShopperService
from omnizone.server.service.surveys import SurveyService, default_survey_dir
from omnizone.server.settings import ServerSettings, check_api_keys, check_secrets
from omnizone.store import StorePlan, load_store

log = logging.getLogger(__name__)


# -- storage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    """The repositories of one database, all on the same engine."""

    sql: SqlRepository  # ingest: messages, visits, presence, gateways
    layouts: LayoutRepository
    shoppers: ShopperRepository
    campaigns: CampaignRepository  # campaigns, the decision log, store visits
    offers: OfferRepository
    analytics: AnalyticsRepository
    phones: PhoneSightingRepository  # what listening phones heard (issue 15)
    follow_ups: FollowUpRepository  # follow-ups after the visit (issue 18, point 10)

    @classmethod
    def over(cls, sql: SqlRepository) -> "Storage":
        """Every repository over ``sql``'s engine; each makes its tables if missing."""
        engine = sql.engine
        return cls(
            sql=sql,
            layouts=LayoutRepository(engine),
            shoppers=ShopperRepository(engine),
            campaigns=CampaignRepository(engine),
            offers=OfferRepository(engine),
            analytics=AnalyticsRepository(engine),
            phones=PhoneSightingRepository(engine),
            follow_ups=FollowUpRepository(engine),
        )

    def close(self) -> None:
        self.sql.close()


def open_storage(database_url: str) -> Storage:
    """The database at ``database_url``, its schema upgraded by the migrations
    before any table is touched (as ``omnizone server migrate`` would)."""
    sql = SqlRepository.from_url(database_url, create=False)
    try:
        schema.upgrade(sql.engine)
        # PostgreSQL's sightings by day (0015): today's and the next days' partitions;
        # visits and offer decisions by month (0016): this month's and the next.
        sql.prepare_sighting_partitions(wall_clock_ms())
        prepare_month_partitions(sql.engine, wall_clock_ms())
        return Storage.over(sql)
    except BaseException:
        sql.close()
        raise


def load_stores(settings: ServerSettings) -> dict[str, StorePlan]:
    """The store files the settings name, by store id."""
    plans = [load_store(path) for path in settings.store_files]
    return {plan.id: plan for plan in plans}


# -- the read side: analytics and the campaign report -----------------------------------


def stored_campaign_report(
    storage: Storage,
    shoppers: ShopperService,
    stores: Mapping[str, StorePlan] | None = None,
) -> CampaignReport:
    """The campaign report (``service/campaign_report.py``) of a store's stored
    campaigns, purchases read for all shoppers at once. The one wiring of the
    report: the campaign routes and the analytics' campaigns view answer
    with it alike. ``stores`` give the time zones for "quiet hours now"."""

    def report(
        store: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> list[CampaignFigures]:
        mine = [c for c in storage.campaigns.campaigns() if c.store == store]
        purchases: Callable[[Sequence[str]], Mapping[str, Sequence[tuple[str, int]]]]
        purchases = storage.analytics.purchases_of
        if from_ms is not None or to_ms is not None:
            # A conversion is a purchase after a decision of the range and before
            # its end: the range's purchases, read once for every campaign.
            purchases = functools.partial(
                _among, storage.analytics.purchases_between(from_ms, to_ms)
            )

        return campaign_report(
            mine,
            storage.campaigns,
            storage.offers.campaign_counts,
            shoppers,
            from_ms=from_ms,
            to_ms=to_ms,
            purchases=purchases,
            timezones={k: p.store.timezone for k, p in (stores or {}).items()},
            follow_ups=storage.follow_ups.of_campaign,
        )

    return report


def _among(
    bought: Mapping[str, Sequence[tuple[str, int]]], shoppers: Sequence[str]
) -> Mapping[str, Sequence[tuple[str, int]]]:
    return {s: bought[s] for s in shoppers if s in bought}


@dataclass(frozen=True)
class StoreReports:
    """What the store's reports read: the plans as they run, the analytics
    views and the campaign report."""

    stores: RunningStores  # with the newest layouts saved in the dashboard
    layout_versions: Mapping[str, int | None]  # the saved layout each runs (None: the file)
    shoppers: ShopperService
    campaign_report: CampaignReport
    analytics: AnalyticsService
    insight: InsightService  # issue 18; leaves staff out of ``analytics`` too
    predictions: PredictionService  # issue 18, point 9
    heatmap: HeatmapService | None = None  # issue 18 point 6: the floor heatmap


def build_reports(
    storage: Storage,
    stores: Mapping[str, StorePlan],
    *,
    shoppers: ShopperService | None = None,
    catalog: Catalog | None = None,
) -> StoreReports:
    """The read side over ``storage``. ``shoppers``: the server's own; without
    it one is made that only reads (``omnizone report``, the benchmarks)."""
    plans, versions = apply_saved_layouts(stores, storage.layouts)
    running = RunningStores(plans)
    if shoppers is None:
        shoppers = ShopperService(list(running), storage.shoppers)
    report = stored_campaign_report(storage, shoppers, running)
    analytics = AnalyticsService(running, storage.analytics, report)
    analytics.count_passers_by(PassersByRepository(storage.sql.engine))  # capture rate
    insight = InsightService(
        analytics,
        storage.analytics,
        InsightRepository(storage.sql.engine, storage.analytics.days),
    )
    predictions = PredictionService(
        running,
        storage.analytics,
        PredictionRepository(storage.sql.engine),
        catalog or load_catalog(shipped_config("catalog/rivoli.yaml")),
    )
    return StoreReports(
        stores=running,
        layout_versions=versions,
        shoppers=shoppers,
        campaign_report=report,
        analytics=analytics,
        insight=insight,
        heatmap=HeatmapService(running, FloorCellRepository(storage.sql.engine)),
        predictions=predictions,
    )


def reports_app(
    storage: Storage, reports: StoreReports, api_keys: Mapping[str, Iterable[str]]
) -> FastAPI:
    """The API of the read side only: the stores, their stored events and the
    analytics, no ingest and no offers (the analytics benchmark)."""
    return create_app(
        StoreQueries(reports.stores, storage.sql),
        api_keys,
        routers=[
            lambda require: analytics_router(reports.analytics, require),
            lambda require: insight_router(reports.insight, require),
            *_heatmap_routes(reports),
            lambda require: predictions_router(
                reports.predictions,
                require,
                reports.shoppers.authenticate,
                lambda shopper: reports.shoppers.shopper(shopper).store,
            ),
        ],
    )


def stored_alert_history(storage: Storage) -> Callable[[str, int, int], list[AlertEpisode]]:
    """The alert history from the stored log, for ``omnizone report``."""
    from omnizone.server.adapters.alert_db import AlertRepository
    from omnizone.server.service.alerts import stored_history

    alert_log = AlertRepository(storage.sql.engine)
    return lambda store, from_ms, to_ms: stored_history(alert_log, store, from_ms, to_ms, to_ms)


def build_alerts(
    settings: ServerSettings,
    stores: Mapping[str, StorePlan],
    storage: Storage,
    gateways: GatewayAdmin,
    event_time: Callable[[str], int | None],
) -> tuple[AlertsService, AlertLoop]:
    """Store alerts (issue 18 point 7) over the stored stays and the fleet, with
    their rules and log in the database, evaluated by a loop every
    ``alert_check_interval_s`` and sent from the log to a signed webhook."""
    from omnizone.contract.timefmt import wall_clock_ms
    from omnizone.server.adapters.alert_db import AlertRepository
    from omnizone.server.adapters.signed_webhook import SignedWebhook
    from omnizone.server.domain.analytics.stays import Stays
    from omnizone.server.service.alerts import AlertDelivery
    from omnizone.server.service.endpoints import EndpointGuard
    from omnizone.server.service.queries import plan_of

    stored = AlertRepository(storage.sql.engine)

    def stays_of(store: str, from_ms: int, to_ms: int) -> Stays:
        plan = plan_of(stores, store)
        rows = storage.analytics.stays(store, from_ms, to_ms, [b.device for b in plan.beacons])
        return Stays.from_rows(rows, [z.id for z in plan.zones])

    service = AlertsService(
        lambda store: plan_of(stores, store),
        stays_of,
        gateways.fleet,
        lambda store: event_time(store) or wall_clock_ms(),
        stored=stored,
        clock_ms=wall_clock_ms,
    )
    after = []
    if settings.alert_webhook_url and settings.alert_webhook_secret is not None:
        hook = SignedWebhook(
            settings.alert_webhook_url,
            settings.alert_webhook_secret.get_secret_value().encode(),
            guard=EndpointGuard(settings.push_endpoint_allow),
        )
        after.append(AlertDelivery(stored, hook.send).deliver_once)
    loop = AlertLoop(service, lambda: list(stores), settings.alert_check_interval_s, after)
    return service, loop


def build_event_stream(
    settings: ServerSettings,
    stores: Mapping[str, StorePlan],
    storage: Storage,
    shoppers: ShopperService,
    outbox: "EventRepository",
) -> tuple[EventStream, Callable[[], int]]:
    """The event stream over the outbox (issue 18 point 8), its webhooks signed
    with ``event_webhook_secret``; and the outbox's (and alert log's) pruning."""
    from omnizone.server.adapters.alert_db import AlertRepository
    from omnizone.server.adapters.signed_webhook import DeliveryResult, SignedWebhook

    guard = EndpointGuard(settings.push_endpoint_allow)
    secret = settings.event_webhook_secret

    def sender_for(url: str) -> Callable[..., DeliveryResult]:
        assert secret is not None
        return SignedWebhook(url, secret.get_secret_value().encode(), guard=guard).send

    postgres = storage.sql.engine.dialect.name != "sqlite"
    stream = EventStream(
        lambda: list(stores),
        outbox,
        lambda shopper: may_send_offer(shoppers.consent(shopper)),
        guard=guard,
        sender_for=sender_for if secret is not None else None,
        settle_ms=2000 if postgres else 0,  # sequence numbers may commit out of order there
    )
    keep_ms = round(settings.event_outbox_days * 86_400_000)
    alert_log = AlertRepository(storage.sql.engine)
    last = [0]

    def prune() -> int:
        now = wall_clock_ms()
        if now - last[0] < 3_600_000:
            return 0
        last[0] = now
        return outbox.prune(now - keep_ms) + alert_log.prune(now - keep_ms)

    return stream, prune


# -- the whole server ------------------------------------------------------------------


@dataclass
class ServerParts:
    """One server's parts, made and wired by ``build_server``.

    Constructed is not running: the MQTT connection, the sighting retention,
    the radio files' watch and the database's background checkpoints are the
    runtime's to start. The
    offer engine and delivery run their own threads from the start;
    ``close_live`` stops them and ends the live sockets (uvicorn waits for
    those), ``close`` then closes the database.
    """

    settings: ServerSettings
    stores: RunningStores  # as they run: saved layouts applied, live
    storage: Storage
    shoppers: ShopperService
    campaigns: CampaignAdmin
    engine: OfferEngine
    delivery: OfferDelivery
    vapid: VapidKeys
    ingest: IngestService
    mqtt: MqttIngest
    queries: StoreQueries
    gateways: GatewayAdmin
    campaign_report: CampaignReport
    analytics: AnalyticsService
    dashboard: DashboardPart
    surveys: SurveyService
    retention: SightingRetention | None
    dead_letter_retention: SightingRetention | None
    radio: LocalizerReload  # rebuilds a store's localizer on a saved layout or new files
    radio_watch: RadioWatch | None  # looks at the files; None: radio_check_interval_s 0
    app: FastAPI
    self_calibration: SelfCalibrationJob | None = None
    #: A chain worker's ingest for some of the stores (docs/scaling.md): same
    #: identity, localizer kind and listeners as ``ingest``, built on demand.
    ingest_for: Callable[[Mapping[str, StorePlan]], IngestService] | None = None
    #: Told of every offer stored, after delivery (a chain worker's fan-out).
    offer_taps: list[Callable[[Sequence[DeliveredOffer]], None]] = field(default_factory=list)
    beacons: BeaconFleet | None = None

    phones: PhoneSightings | None = None
    #: Issue 18 point 7: evaluates the alerts every ``alert_check_interval_s``.
    alert_loop: AlertLoop | None = None
    follow_ups: FollowUpService | None = None  # follow-ups after the visit (issue 18)
    floor_presence: FloorPresence | None = None  # the heatmap's cells (issue 18 point 6)
    _live_closed: bool = field(default=False, repr=False)

    def close_live(self) -> None:
        """Decide what is queued, stop delivery, end the offer and live-map sockets."""
        if self._live_closed:
            return
        self._live_closed = True
        if self.self_calibration is not None:
            self.self_calibration.close()
        self.engine.close()
        if self.follow_ups is not None:
            self.follow_ups.close()
        self.delivery.close()
        self.dashboard.close()

    def close(self) -> None:
        """Everything ``close_live`` does, then close the database. Stop the
        runtime's threads (MQTT, retention) first: they write to it."""
        self.close_live()
        if self.floor_presence is not None:
            self.floor_presence.flush()  # the hours still held in memory
        self.storage.close()


def build_server(
    settings: ServerSettings, stores: Mapping[str, StorePlan] | None = None
) -> ServerParts:
    """Every part of one server, wired. ``stores`` None: the settings' store
    files. Raises before anything is made when the API keys are unusable;
    whatever was made before a later failure is closed again."""
    s = settings
    keys = check_api_keys(s.api_keys)
    check_secrets(s)
    plans = dict(stores) if stores is not None else load_stores(s)
    with ExitStack() as undo:
        storage = open_storage(s.database_url)
        undo.callback(storage.close)

        secret = s.webhook_secret.get_secret_value().encode() if s.webhook_secret else None
        shoppers = ShopperService(
            list(plans), storage.shoppers, eid_policy=s.eid_policy(), webhook_secret=secret
        )
        reports = build_reports(storage, plans, shoppers=shoppers, catalog=_catalog(s, plans))
        running = reports.stores  # one mapping every part reads; a saved layout replaces
        # What each store's localizer learns from (its survey, its calibration):
        # read now, so a bad file stops the start naming its lines, before any
        # thread runs. The store file says which files (a layout saved in the
        # dashboard is the floor, not the radio); they are checked against the
        # running plan.
        radio_files = {store: plans[store].localization for store in running}
        radio = radio_setups(
            {
                store: plan.model_copy(update={"localization": radio_files[store]})
                for store, plan in running.items()
            }
        )
        for store, setup in radio.items():
            if setup.survey is not None:
                log.info("%s: survey %s, %d samples", store, setup.survey_file, len(setup.survey))

        catalog = _catalog(s, running)
        campaigns = CampaignAdmin(running, storage.campaigns, catalog)
        for path in _campaign_files(s):
            found = [c for c in load_campaigns(path, catalog=catalog) if c.store in running]
            log.info("%s: %d campaigns, %d new", path, len(found), campaigns.seed(found))

        vapid = VapidKeys(_vapid_path(s))
        guard = EndpointGuard(s.push_endpoint_allow)
        # A chain worker holds no shopper's socket: it stores offers and fans
        # them out to the API nodes, and sends the background push itself
        # when the phone did not acknowledge on any node within the timeout
        # (the API nodes only hand offers to their sockets). Every node reads
        # the same VAPID key (OMNIZONE_VAPID_KEY_FILE, docs/scaling.md).
        push = [WebPushChannel(storage.offers, vapid, s.vapid_subject, guard=guard)]
        delivery = OfferDelivery(
            storage.offers,
            channels=push,
            sessions_elsewhere=s.role == "worker",
            ack_timeout_s=s.offer_ack_timeout_s,
            endpoint_guard=guard,
            may_deliver=lambda shopper: may_send_offer(shoppers.consent(shopper)),
        )
        undo.callback(delivery.close)
        offer_taps: list[Callable[[Sequence[DeliveredOffer]], None]] = []

        def publish_offers(offers: Sequence[NewOffer]) -> list[DeliveredOffer]:
            stored = delivery.publish_many(offers)
            for tap in offer_taps:
                tap(stored)
            return stored

        follow_ups = build_follow_ups(s, running, campaigns, storage, catalog, shoppers, delivery)
        undo.callback(follow_ups.close)
        engine = OfferEngine(
            running,
            campaigns,
            storage.campaigns,
            catalog,
            shoppers,
            publish_offers,
            background=True,
            on_visits=follow_ups.observe,
            likely=reports.predictions.likely,
        )
        undo.callback(engine.close)
        if s.role != "worker":  # claims with a lease: several API nodes may run it
            follow_ups.start()

        identity = RegisteredDevices(shoppers)
        shoppers.subscribe_to_devices(identity.update)
        self_fit = SelfCalibration(running)  # the gateways hearing one another
        beacons = BeaconFleet(running)  # the store's fixed beacons, as gateways hear them
        # Passers-by at the street front, counted not tracked (issue 18 point 4).
        passers_by = PasserByCounter(running, PassersByRepository(storage.sql.engine))
        # The floor heatmap's cells (issue 18 point 6): consented shoppers
        # only, staff left out when an hour is written.
        floor_presence = FloorPresence(
            running,
            FloorCellRepository(storage.sql.engine),
            may_store=identity.may_store_location,
            exclude=reports.insight.staff_ids,
        )
        if reports.heatmap is not None:  # a heatmap asked for now has the hour under way
            reports.heatmap.read_after(floor_presence.flush)

        def ingest_for(
            subset: Mapping[str, StorePlan], kind: LocatorKind | None = None
        ) -> IngestService:
            return IngestService(
                subset,
                storage.sql,
                locators=make_locators(
                    subset, kind or s.localizer, radio={k: radio[k] for k in subset if k in radio}
                ),
                identity=identity,
                placement_listeners=[engine.on_placement, floor_presence.on_placement],
                try_on_listeners=[engine.on_try_on],
                dead_letter_bytes=s.dead_letter_payload_bytes,
                gateway_hearing_listeners=[self_fit.observe, beacons.observe],
                passers_by=passers_by,
            )

        # In a chain this process's own ingest takes no gateway message (a
        # worker builds one per partition): the cheap locator, not a radio map
        # per store of the chain.
        ingest = ingest_for(running, "nearest" if s.role != "all" else None)
        beacons.set_clock(ingest.heard_span)
        # A saved layout or a rewritten survey or calibration rebuilds the
        # store's localizer inside ingest, before the other parts see the plan
        # (docs/architecture.md, "One running plan per store").
        reload = LocalizerReload(
            ingest,
            running,
            radio_files,
            lambda plan, setup: make_locator(plan, s.localizer, radio=setup),
        )
        running.subscribe(reload.on_plan)
        radio_watch = (
            RadioWatch(reload.check_files, s.radio_check_interval_s)
            if s.radio_check_interval_s > 0
            else None
        )
        running.subscribe(self_fit.replace_plan)  # gateways may have moved
        running.subscribe(beacons.replace_plan)
        self_calibration = SelfCalibrationJob(
            self_fit,
            plans,  # the store file says whether self-calibration is applied
            reload.use_calibration,  # kept across saved layouts and new files
        )
        self_calibration.start()
        undo.callback(self_calibration.close)
        # What each part holds about a shopper goes with the shopper, and comes
        # with the export (docs/identity.md). The order matters: the shopper is
        # tombstoned first (ShopperService.erase), then ingest and the engine
        # wait for their work in flight, and only then are the rows deleted,
        # so nothing written on the way outlives the deletes; last, the files
        # are scrubbed.
        shoppers.subscribe_to_erasure(ingest.forget_device)
        shoppers.subscribe_to_erasure(floor_presence.forget)
        shoppers.subscribe_to_erasure(engine.forget_shopper)
        shoppers.subscribe_to_erasure(follow_ups.forget_shopper)  # its decisions, before the log's
        shoppers.subscribe_to_erasure(reports.predictions.forget_shopper)
        shoppers.subscribe_to_erasure(storage.sql.erase_device)
        shoppers.subscribe_to_erasure(lambda shopper: _erased(delivery.erase_shopper(shopper)))
        shoppers.subscribe_to_erasure(storage.campaigns.erase_shopper)
        # Phones that listen (issue 15): their beacon windows join ingest's
        # filter; the rows go with the shopper, and come with the export.
        phones = PhoneSightings(
            running,
            storage.phones,
            ingest,
            may_store_location=identity.may_store_location,
            shopper_store=lambda shopper: _shopper_store(shoppers, shopper),
            clock=wall_clock_ms,
            store_clock=ingest.event_time,
        )
        shoppers.subscribe_to_erasure(lambda shopper: _erased(storage.phones.erase_device(shopper)))
        shoppers.subscribe_to_erasure(phones.forget)
        shoppers.subscribe_to_scrub(lambda: _scrubbed(storage.sql.scrub_deleted()))
        shoppers.add_export_section("location", storage.sql.device_history)
        shoppers.add_export_section("presence", storage.sql.device_presence)
        shoppers.add_export_section("offers", delivery.export_shopper)
        shoppers.add_export_section("offer_decisions", storage.campaigns.export_shopper)
        shoppers.add_export_section("store_visits", storage.campaigns.export_store_visits)
        shoppers.add_export_section(
            "predictions",
            lambda shopper: reports.predictions.export_shopper(
                shoppers.shopper(shopper).store, shopper
            ),
        )
        shoppers.add_export_section("beacon_sightings", storage.phones.device_sightings)
        shoppers.add_export_section("beacon_batches", storage.phones.device_batches)
        staff = InsightRepository(storage.sql.engine)  # staff_devices (issue 18)
        shoppers.subscribe_to_erasure(lambda shopper: _erased(staff.erase_device(shopper)))
        # The daily roll-up of the stays (issue 18, speed): days naming the shopper.
        shoppers.subscribe_to_erasure(
            lambda shopper: _erased(storage.analytics.erase_device(shopper))
        )
        shoppers.add_export_section("staff_devices", staff.device_staff)
        shoppers.subscribe_to_erasure(lambda shopper: _erased(follow_ups.erase_shopper(shopper)))
        shoppers.add_export_section("follow_ups", follow_ups.export_shopper)

        mqtt = MqttIngest(
            ingest,
            host=s.mqtt_host,
            port=s.mqtt_port,
            username=s.mqtt_username,
            password=s.mqtt_password.get_secret_value() if s.mqtt_password else None,
            tls_ca=s.mqtt_tls_ca,
            client_id=s.mqtt_client_id,
            batch_max=s.ingest_batch_max,
            batch_wait_ms=s.ingest_batch_wait_ms,
        )
        # The guided survey reads the staff phone's raw windows through ingest,
        # and writes where the store file points (radio_reload picks them up).
        surveys = SurveyService(
            running,
            {store: plan.localization for store, plan in plans.items()},
            s.survey_dir or default_survey_dir(s.database_url),
        )
        ingest.tap_windows(surveys)
        queries = StoreQueries(running, storage.sql, ingest.event_time)
        gateways = GatewayAdmin(running, storage.sql, mqtt.publish_retained)
        alerts, alert_loop = build_alerts(s, running, storage, gateways, ingest.event_time)
        stream_outbox = EventRepository(storage.sql.engine)
        stream, prune_stream = build_event_stream(s, running, storage, shoppers, stream_outbox)
        alert_loop.add_step(stream.deliver_once)
        alert_loop.add_step(prune_stream)
        # the hour's product model, fitted before anyone asks (issue 18 point 9)
        alert_loop.add_step(reports.predictions.warm)
        offer_taps.append(stream.on_offers)
        delivery.opened_listeners.append(stream.on_opened)
        delivery.redeemed_listeners.append(stream.on_redeemed)
        shoppers.subscribe_to_erasure(lambda shopper: _erased(stream_outbox.erase_device(shopper)))
        shoppers.add_export_section("stream_events", stream_outbox.device_events)
        dashboard = DashboardPart(
            keys,
            LayoutService(
                running, reports.layout_versions, storage.layouts, radio_problems=reload.problems
            ),
            LiveMap(running, ingest.live, ingest.event_time, received_ms=ingest.last_received_ms),
        )
        undo.callback(dashboard.close)

        def prune_sightings(before: int) -> int:
            """Each round also makes the coming days' and months' partitions
            (PostgreSQL, 0015 and 0016)."""
            storage.sql.prepare_sighting_partitions(wall_clock_ms())
            prepare_month_partitions(storage.sql.engine, wall_clock_ms())
            return storage.sql.prune_sightings(before) + storage.phones.prune(before)

        retention = (
            SightingRetention(
                prune_sightings,
                s.sighting_retention_days,
            )
            if s.sighting_retention_days > 0
            else None
        )
        dead_letter_retention = (
            SightingRetention(
                storage.sql.prune_dead_letters, s.dead_letter_retention_days, what="dead letters"
            )
            if s.dead_letter_retention_days > 0
            else None
        )

        routers: list[RouterFactory] = [
            lambda require: shopper_router(shoppers, require),
            lambda require: offers_router(
                delivery, shoppers.authenticate, require, vapid.public_key_b64url
            ),
            lambda require: campaign_router(
                campaigns, engine, reports.campaign_report, shoppers.authenticate, require
            ),
            dashboard.router,
            lambda require: survey_router(surveys, shoppers.authenticate, require),
            lambda require: analytics_router(reports.analytics, require),
            lambda require: insight_router(reports.insight, require),
            *_heatmap_routes(reports),
            lambda require: predictions_router(
                reports.predictions,
                require,
                reports.shoppers.authenticate,
                lambda shopper: reports.shoppers.shopper(shopper).store,
            ),
            lambda require: self_calibration_router(self_calibration, require),
            lambda require: beacon_fleet_router(beacons, require),
            lambda require: phone_router(phones, shoppers.authenticate, require),
            lambda require: alerts_router(alerts, require),
            lambda require: events_router(stream, require),
        ]
        app = create_app(
            queries,
            keys,
            mqtt_connected=lambda: mqtt.connected,
            gateways=gateways,
            ingest_counters=lambda: ingest.counters,
            localizer_status=lambda: reload.status,
            routers=routers,
            max_request_bytes=s.max_request_bytes,
            open_route_rate=(
                RateSettings(s.open_route_rate_per_minute, s.open_route_burst)
                if s.open_route_rate_per_minute > 0
                else None
            ),
            collectors=[SelfCalibrationCollector(self_calibration), BeaconFleetCollector(beacons)],
        )
        mount_shopper_app(app)
        mount_dashboard(app)

        parts = ServerParts(
            settings=s,
            stores=running,
            storage=storage,
            shoppers=shoppers,
            campaigns=campaigns,
            engine=engine,
            delivery=delivery,
            vapid=vapid,
            ingest=ingest,
            mqtt=mqtt,
            queries=queries,
            gateways=gateways,
            campaign_report=reports.campaign_report,
            analytics=reports.analytics,
            dashboard=dashboard,
            surveys=surveys,
            retention=retention,
            dead_letter_retention=dead_letter_retention,
            radio=reload,
            radio_watch=radio_watch,
            app=app,
            self_calibration=self_calibration,
            ingest_for=ingest_for,
            offer_taps=offer_taps,
            beacons=beacons,
            phones=phones,
            alert_loop=alert_loop,
            follow_ups=follow_ups,
            floor_presence=floor_presence,
        )
        undo.pop_all()  # built: closing is the parts' (and the runtime's) job now
    return parts


def build_follow_ups(
    settings: ServerSettings,
    stores: Mapping[str, StorePlan],
    campaigns: CampaignAdmin,
    storage: Storage,
    catalog: Catalog,
    shoppers: ShopperService,
    delivery: OfferDelivery,
) -> FollowUpService:
    """Follow-ups after the visit (issue 18, point 10): Web Push through
    delivery, and the signed webhook to the retailer's email/CRM when set."""
    from omnizone.server.adapters.signed_webhook import SignedWebhook

    webhook = None
    if settings.follow_up_webhook_url and settings.follow_up_webhook_secret is not None:
        hook = SignedWebhook(
            settings.follow_up_webhook_url,
            settings.follow_up_webhook_secret.get_secret_value().encode(),
            guard=EndpointGuard(settings.push_endpoint_allow),
        )

        def webhook(payload: Mapping[str, object]) -> bool:
            return hook.send(payload).delivered

    return FollowUpService(
        stores,
        campaigns.campaigns,
        storage.follow_ups,
        storage.campaigns,
        catalog,
        shoppers,
        storage.offers,
        delivery.publish,
        webhook=webhook,
        interval_s=settings.follow_up_interval_s,
    )


def _heatmap_routes(reports: StoreReports) -> list[RouterFactory]:
    found = reports.heatmap
    return [] if found is None else [lambda require: heatmap_router(found, require)]


def _shopper_store(shoppers: ShopperService, shopper: str) -> str | None:
    try:
        return shoppers.shopper(shopper).store
    except ShopperNotFound:
        return None


def _erased(_removed: int) -> None:
    """Erasure listeners return nothing; delivery reports how much it removed."""


def _scrubbed(_done: bool) -> None:
    """Scrub listeners return nothing; the storage logs a scrub it could not finish."""


def _catalog(settings: ServerSettings, stores: Mapping[str, StorePlan]) -> Catalog:
    path = settings.catalog_file or shipped_config("catalog/rivoli.yaml")
    if settings.catalog_file is None and not path.exists():
        return Catalog(products=[])
    return load_catalog(path, stores.values())


def _campaign_files(settings: ServerSettings) -> list[Path]:
    if settings.campaign_files is not None:
        return list(settings.campaign_files)
    shipped = shipped_config("campaigns/rivoli.yaml")
    return [shipped] if shipped.exists() else []


def _vapid_path(settings: ServerSettings) -> Path:
    if settings.vapid_key_file is not None:
        return settings.vapid_key_file
    url = settings.database_url
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).with_suffix(".vapid.pem")
    return Path("omnizone-vapid.pem")
