"""Localization and dwell accuracy against the simulator's ground truth.

Pure functions over plain data. The definitions:

- zone_accuracy: of all shopper-seconds in the store (ground truth rows, one
  per second by default, finer with the scenario's ``ground_truth_interval_ms``),
  the fraction where the zone the server reported last, at or before that
  instant, is the true zone.
- flaps_per_shopper_hour: per shopper, the number of reported zone changes
  beyond the number of true zone changes (never negative), summed and divided
  by the shoppers' hours in the store.
- change latency: for each true entry into a zone where the shopper then stays
  at least `min_stay_s`, the delay until the server first reports that zone;
  entries never reported during the stay count as missed (their share is
  reported separately, not folded into the median). changes_already_reported_fraction:
  the share of entries whose zone was already being reported at the true
  entry instant, i.e. before any reading from inside it (a guess that
  happened to come true, or a shopper lingering at the boundary).
- shopper_seconds: the time scored; truth_rows: the ground-truth rows behind it.
- dwell_mae_ratio: for each true visit (a stay of at least `min_stay_s`), the
  recorded visit of the same device and zone that overlaps it most; error =
  |recorded dwell - true dwell| / true dwell, 1.0 when no visit was recorded;
  the mean over true visits.
"""

import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TruthRow:
    t_ms: int
    shopper: str
    device: str
    zone: str | None


@dataclass(frozen=True, slots=True)
class Placement:
    at_ms: int
    zone: str | None


@dataclass(frozen=True, slots=True)
class RecordedVisit:
    device: str
    zone: str
    entered_ms: int
    left_ms: int | None
    dwell_s: float | None


@dataclass(frozen=True, slots=True)
class Stay:
    zone: str | None
    start_ms: int
    end_ms: int  # last second seen there

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


def stays(rows: Sequence[TruthRow]) -> list[Stay]:
    """Consecutive rows of one shopper in the same zone, as stays."""
    out: list[Stay] = []
    for row in rows:
        if out and out[-1].zone == row.zone:
            out[-1] = Stay(row.zone, out[-1].start_ms, row.t_ms)
        else:
            out.append(Stay(row.zone, row.t_ms, row.t_ms))
    return out


def reported_at(timeline: Sequence[Placement], t_ms: int, start: int = 0) -> tuple[str | None, int]:
    """The zone reported last at or before t_ms; also the index to resume from."""
    i = start
    while i < len(timeline) and timeline[i].at_ms <= t_ms:
        i += 1
    return (timeline[i - 1].zone if i > 0 else None), i


def evaluate(
    truth: Iterable[TruthRow],
    placements: Mapping[str, Sequence[Placement]],
    visits: Iterable[RecordedVisit],
    *,
    min_stay_s: float,
    end_ms: int | None = None,
    settle_s: float = 60.0,
) -> dict[str, Any]:
    """`end_ms`: when the run stopped; stays still going within `settle_s` of it
    are left out of the dwell figure (their true dwell is not known yet)."""
    by_shopper: dict[str, list[TruthRow]] = defaultdict(list)
    for row in truth:
        by_shopper[row.shopper].append(row)
    visits_by: dict[tuple[str, str], list[RecordedVisit]] = defaultdict(list)
    for visit in visits:
        visits_by[(visit.device, visit.zone)].append(visit)

    correct = total = 0
    seconds = 0.0
    extra_changes = 0
    hours = 0.0
    latencies: list[float] = []
    missed = 0
    dwell_errors: list[float] = []
    for rows in by_shopper.values():
        rows.sort(key=lambda r: r.t_ms)
        device = rows[0].device
        timeline = sorted(placements.get(device, ()), key=lambda p: p.at_ms)
        reported: list[str | None] = []
        cursor = 0
        for row in rows:
            zone, cursor = reported_at(timeline, row.t_ms, cursor)
            reported.append(zone)
            total += 1
            correct += zone == row.zone
        span_ms = rows[-1].t_ms - rows[0].t_ms
        step_ms = span_ms / (len(rows) - 1) if len(rows) > 1 else 1000  # the truth interval
        seconds += (span_ms + step_ms) / 1000
        hours += (span_ms + step_ms) / 3_600_000
        true_changes = sum(1 for a, b in itertools.pairwise(rows) if a.zone != b.zone)
        seen = [z for z in reported if z is not None]
        reported_changes = sum(1 for a, b in itertools.pairwise(seen) if a != b)
        extra_changes += max(0, reported_changes - true_changes)
        for stay in stays(rows)[1:]:
            if stay.zone is None or stay.seconds < min_stay_s:
                continue
            first = next(
                (
                    r.t_ms
                    for r, z in zip(rows, reported, strict=True)
                    if stay.start_ms <= r.t_ms <= stay.end_ms and z == stay.zone
                ),
                None,
            )
            if first is None:
                missed += 1
            else:
                latencies.append((first - stay.start_ms) / 1000)
        for stay in stays(rows):
            if stay.zone is None or stay.seconds < min_stay_s:
                continue
            if end_ms is not None and stay.end_ms >= end_ms - settle_s * 1000:
                continue
            best = _best_overlap(visits_by.get((device, stay.zone), []), stay)
            if best is None or best.dwell_s is None:
                dwell_errors.append(1.0)
            else:
                dwell_errors.append(abs(best.dwell_s - stay.seconds) / stay.seconds)

    changes = len(latencies) + missed
    return {
        "zone_accuracy": round(correct / total, 4) if total else None,
        "flaps_per_shopper_hour": round(extra_changes / hours, 3) if hours else None,
        "change_latency_median_s": _round(statistics.median(latencies)) if latencies else None,
        "change_latency_p90_s": _round(_percentile(latencies, 0.9)) if latencies else None,
        "changes_missed_fraction": round(missed / changes, 4) if changes else None,
        "changes_already_reported_fraction": (
            round(sum(1 for latency in latencies if latency <= 0) / changes, 4) if changes else None
        ),
        "dwell_mae_ratio": round(statistics.fmean(dwell_errors), 4) if dwell_errors else None,
        "shopper_seconds": round(seconds),
        "truth_rows": total,
        "shoppers": len(by_shopper),
        "true_visits": len(dwell_errors),
    }


def _best_overlap(candidates: Sequence[RecordedVisit], stay: Stay) -> RecordedVisit | None:
    best, best_overlap = None, 0
    for visit in candidates:
        left = visit.left_ms if visit.left_ms is not None else visit.entered_ms
        overlap = min(left, stay.end_ms) - max(visit.entered_ms, stay.start_ms)
        if overlap > best_overlap:
            best, best_overlap = visit, overlap
    return best


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _round(value: float) -> float:
    return round(value, 2)
