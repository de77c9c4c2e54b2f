"""What the chain (``omnizone.suite.chain``) and ``bench offers`` both measure
with: the quick scenario with its shoppers in the store from the start, and a
campaign that makes every zone entry an offer (they measure delivery, not
campaign rules). One copy, so the two figures are of the same load."""

from typing import Any

from omnizone.paths import shipped_config
from omnizone.sim.scenario import Scenario, load_scenario


def quick_scenario(shoppers: int, duration_s: float, seed: int | None = None) -> Scenario:
    """The quick scenario with ``shoppers`` in the store from the start and no
    arrivals; ``seed=None`` keeps the scenario file's seed."""
    return load_scenario(
        shipped_config("scenarios/quick.yaml"),
        duration_s=duration_s,
        shoppers={
            "initial_shoppers": shoppers,
            "max_shoppers": shoppers,
            "arrivals_per_minute": 0,
            "zones_per_trip": [3, 6],
            "dwell_mean_s": 20,
        },
        **({} if seed is None else {"seed": seed}),
    )


def every_zone_campaign(campaign_id: str, name: str, title: str) -> dict[str, Any]:
    """A campaign file entry whose every zone entry is worth an offer."""
    return {
        "id": campaign_id,
        "name": name,
        "priority": 1000,
        "trigger": {"kind": "zone_entered", "zones": []},
        "content": {"title": title, "body": "Measured, not hoped.", "expires_after_s": 3600},
        "limits": {"per_visit": 1000},
        "holdout_fraction": 0,
    }
