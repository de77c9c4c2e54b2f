"""Server settings, read from ``OMNIZONE_*`` environment variables (or a ``.env``).

Every field has a default that runs a single-machine server next to a local
Mosquitto, except the API keys: the API refuses to start without one.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnizone.broker.secrets import HOW_TO_MAKE_ONE, refuse_placeholder
from omnizone.paths import DEFAULT_STORE, shipped_config
from omnizone.server.domain.identity import (
    DEFAULT_EID_SKEW_S,
    MAX_EID_SKEW_S,
    MAX_POLICY_EXPONENT,
    MIN_POLICY_EXPONENT,
    EidPolicy,
)

if TYPE_CHECKING:
    from omnizone.broker import BrokerAccounts, RunningBroker

_EID_PERIODS_S = [2**k for k in range(MIN_POLICY_EXPONENT, MAX_POLICY_EXPONENT + 1)]

KNOWN_SCOPES = frozenset({"read", "admin", "pos", "associate", "survey"})


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OMNIZONE_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        "sqlite:///omnizone.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user:pw@host/db",
    )
    mqtt_host: str = Field("127.0.0.1", description="MQTT broker host")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port")
    mqtt_username: str = Field("omnizone-server", description="broker user of the server")
    mqtt_password: SecretStr | None = Field(None, description="broker password (none: no auth)")
    mqtt_tls_ca: Path | None = Field(
        None, description="CA file; when set the MQTT connection uses TLS"
    )
    mqtt_client_id: str = Field(
        "omnizone-server",
        description="persistent-session id: keep it stable so queued messages survive restarts",
    )
    # -- a retail chain on one cluster (docs/scaling.md) --------------------------------
    role: Literal["all", "worker", "api"] = Field(
        "all",
        description="all: one process ingests from MQTT and serves the API (one store); "
        "worker: consumes its partitions of the chain's JetStream stream; api: serves the "
        "API and the shoppers' WebSockets, offers reach it through NATS",
    )
    nats_urls: list[str] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"],
        description="NATS cluster URLs (worker and api roles), e.g. "
        'OMNIZONE_NATS_URLS=\'["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]\'',
    )
    nats_username: str = Field("omnizone-server", description="NATS user of the server")
    nats_password: SecretStr | None = Field(None, description="NATS password (none: no auth)")
    chain_partitions: int = Field(
        16,
        ge=1,
        le=1024,
        description="partitions of the gateway stream; must equal the {{partition(P,1)}} "
        "of the cluster's subject mapping (a store's partition is fnv1a(store) mod P)",
    )
    chain_stream: str = Field("GATEWAYS", description="JetStream stream of gateway messages")
    chain_stream_replicas: int = Field(3, ge=1, le=5, description="replicas of the stream")
    chain_stream_max_age_s: float = Field(
        86400.0,
        gt=0,
        description="how long the stream keeps a message: what a worker taking over can "
        "re-read, and how long a dead chain of workers may lag before messages are gone "
        "from the stream (the gateways' outboxes still hold what was never acknowledged)",
    )
    chain_lease_ttl_s: float = Field(
        5.0,
        gt=0,
        description="a partition lease not refreshed for this long expires: how long a dead "
        "worker's stores wait before another worker takes them",
    )
    chain_heartbeat_s: float = Field(
        1.0, gt=0, description="how often a worker refreshes its membership and leases"
    )
    chain_fetch_batch: int = Field(
        100, ge=1, le=10000, description="messages a worker fetches from a partition at once"
    )
    chain_ack_wait_s: float = Field(
        30.0, gt=0, description="JetStream redelivers a message not acknowledged this long"
    )
    chain_warm_s: float = Field(
        20.0,
        ge=0,
        description="a worker taking a partition first replays this many seconds of it "
        "(what the last owner stored) into the stores' filters, without writing: the "
        "filter goes on where it was instead of starting cold (0: start cold)",
    )
    chain_shopper_stream: str = Field(
        "SHOPPERS",
        description="JetStream stream of the shopper change feed: registrations, consent "
        "changes and erasures made on one chain node, re-read by the others",
    )
    chain_shopper_refresh_s: float = Field(
        300.0,
        gt=0,
        description="every chain node re-reads every shopper's device and consent this "
        "often, besides the feed: the longest a change whose notice was lost stays unseen",
    )
    chain_worker_id: str | None = Field(
        None, description="this worker's name in the membership (none: host-pid)"
    )
    ingest_batch_max: int = Field(
        200,
        ge=1,
        description="most MQTT messages ingest stores in one transaction (a batch: the "
        "messages that arrived together; 1: one transaction per message)",
    )
    ingest_batch_wait_ms: float = Field(
        20.0,
        ge=0,
        le=1000,
        description="how long ingest waits, after a batch's first message was received, for "
        "more to join it (0: only what is already queued); each message waits at most this "
        "before its transaction starts",
    )
    api_host: str = Field("127.0.0.1", description="HTTP API bind address")
    api_port: int = Field(8600, ge=0, le=65535, description="HTTP API port (0: any free port)")
    api_keys: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            'API key -> scopes ("read", "admin"), e.g. '
            'OMNIZONE_API_KEYS=\'{"<a long random key>": ["read", "admin"]}\'; '
            "example values are refused"
        ),
    )
    store_files: list[Path] = Field(
        default_factory=lambda: [shipped_config(DEFAULT_STORE)],
        description="store files (YAML) this server serves; none: the shipped example store",
    )
    localizer: Literal["grid", "zone", "nearest"] = Field(
        "grid",
        description=(
            "zone model: grid (position filter over floor cells), zone (filter over"
            " zones) or nearest (loudest gateway); docs/localization.md"
        ),
    )
    radio_check_interval_s: float = Field(
        5.0,
        ge=0,
        description="seconds between looks at each store's survey and calibration files "
        "(localization: in the store file); a rewritten one replaces the store's localizer "
        "without a restart, a broken one is reported in /health and /metrics and the "
        "running one kept (0: never looked at again after start)",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description=(
            "shared secret of POST /api/v1/webhooks/profile (HMAC-SHA256 signature in"
            " X-Omnizone-Signature; at least 16 characters); none: the webhook is off"
        ),
    )
    alert_webhook_url: str | None = Field(
        None,
        description="where store alerts are POSTed, signed like the profile webhook "
        "(X-Omnizone-Signature, docs/analytics.md, Alerts); none: dashboard only",
    )
    alert_webhook_secret: SecretStr | None = Field(
        None, description="the secret alert webhooks are signed with (at least 16 characters)"
    )
    alert_check_interval_s: float = Field(
        5.0,
        ge=0,
        description="how often the server evaluates every store's alert rules and sends "
        "the webhooks (alerts, event subscriptions); 0: only when the API is asked",
    )
    event_webhook_secret: SecretStr | None = Field(
        None,
        description="the secret event-stream webhooks are signed with (at least 16 "
        "characters; docs/event-stream.md); none: event subscriptions are refused",
    )
    event_outbox_days: float = Field(
        7.0,
        gt=0,
        description="how long stream events (and the alert log) are kept for resuming",
    )
    follow_up_webhook_url: str | None = Field(
        None,
        description="where follow-ups with `via: webhook` are POSTed (the retailer's email or "
        "CRM system), signed like the profile webhook (docs/offers.md, Follow-ups)",
    )
    follow_up_webhook_secret: SecretStr | None = Field(
        None, description="the secret follow-up webhooks are signed with (at least 16 characters)"
    )
    follow_up_interval_s: float = Field(
        30.0, gt=0, description="how often due follow-ups after the visit are sent"
    )
    eid_rotation_min_s: int = Field(
        256,
        description="shortest period a new phone's ephemeral BLE id may get (a power of two, "
        f"{_EID_PERIODS_S[0]} to {_EID_PERIODS_S[-1]} s); each phone draws its own",
    )
    eid_rotation_max_s: int = Field(
        1024,
        description="longest period a new phone's ephemeral BLE id may get (a power of two, "
        f"{_EID_PERIODS_S[0]} to {_EID_PERIODS_S[-1]} s)",
    )
    eid_skew_s: int = Field(
        DEFAULT_EID_SKEW_S,
        ge=0,
        le=MAX_EID_SKEW_S,
        description="an ephemeral id resolves in its own period and this many seconds either "
        "side (phone clock error, window length), no longer; less than half the shortest period",
    )
    eid_rotation_s: int | None = Field(
        None,
        description="replaced by OMNIZONE_EID_ROTATION_MIN_S and _MAX_S; refused when set",
    )
    catalog_file: Path | None = Field(
        None, description="product catalog (YAML, docs/offers.md); none: the shipped example"
    )
    campaign_files: list[Path] | None = Field(
        None,
        description=(
            "campaign files (YAML) loaded at start for campaigns not stored yet;"
            " none: the shipped example campaigns"
        ),
    )
    vapid_key_file: Path | None = Field(
        None,
        description=(
            "Web Push VAPID key (PEM, created on first start); none: beside the SQLite"
            " database, else ./omnizone-vapid.pem. Keep it: a new key orphans every"
            " browser subscription"
        ),
    )
    vapid_subject: str = Field(
        "mailto:ops@omnizone.invalid",
        description="contact the push services may use (mailto: or https: URL)",
    )
    offer_ack_timeout_s: float = Field(
        2.0,
        gt=0,
        description="an offer no live app acknowledged within this goes to background push",
    )
    sighting_retention_days: float = Field(
        30.0,
        ge=0,
        description="raw BLE sightings older than this are deleted, hourly and at start "
        "(0: kept forever); visits, dwell and analytics are not affected",
    )
    max_request_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="largest HTTP request body on any route, in bytes (413 beyond); the "
        "floor-plan image upload has its own, MAX_IMAGE_BYTES (8 MiB)",
    )
    open_route_rate_per_minute: float = Field(
        60.0,
        ge=0,
        description="requests per minute per client address on the routes open without a "
        "key or token (registration, the profile webhook), after a burst; 429 with "
        "Retry-After beyond (0: no limit)",
    )
    open_route_burst: int = Field(
        30, ge=1, description="requests a client address may make at once on the open routes"
    )
    push_endpoint_allow: list[str] = Field(
        default_factory=list,
        description="hosts, addresses or networks (e.g. 10.0.0.0/8) a Web Push endpoint may "
        "be on besides public ones; by default the server refuses to connect to loopback, "
        "private, link-local, multicast and reserved addresses (SSRF)",
    )
    dead_letter_retention_days: float = Field(
        14.0,
        ge=0,
        description="dead letters (rejected messages) older than this are deleted, hourly "
        "and at start (0: kept forever)",
    )
    dead_letter_payload_bytes: int = Field(
        4096,
        ge=0,
        le=65_536,
        description="how much of a rejected message's payload a dead letter keeps (its "
        "original size is kept too; MAC-like strings are masked)",
    )
    survey_dir: Path | None = Field(
        None,
        description="where a guided survey's CSV and calibration YAML are written (default: "
        "a 'surveys' folder beside a SQLite database, else ./surveys); a store file whose "
        "localization names a survey or calibration gets those files rewritten too",
    )

    @field_validator("eid_rotation_min_s", "eid_rotation_max_s")
    @classmethod
    def _eid_period(cls, value: int) -> int:
        if value not in _EID_PERIODS_S:
            raise ValueError(
                f"an ephemeral id period must be a power of two from {_EID_PERIODS_S[0]} to "
                f"{_EID_PERIODS_S[-1]} s (Eddystone-EID rotates every 2**K s; longer periods "
                f"let a phone be followed for longer), got {value}; one of {_EID_PERIODS_S}"
            )
        return value

    @field_validator("alert_webhook_secret", "event_webhook_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("an outgoing webhook secret must be at least 16 characters")
        return value

    @field_validator("eid_rotation_s")
    @classmethod
    def _no_global_period(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError(
                "OMNIZONE_EID_ROTATION_S (one period for every phone, up to 86400 s) is gone: "
                "each phone now draws its own period between OMNIZONE_EID_ROTATION_MIN_S and "
                f"OMNIZONE_EID_ROTATION_MAX_S (powers of two, {_EID_PERIODS_S[0]} to "
                f"{_EID_PERIODS_S[-1]} s); unset it"
            )
        return value

    @model_validator(mode="after")
    def _eid_policy_holds(self) -> "ServerSettings":
        self.eid_policy()  # raises with the reason when min, max and skew do not fit
        return self

    def eid_policy(self) -> EidPolicy:
        """Which rotation periods phones get, and the clock skew the resolver allows."""
        return EidPolicy(
            min_exponent=self.eid_rotation_min_s.bit_length() - 1,
            max_exponent=self.eid_rotation_max_s.bit_length() - 1,
            skew_s=self.eid_skew_s,
        )

    @classmethod
    def on_broker(
        cls,
        broker: "RunningBroker",
        accounts: "BrokerAccounts",
        *,
        database_url: str,
        api_keys: dict[str, list[str]],
        **overrides: Any,
    ) -> "ServerSettings":
        """A server logged in to a broker this process started (demo, benches, tests);
        the open routes' rate limit is off unless ``overrides`` set it."""
        user, password = accounts.server_credentials
        # One process registers every simulated phone from one address.
        overrides.setdefault("open_route_rate_per_minute", 0.0)
        return cls(
            database_url=database_url,
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            mqtt_username=user,
            mqtt_password=SecretStr(password),
            api_keys=api_keys,
            **overrides,
        )


class MissingApiKey(ValueError):
    """The API would be open to anyone; say how to give it a key."""

    def __init__(self) -> None:
        super().__init__(
            "no API key configured: set OMNIZONE_API_KEYS, e.g. "
            'OMNIZONE_API_KEYS=\'{"<a long random key>": ["read", "admin"]}\' '
            "(or --api-key-file FILE to `omnizone server run`); make a key with "
            f"{HOW_TO_MAKE_ONE}"
        )


def check_secrets(settings: ServerSettings) -> None:
    """Refuse to start on an example broker password or webhook secret."""
    if settings.mqtt_password is not None:
        refuse_placeholder(
            settings.mqtt_password.get_secret_value(),
            "the broker password (OMNIZONE_MQTT_PASSWORD)",
        )
    if settings.webhook_secret is not None:
        refuse_placeholder(
            settings.webhook_secret.get_secret_value(),
            "the webhook secret (OMNIZONE_WEBHOOK_SECRET)",
        )
    for outgoing, what in (
        (settings.alert_webhook_secret, "the alert webhook secret (OMNIZONE_ALERT_WEBHOOK_SECRET)"),
        (settings.event_webhook_secret, "the event webhook secret (OMNIZONE_EVENT_WEBHOOK_SECRET)"),
    ):
        if outgoing is not None:
            refuse_placeholder(outgoing.get_secret_value(), what)


def check_api_keys(keys: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    """Keys with known scopes; raises with a clear message otherwise."""
    if not keys:
        raise MissingApiKey()
    checked: dict[str, frozenset[str]] = {}
    for key, scopes in keys.items():
        refuse_placeholder(key, "an API key (OMNIZONE_API_KEYS)")
        if len(key) < 8:
            raise ValueError(f"API key {key[:2]}… is too short: use at least 8 characters")
        unknown = set(scopes) - KNOWN_SCOPES
        if unknown:
            raise ValueError(
                f"API key {key[:4]}… has unknown scope(s) {sorted(unknown)}; "
                f"known: {sorted(KNOWN_SCOPES)}"
            )
        checked[key] = frozenset(scopes)
    return checked
