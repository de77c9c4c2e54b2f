"""The ``CampaignStore`` port, on every backend: campaigns with revisions and
compare-and-set, the decision log the report and the caps read, store-visit
counts, and a shopper's export and erasure."""

import pytest

from omnizone.server.domain.offers import Campaign, Decision, Outcome, SentOffer
from omnizone.server.service.ports import RevisionMismatch, StoredCampaign
from tests.server.offers.test_engine import STORE, _campaign

from .conftest import Storage

T0 = 1_763_719_200_000
ANN, BOB, CY = "a" * 32, "b" * 32, "c" * 32


def _titled(title: str, campaign_id: str = "hello") -> Campaign:
    return _campaign(
        id=campaign_id, content={"title": title, "body": "10% off", "coupon_code": "DENIM10"}
    )


def _decision(
    shopper: str, outcome: Outcome, at_ms: int, campaign: str = "hello", visit: str = "v1"
) -> Decision:
    return Decision(campaign, shopper, outcome, f"because {outcome}", visit, at_ms)


# -- campaigns ---------------------------------------------------------------------------


def test_each_save_is_the_next_revision_and_reads_back_the_same(storage: Storage) -> None:
    campaigns = storage.campaigns
    assert campaigns.stored_campaign("hello") is None
    assert not campaigns.has_campaign("hello")
    assert campaigns.save_campaign(_titled("One"), T0) == StoredCampaign(_titled("One"), 1, T0)
    saved = campaigns.save_campaign(_titled("Two"), T0 + 5)
    assert saved == StoredCampaign(_titled("Two"), 2, T0 + 5)
    assert campaigns.stored_campaign("hello") == saved
    assert campaigns.has_campaign("hello")
    assert campaigns.campaigns() == [_titled("Two")]


def test_campaigns_are_listed_by_id(storage: Storage) -> None:
    for campaign_id in ("zeta", "alpha", "mid"):
        storage.campaigns.save_campaign(_titled(campaign_id, campaign_id), T0)
    assert [c.id for c in storage.campaigns.campaigns()] == ["alpha", "mid", "zeta"]
    stored = storage.campaigns.stored_campaigns()
    assert [(s.campaign.id, s.revision) for s in stored] == [
        ("alpha", 1),
        ("mid", 1),
        ("zeta", 1),
    ]


def test_a_conditional_save_is_a_compare_and_set_on_the_revision(storage: Storage) -> None:
    campaigns = storage.campaigns
    assert campaigns.save_campaign(_titled("One"), 10, expected_revision=0).revision == 1
    with pytest.raises(RevisionMismatch) as exists:  # created already
        campaigns.save_campaign(_titled("Again"), 15, expected_revision=0)
    assert exists.value.expected == 0
    assert exists.value.current == StoredCampaign(_titled("One"), 1, 10)
    assert campaigns.save_campaign(_titled("Two"), 20, expected_revision=1).revision == 2
    with pytest.raises(RevisionMismatch) as stale:
        campaigns.save_campaign(_titled("Stale"), 30, expected_revision=1)
    assert stale.value.campaign_id == "hello"
    assert stale.value.current == StoredCampaign(_titled("Two"), 2, 20)
    assert campaigns.stored_campaign("hello") == StoredCampaign(_titled("Two"), 2, 20)
    with pytest.raises(RevisionMismatch) as absent:
        campaigns.save_campaign(_titled("Ghost", "ghost"), 40, expected_revision=3)
    assert absent.value.current is None
    assert not campaigns.has_campaign("ghost")


# -- the decision log ----------------------------------------------------------------------


def test_decisions_newest_first_filtered_and_limited(storage: Storage) -> None:
    log = storage.campaigns
    log.log_decisions(STORE, "zone_entered", [_decision(ANN, Outcome.SENT, T0)])
    log.log_decision_batches(
        [
            (STORE, "dwell", [_decision(BOB, Outcome.NO_CONSENT, T0 + 10)]),
            ("elsewhere", "nfc_tap", [_decision(ANN, Outcome.HELD_OUT, T0 + 10, "other")]),
            (STORE, "zone_entered", []),
        ]
    )
    everything = log.decisions()
    assert [(d.shopper_id, d.at_ms) for d in everything] == [
        (ANN, T0 + 10),  # same time as Bob's, logged after it: first
        (BOB, T0 + 10),
        (ANN, T0),
    ]
    newest = everything[0]
    assert (newest.campaign_id, newest.outcome, newest.trigger, newest.reason) == (
        "other",
        "held_out",
        "nfc_tap",
        "because held_out",
    )
    assert [d.shopper_id for d in log.decisions(store=STORE)] == [BOB, ANN]
    assert [d.at_ms for d in log.decisions(shopper_id=ANN)] == [T0 + 10, T0]
    assert [d.outcome for d in log.decisions(campaign_id="hello", shopper_id=ANN)] == ["sent"]
    assert len(log.decisions(limit=2)) == 2
    assert log.decisions(store="nowhere") == []


def test_only_sent_decisions_are_the_caps_history(storage: Storage) -> None:
    log = storage.campaigns
    log.log_decisions(
        STORE,
        "zone_entered",
        [
            _decision(ANN, Outcome.SENT, T0 + 50, visit="v2"),
            _decision(ANN, Outcome.CAPPED_VISIT, T0 + 60),
            _decision(ANN, Outcome.SENT, T0, "other", visit="v1"),
            _decision(BOB, Outcome.HELD_OUT, T0),
        ],
    )
    assert log.sent_to(ANN) == [SentOffer("hello", T0 + 50, "v2"), SentOffer("other", T0, "v1")]
    assert log.sent_to(BOB) == []
    assert log.sent_to_many([ANN, BOB, CY]) == {
        ANN: [SentOffer("hello", T0 + 50, "v2"), SentOffer("other", T0, "v1")]
    }
    assert log.sent_by_campaign() == {"hello": 1, "other": 1}


def test_first_decisions_group_each_shopper_by_their_earliest_decision(storage: Storage) -> None:
    log = storage.campaigns
    log.log_decisions(
        STORE,
        "zone_entered",
        [
            _decision(ANN, Outcome.HELD_OUT, T0 + 20),
            _decision(ANN, Outcome.SENT, T0 + 10),  # earlier, logged later: wins
            _decision(BOB, Outcome.SENT, T0 + 5),
            _decision(BOB, Outcome.HELD_OUT, T0 + 5),  # same time, logged later: loses
            _decision(CY, Outcome.NO_CONSENT, T0),  # not among the outcomes asked for
            _decision(CY, Outcome.SENT, T0 + 1, "other"),
        ],
    )
    assert log.first_decisions("hello", [Outcome.SENT, Outcome.HELD_OUT]) == {
        ANN: ("sent", T0 + 10),
        BOB: ("sent", T0 + 5),
    }
    assert log.first_decisions("hello", [Outcome.HELD_OUT]) == {
        ANN: ("held_out", T0 + 20),
        BOB: ("held_out", T0 + 5),
    }
    assert log.outcome_counts("hello") == {"sent": 2, "held_out": 2, "no_consent": 1}
    assert log.outcome_counts("nothing") == {}


def test_first_decisions_and_outcome_counts_read_only_the_range(storage: Storage) -> None:
    """The campaign report's range: ``from_ms`` inclusive, ``to_ms`` exclusive,
    either bound optional; a shopper's group is their first decision *in* it."""
    log = storage.campaigns
    log.log_decisions(
        STORE,
        "zone_entered",
        [
            _decision(ANN, Outcome.SENT, T0),
            _decision(ANN, Outcome.HELD_OUT, T0 + 100),
            _decision(BOB, Outcome.HELD_OUT, T0 + 99),
            _decision(CY, Outcome.QUIET_HOURS, T0 + 100),
            _decision(CY, Outcome.SENT, T0 + 200),
        ],
    )
    groups = [Outcome.SENT, Outcome.HELD_OUT]
    assert log.first_decisions("hello", groups, from_ms=T0 + 100) == {
        ANN: ("held_out", T0 + 100),
        CY: ("sent", T0 + 200),
    }
    assert log.first_decisions("hello", groups, to_ms=T0 + 100) == {
        ANN: ("sent", T0),
        BOB: ("held_out", T0 + 99),
    }
    assert log.first_decisions("hello", groups, from_ms=T0 + 1, to_ms=T0 + 200) == {
        ANN: ("held_out", T0 + 100),
        BOB: ("held_out", T0 + 99),
    }
    assert log.outcome_counts("hello", from_ms=T0 + 100, to_ms=T0 + 200) == {
        "held_out": 1,
        "quiet_hours": 1,
    }
    assert log.outcome_counts("hello", from_ms=T0 + 201) == {}
    assert log.outcome_counts("hello", to_ms=T0 + 1) == {"sent": 1}


# -- store visits ---------------------------------------------------------------------------


def test_store_visits_count_up_per_store_and_shopper(storage: Storage) -> None:
    visits = storage.campaigns
    assert visits.store_visit_counts(STORE, [ANN, BOB]) == {}
    visits.record_store_visits([(STORE, ANN, T0), (STORE, ANN, T0 + 1), ("elsewhere", ANN, T0)])
    visits.record_store_visits([(STORE, BOB, T0 + 2), (STORE, ANN, T0 + 3)])
    assert visits.store_visit_counts(STORE, [ANN, BOB, CY]) == {ANN: 3, BOB: 1}
    assert visits.store_visit_counts("elsewhere", [ANN, BOB]) == {ANN: 1}
    assert visits.store_visit_counts(STORE, []) == {}


# -- the shopper's rights -------------------------------------------------------------------


def test_export_lists_a_shoppers_decisions_newest_first(storage: Storage) -> None:
    storage.campaigns.log_decisions(
        STORE,
        "dwell",
        [_decision(ANN, Outcome.SENT, T0), _decision(ANN, Outcome.PAUSED, T0 + 1, "other")],
    )
    storage.campaigns.log_decisions(STORE, "dwell", [_decision(BOB, Outcome.SENT, T0)])
    assert storage.campaigns.export_shopper(ANN) == [
        {
            "campaign_id": "other",
            "outcome": "paused",
            "reason": "because paused",
            "trigger": "dwell",
            "at_ms": T0 + 1,
            "store": STORE,
            "visit_id": "v1",
        },
        {
            "campaign_id": "hello",
            "outcome": "sent",
            "reason": "because sent",
            "trigger": "dwell",
            "at_ms": T0,
            "store": STORE,
            "visit_id": "v1",
        },
    ]
    assert storage.campaigns.export_shopper(CY) == []


def test_export_lists_a_shoppers_store_visits_by_store(storage: Storage) -> None:
    visits = storage.campaigns
    visits.record_store_visits([(STORE, ANN, T0), ("elsewhere", ANN, T0 + 1), (STORE, BOB, T0)])
    visits.record_store_visits([(STORE, ANN, T0 + 5)])
    assert visits.export_store_visits(ANN) == [
        {"store": "elsewhere", "visits": 1, "last_ms": T0 + 1},
        {"store": STORE, "visits": 2, "last_ms": T0 + 5},
    ]
    assert visits.export_store_visits(CY) == []
    visits.erase_shopper(ANN)
    assert visits.export_store_visits(ANN) == []
    assert visits.export_store_visits(BOB) == [{"store": STORE, "visits": 1, "last_ms": T0}]


def test_erasure_removes_a_shoppers_decisions_and_visits_only(storage: Storage) -> None:
    log = storage.campaigns
    log.log_decisions(
        STORE, "zone_entered", [_decision(ANN, Outcome.SENT, T0), _decision(BOB, Outcome.SENT, T0)]
    )
    log.record_store_visits([(STORE, ANN, T0), (STORE, BOB, T0)])
    log.erase_shopper(ANN)
    assert log.decisions(shopper_id=ANN) == []
    assert log.sent_to(ANN) == []
    assert log.store_visit_counts(STORE, [ANN, BOB]) == {BOB: 1}
    assert [d.shopper_id for d in log.decisions()] == [BOB]
    assert log.sent_by_campaign() == {"hello": 1}
    log.log_decisions(STORE, "zone_entered", [_decision(CY, Outcome.SENT, T0 + 1)])
    assert [d.shopper_id for d in log.decisions()] == [CY, BOB]  # the log goes on after it
