"""An erasure that meets a batch of decisions on its way: the offer engine's
thread has decided the shopper's moments and is writing them, or still has
their placements queued, when ``DELETE /me`` comes. Nothing of that batch may
be left after the erasure (issue #12, finding 4). Real SQLite repositories;
the only addition is a gate that holds the engine's write where the race is."""

import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from omnizone.paths import shipped_config
from omnizone.server.adapters.campaign_db import CampaignRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.domain.identity import ProfileSummary, Purpose
from omnizone.server.domain.offers import Decision, load_catalog
from omnizone.server.service.campaigns import CampaignAdmin
from omnizone.server.service.delivery import OfferDelivery
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.offer_engine import OfferEngine
from omnizone.server.service.shoppers import ShopperService
from omnizone.store import StorePlan
from tests.server.offers.test_engine import STORE, T0, _campaign

WAIT_S = 10.0


class HeldDecisions(CampaignRepository):
    """The real repository; its first decision write waits for ``release``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.writing = threading.Event()
        self.release = threading.Event()

    def log_decision_batches(self, batches: Iterable[tuple[str, str, Iterable[Decision]]]) -> None:
        if not self.writing.is_set():
            self.writing.set()
            assert self.release.wait(WAIT_S)
        super().log_decision_batches(batches)


class Parts:
    def __init__(self, plan: StorePlan, tmp_path: Path) -> None:
        self.db = SqlRepository.from_url(f"sqlite:///{tmp_path / 'omnizone.db'}")
        self.shoppers = ShopperService([STORE], ShopperRepository(self.db.engine))
        self.offers = OfferRepository(self.db.engine)
        self.delivery = OfferDelivery(
            self.offers, may_deliver=lambda s: self.shoppers.consent(s) is not None
        )
        self.decisions = HeldDecisions(self.db.engine)
        catalog = load_catalog(shipped_config("catalog/rivoli.yaml"), [plan])
        self.campaigns = CampaignAdmin({STORE: plan}, self.decisions, catalog)
        self.campaigns.save_campaign(_campaign())
        self.campaigns.save_campaign(
            _campaign(id="welcome", trigger={"kind": "store_entered"}, priority=1)
        )
        self.engine = OfferEngine(
            {STORE: plan},
            self.campaigns,
            self.decisions,
            catalog,
            self.shoppers,
            self.delivery.publish_many,
            background=True,
        )
        # as bootstrap.py wires them: the engine waits for its batch, then the deletes
        self.shoppers.subscribe_to_erasure(self.engine.forget_shopper)
        self.shoppers.subscribe_to_erasure(self.db.erase_device)
        self.shoppers.subscribe_to_erasure(self._erase_offers)
        self.shoppers.subscribe_to_erasure(self.decisions.erase_shopper)

    def _erase_offers(self, shopper: str) -> None:
        self.delivery.erase_shopper(shopper)

    def shopper(self) -> str:
        registered = self.shoppers.register(STORE).shopper_id
        both = {Purpose.PERSONALIZED_OFFERS: True, Purpose.LOCATION_ANALYTICS: True}
        self.shoppers.set_consent(registered, both)
        return registered

    def walk(self, shopper: str, zones: list[str], start_ms: int = T0) -> None:
        for i, zone in enumerate(zones):
            at = start_ms + i * 1000
            self.engine.on_placement(STORE, ZonePlacement(shopper, zone, at, at, at - 40))

    def kept(self, shopper: str) -> tuple[int, int, int]:
        """Decisions, store visits and offers stored about the shopper."""
        return (
            len(self.decisions.decisions(shopper_id=shopper)),
            len(self.decisions.export_store_visits(shopper)),
            len(self.offers.offers_after(shopper, 0, 100)),
        )

    def close(self) -> None:
        self.decisions.release.set()
        self.engine.close()
        self.delivery.close()
        self.db.close()


@pytest.fixture
def parts(plan: StorePlan, tmp_path: Path) -> Iterator[Parts]:
    made = Parts(plan, tmp_path)
    yield made
    made.close()


def test_a_batch_being_written_when_the_erasure_comes_leaves_nothing(parts: Parts) -> None:
    shopper, other = parts.shopper(), parts.shopper()
    parts.walk(shopper, ["entrance", "denim"])
    parts.walk(other, ["entrance", "denim"])
    assert parts.decisions.writing.wait(WAIT_S)  # decided, consent read, now writing
    # queued behind the batch being written: more of the shopper's moments
    parts.walk(shopper, ["menswear", "denim"], start_ms=T0 + 10_000)

    erasure = threading.Thread(target=parts.shoppers.erase, args=(shopper,))
    erasure.start()
    while not parts.shoppers.is_erased(shopper):  # tombstoned: the erasure is under way
        erasure.join(0.005)
    erasure.join(0.2)
    assert erasure.is_alive(), "the erasure waits for the batch being written"
    parts.decisions.release.set()
    erasure.join(WAIT_S)
    assert not erasure.is_alive()
    assert parts.engine.drain(WAIT_S)

    assert parts.kept(shopper) == (0, 0, 0)
    decided, visits, offers = parts.kept(other)
    assert decided and visits == 1 and offers  # the batch itself was written


def test_a_tap_decided_for_a_shopper_erased_meanwhile_is_not_written(parts: Parts) -> None:
    """The app's tap request was authenticated before the erasure; its
    decision is written after the tombstone: nothing stays."""
    parts.decisions.release.set()
    parts.campaigns.save_campaign(
        _campaign(id="tapped", trigger={"kind": "nfc_tap"}, priority=1, limits={})
    )
    shopper = parts.shopper()
    erased_during = threading.Event()
    original = parts.shoppers.profiles

    def erase_while_deciding(shopper_ids: Sequence[str]) -> dict[str, ProfileSummary]:
        if not erased_during.is_set():
            erased_during.set()
            parts.shoppers.erase(shopper)
        return original(shopper_ids)

    parts.shoppers.profiles = erase_while_deciding  # type: ignore[method-assign]
    batch = parts.engine.on_tap(STORE, shopper, "tap-outerwear-jackets", None, T0)
    assert erased_during.is_set() and batch.decisions  # decided, with the old consent
    assert parts.kept(shopper) == (0, 0, 0)
