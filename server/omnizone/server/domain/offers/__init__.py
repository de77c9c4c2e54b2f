"""Offers: campaigns, the product catalog, the pure send/skip decision and lift.

See docs/offers.md for the campaign file format and the decision rules.
"""

from omnizone.server.domain.offers.campaign import (
    Campaign,
    Conditions,
    Content,
    Limits,
    Schedule,
    SegmentRule,
    TimeWindow,
    Trigger,
)
from omnizone.server.domain.offers.catalog import (
    Catalog,
    Gtin,
    Product,
    check_catalog,
    is_gtin,
    load_catalog,
    parse_catalog,
)
from omnizone.server.domain.offers.checks import LOCATION_FREE_TRIGGERS
from omnizone.server.domain.offers.config import (
    campaigns_from_data,
    check_campaign,
    load_campaigns,
    parse_campaigns,
)
from omnizone.server.domain.offers.decide import arbitration_key, decide
from omnizone.server.domain.offers.errors import OffersConfigError
from omnizone.server.domain.offers.events import (
    CampaignTotals,
    Decision,
    DecisionBatch,
    EventKind,
    OfferDraft,
    OfferHistory,
    Outcome,
    Purchase,
    SentOffer,
    ShopperContext,
    TriggerEvent,
)
from omnizone.server.domain.offers.holdout import holdout_draw, in_holdout
from omnizone.server.domain.offers.lift import Lift, campaign_lift, wilson_interval

__all__ = [
    "LOCATION_FREE_TRIGGERS",
    "Campaign",
    "CampaignTotals",
    "Catalog",
    "Conditions",
    "Content",
    "Decision",
    "DecisionBatch",
    "EventKind",
    "Gtin",
    "Lift",
    "Limits",
    "OfferDraft",
    "OfferHistory",
    "OffersConfigError",
    "Outcome",
    "Product",
    "Purchase",
    "Schedule",
    "SegmentRule",
    "SentOffer",
    "ShopperContext",
    "TimeWindow",
    "Trigger",
    "TriggerEvent",
    "arbitration_key",
    "campaign_lift",
    "campaigns_from_data",
    "check_campaign",
    "check_catalog",
    "decide",
    "holdout_draw",
    "in_holdout",
    "is_gtin",
    "load_campaigns",
    "load_catalog",
    "parse_campaigns",
    "parse_catalog",
    "wilson_interval",
]
