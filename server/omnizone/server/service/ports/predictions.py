"""What the predictions read beyond the analytics' rows: which shoppers of a
store consented to personalisation, and their profile events."""

from collections.abc import Sequence
from typing import Protocol


class PredictionReads(Protocol):
    def consented_shoppers(self, store: str) -> list[str]:
        """Shoppers of ``store`` whose current consent grants personalized_offers."""
        ...

    def entry_bins(
        self, store: str, from_ms: int, to_ms: int, bin_ms: int, exclude: Sequence[str]
    ) -> list[tuple[str, int, int]]:
        """(zone, bin, stays) of the stays that entered in [from_ms, to_ms):
        bin ``k`` holds those entered in [from_ms + k * bin_ms, + bin_ms)."""
        ...

    def profile_rows(
        self, shoppers: Sequence[str], from_ms: int, to_ms: int
    ) -> list[tuple[str, str, str, int]]:
        """(shopper, type, gtin, at_ms) of their profile events in [from_ms, to_ms)."""
        ...
