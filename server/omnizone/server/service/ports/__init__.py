"""What the use cases need from storage, as protocols over plain records.

One module per area: ``ingest`` (messages, visits, gateways), ``campaigns``
(campaigns, the decision log, store visits), ``layouts``, ``offers``,
``shoppers`` and ``analytics``. The adapters implement them: SQLAlchemy
(``adapters.db`` and its siblings) and in memory (``adapters.memory``); the
service layer imports no adapter, so either can stand behind the same seam.
Everything is re-exported here.
"""

from omnizone.server.service.ports.analytics import (
    AnalyticsReads,
    AnalyticsStore,
    Extent,
    PurchaseReads,
)
from omnizone.server.service.ports.campaigns import (
    CampaignStore,
    DecisionReads,
    LoggedDecision,
    RevisionMismatch,
    StoredCampaign,
)
from omnizone.server.service.ports.ingest import (
    DeadLetter,
    GatewayRecord,
    IngestReads,
    IngestStats,
    IngestTransaction,
    IngestWrites,
    LocationData,
    ReceivedKey,
    Repository,
    SightingFields,
    StoredGatewayConfig,
    VisitRecord,
    VisitStatus,
    ZoneSummary,
)
from omnizone.server.service.ports.layouts import (
    FloorImage,
    LayoutStore,
    StoredLayout,
    VersionTaken,
)
from omnizone.server.service.ports.offers import (
    CampaignReceipts,
    OfferStorage,
    OfferStore,
    PushAddresses,
)
from omnizone.server.service.ports.shoppers import ShopperStore

__all__ = [
    "AnalyticsReads",
    "AnalyticsStore",
    "CampaignReceipts",
    "CampaignStore",
    "DeadLetter",
    "DecisionReads",
    "Extent",
    "FloorImage",
    "GatewayRecord",
    "IngestReads",
    "IngestStats",
    "IngestTransaction",
    "IngestWrites",
    "LayoutStore",
    "LocationData",
    "LoggedDecision",
    "OfferStorage",
    "OfferStore",
    "PurchaseReads",
    "PushAddresses",
    "ReceivedKey",
    "Repository",
    "RevisionMismatch",
    "ShopperStore",
    "SightingFields",
    "StoredCampaign",
    "StoredGatewayConfig",
    "StoredLayout",
    "VersionTaken",
    "VisitRecord",
    "VisitStatus",
    "ZoneSummary",
]
