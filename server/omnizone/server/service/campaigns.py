"""Campaign administration: the store's campaigns as its staff and its files define them.

A campaign is checked against its store's plan and the catalog, stored as
its next revision (a compare-and-set, which the API's ``If-Match`` rests on)
and kept in memory as the database holds it. The offer engine reads the
campaigns from here and never writes one; deciding offers and administering
campaigns change for different reasons, so they live apart.
"""

import threading
from collections.abc import Callable, Mapping

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.offers import Campaign, Catalog, check_campaign
from omnizone.server.service.ports.campaigns import (
    CampaignStore,
    RevisionMismatch,
    StoredCampaign,
)
from omnizone.store import StorePlan


class CampaignRejected(ValueError):
    """A campaign from the API that does not fit the store or the catalog."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UnknownCampaign(LookupError):
    pass


class CampaignChanged(Exception):
    """A conditional write whose condition does not hold: the campaign is not
    at the revision the writer loaded (``current`` is what is stored now, None
    when there is no such campaign), or exists when it was to be created.
    Nothing was written."""

    def __init__(self, campaign_id: str, current: StoredCampaign | None) -> None:
        found = f"at revision {current.revision}" if current else "absent"
        super().__init__(f"campaign {campaign_id!r} is {found}")
        self.campaign_id = campaign_id
        self.current = current


#: A write's condition on what is stored now (None: no such campaign), e.g.
#: the API's If-Match. Checked under the admin's lock against the database,
#: and the write itself is a compare-and-set on the revision it saw.
Precondition = Callable[[StoredCampaign | None], bool]


class CampaignAdmin:
    """The campaigns of this server's stores: defined, paused, resumed, seeded."""

    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        repository: CampaignStore,
        catalog: Catalog,
        *,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._stores = stores  # the running plans (RunningStores in the server), not a copy
        self._repo = repository
        self.catalog = catalog
        self._clock = clock
        self._lock = threading.RLock()
        stored = repository.stored_campaigns()
        self._campaigns: dict[str, Campaign] = {s.campaign.id: s.campaign for s in stored}
        self._stored: dict[str, StoredCampaign] = {s.campaign.id: s for s in stored}

    @property
    def stores(self) -> Mapping[str, StorePlan]:
        return self._stores

    # -- reading -------------------------------------------------------------------------

    def campaigns(self, store: str) -> list[Campaign]:
        """The store's campaigns, active and paused, as stored now."""
        with self._lock:
            return [c for c in self._campaigns.values() if c.store == store]

    def stored_campaigns(self, store: str) -> list[StoredCampaign]:
        """The store's campaigns with their revisions (in ``campaigns``' order)."""
        with self._lock:
            return [s for s in self._stored.values() if s.campaign.store == store]

    def campaign(self, campaign_id: str) -> Campaign:
        return self.stored_campaign(campaign_id).campaign

    def stored_campaign(self, campaign_id: str) -> StoredCampaign:
        with self._lock:
            found = self._stored.get(campaign_id)
        if found is None:
            raise UnknownCampaign(f"no campaign {campaign_id!r}")
        return found

    # -- writing -------------------------------------------------------------------------

    def save_campaign(self, campaign: Campaign) -> Campaign:
        """Store the campaign whatever is stored (the campaign files, scripts)."""
        return self.put_campaign(campaign).campaign

    def put_campaign(
        self, campaign: Campaign, *, precondition: Precondition | None = None
    ) -> StoredCampaign:
        """Store the campaign as its next revision. With ``precondition``, only
        if it holds for what is stored now (else ``CampaignChanged``): it is
        checked under the admin's lock, and the write is a compare-and-set
        on the revision it was checked against, so no other write, from this
        process or another one on the same database, can come in between."""
        self._check(campaign)
        with self._lock:
            if precondition is None:
                return self._store(campaign, None)
            current = self._repo.stored_campaign(campaign.id)
            if not precondition(current):
                self._remember(campaign.id, current)
                raise CampaignChanged(campaign.id, current)
            return self._store(campaign, current.revision if current else 0)

    def set_status(
        self, campaign_id: str, status: str, *, precondition: Precondition | None = None
    ) -> StoredCampaign:
        """Pause or resume: the stored campaign with another status, as its
        next revision (an unchanged status writes nothing). Made from what the
        database holds and written with a compare-and-set, so an edit saved
        meanwhile is never undone by a pause."""
        for _attempt in range(5):
            with self._lock:
                current = self._repo.stored_campaign(campaign_id)
                if current is None:
                    self._remember(campaign_id, None)
                    raise UnknownCampaign(f"no campaign {campaign_id!r}")
                if precondition is not None and not precondition(current):
                    self._remember(campaign_id, current)
                    raise CampaignChanged(campaign_id, current)
                if current.campaign.status == status:
                    self._remember(campaign_id, current)
                    return current
                changed = current.campaign.model_copy(update={"status": status})
                self._check(changed)
                try:
                    return self._store(changed, current.revision)
                except CampaignChanged:
                    continue  # another process wrote it since: read it again
        raise CampaignChanged(campaign_id, self._repo.stored_campaign(campaign_id))

    def seed(self, campaigns: list[Campaign]) -> int:
        """Campaigns from a file, for those not stored yet: a campaign edited or
        paused through the API keeps its stored version across restarts."""
        added = 0
        for campaign in campaigns:
            if not self._repo.has_campaign(campaign.id):
                self.save_campaign(campaign)
                added += 1
        return added

    # -- internals -----------------------------------------------------------------------

    def _check(self, campaign: Campaign) -> None:
        problems = check_campaign(campaign, self._stores.get(campaign.store), self.catalog)
        if campaign.store not in self._stores:
            problems.insert(0, f"store: {campaign.store!r} is not a store of this server")
        if problems:
            raise CampaignRejected(problems)

    def _store(self, campaign: Campaign, expected_revision: int | None) -> StoredCampaign:
        """Under the lock: store, and remember what was stored."""
        try:
            stored = self._repo.save_campaign(
                campaign, self._clock(), expected_revision=expected_revision
            )
        except RevisionMismatch as mismatch:
            self._remember(campaign.id, mismatch.current)
            raise CampaignChanged(campaign.id, mismatch.current) from None
        self._remember(campaign.id, stored)
        return stored

    def _remember(self, campaign_id: str, stored: StoredCampaign | None) -> None:
        """Under the lock: the copy in memory follows what the database holds."""
        if stored is None:
            self._campaigns.pop(campaign_id, None)
            self._stored.pop(campaign_id, None)
        else:
            self._campaigns[campaign_id] = stored.campaign
            self._stored[campaign_id] = stored
