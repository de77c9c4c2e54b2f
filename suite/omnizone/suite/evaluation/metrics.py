"""Localization and dwell accuracy against ground truth (the simulator's, or a
real recording's).

Pure functions over plain data. The definitions:

- zone_accuracy: of all shopper-seconds in the store (ground truth rows, one
  per second by default, finer with the scenario's ``ground_truth_interval_ms``,
  whatever a real track gives), the fraction where the zone the server
  reported last, at or before that instant, is the true zone.
- flaps_per_shopper_hour: per shopper, the number of reported zone changes
  beyond the number of true zone changes (never negative), summed and divided
  by the shoppers' hours in the store.
- n_truth_changes: the true zone changes (consecutive truth rows of a shopper
  in different zones, leaving and entering the store included).
- change latency (stable entry): for each true entry into a zone where the
  shopper then stays at least `min_stay_s` (``entries_scored`` of them), the
  delay, at the truth's own time resolution (the first truth row at which it
  holds), from the true entry to the first reported entry into the true zone
  that then holds for at least `hold_s` (3 s): the reported zone stays that
  zone for `hold_s` after it was reported (after the true entry, when the
  zone was already being reported then). A report that flaps away sooner is
  not an entry. A report still standing when the timeline ends holds.
  Entries with no such report during the stay count as missed
  (``changes_missed_fraction``), not folded into the median.
- first-report latency (the figure before issue 13, kept beside it):
  the same entries, the delay until the server first reports that zone at
  a truth row during the stay, however briefly (``first_report_latency_*``,
  ``first_report_missed_fraction``). changes_already_reported_fraction: the
  share of entries whose zone was already being reported at the true entry
  instant, i.e. before any reading from inside it (a guess that happened to
  come true, or a shopper lingering at the boundary).
- shopper_seconds: the time scored; truth_rows: the ground-truth rows behind it.
- dwell_mae_ratio: for each true visit (a stay of at least `min_stay_s`), the
  recorded visit of the same device and zone that overlaps it most; error =
  |recorded dwell - true dwell| / true dwell, 1.0 when no visit was recorded;
  the mean over true visits.
"""

import bisect
import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: A reported entry counts once the reported zone stays for this long.
STABLE_HOLD_S = 3.0


@dataclass(frozen=True, slots=True)
class TruthRow:
    t_ms: int
    shopper: str
    device: str
    zone: str | None
    x: float | None = None  # the true position (metres), when the truth has it
    y: float | None = None


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
    hold_s: float = STABLE_HOLD_S,
) -> dict[str, Any]:
    """`end_ms`: when the run stopped; stays still going within `settle_s` of it
    are left out of the dwell figure (their true dwell is not known yet).
    `hold_s`: how long a reported entry must hold to count (change latency)."""
    by_shopper: dict[str, list[TruthRow]] = defaultdict(list)
    for row in truth:
        by_shopper[row.shopper].append(row)
    visits_by: dict[tuple[str, str], list[RecordedVisit]] = defaultdict(list)
    for visit in visits:
        visits_by[(visit.device, visit.zone)].append(visit)
    hold_ms = round(hold_s * 1000)

    correct = total = 0
    seconds = 0.0
    extra_changes = 0
    truth_changes = 0
    hours = 0.0
    latencies: list[float] = []
    missed = 0
    first_latencies: list[float] = []
    first_missed = 0
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
        truth_changes += true_changes
        seen = [z for z in reported if z is not None]
        reported_changes = sum(1 for a, b in itertools.pairwise(seen) if a != b)
        extra_changes += max(0, reported_changes - true_changes)
        segments = report_segments(timeline)
        for stay in stays(rows)[1:]:
            if stay.zone is None or stay.seconds < min_stay_s:
                continue
            first = first_report(stay, rows, reported)
            if first is None:
                first_missed += 1
            else:
                first_latencies.append((first - stay.start_ms) / 1000)
            stable = stable_entry(stay, rows, reported, segments, hold_ms)
            if stable is None:
                missed += 1
            else:
                latencies.append((stable - stay.start_ms) / 1000)
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
        "change_latency_median_s": _median(latencies),
        "change_latency_p90_s": _p90(latencies),
        "changes_missed_fraction": round(missed / changes, 4) if changes else None,
        "n_truth_changes": truth_changes,
        "entries_scored": changes,
        "first_report_latency_median_s": _median(first_latencies),
        "first_report_latency_p90_s": _p90(first_latencies),
        "first_report_missed_fraction": round(first_missed / changes, 4) if changes else None,
        "changes_already_reported_fraction": (
            round(sum(1 for latency in first_latencies if latency <= 0) / changes, 4)
            if changes
            else None
        ),
        "dwell_mae_ratio": round(statistics.fmean(dwell_errors), 4) if dwell_errors else None,
        "shopper_seconds": round(seconds),
        "truth_rows": total,
        "shoppers": len(by_shopper),
        "true_visits": len(dwell_errors),
    }


def delayed_truth(truth: Iterable[TruthRow], delay_ms: int) -> dict[str, list[Placement]]:
    """The ceiling of a causal localizer: each device's true zone timeline,
    every change reported ``delay_ms`` after it happened (its changes only, as
    ``zone_recorder`` keeps a server's). Scored with ``evaluate``, it has no
    flaps and a stable-entry latency of ``delay_ms`` (at the truth's
    resolution), so its zone accuracy is the most any localizer that
    reports entries that late can reach."""
    if delay_ms < 0:
        raise ValueError("delay_ms must not be negative")
    by_device: dict[str, list[TruthRow]] = defaultdict(list)
    for row in truth:
        by_device[row.device].append(row)
    timelines: dict[str, list[Placement]] = {}
    for device, rows in by_device.items():
        rows.sort(key=lambda r: r.t_ms)
        timeline: list[Placement] = []
        for row in rows:
            if not timeline or timeline[-1].zone != row.zone:
                timeline.append(Placement(row.t_ms + delay_ms, row.zone))
        timelines[device] = timeline
    return timelines


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of a reported timeline in one zone."""

    zone: str | None
    start_ms: int
    end_ms: int | None  # when another zone was reported; None: still standing at the end


def report_segments(timeline: Sequence[Placement]) -> list[Segment]:
    """A timeline (sorted by time) as its stretches of one reported zone."""
    out: list[Segment] = []
    for placement in timeline:
        if out and out[-1].zone == placement.zone:
            continue
        if out:
            out[-1] = Segment(out[-1].zone, out[-1].start_ms, placement.at_ms)
        out.append(Segment(placement.zone, placement.at_ms, None))
    return out


def first_report(
    stay: Stay, rows: Sequence[TruthRow], reported: Sequence[str | None]
) -> int | None:
    """The first truth row time in the stay at which its zone was reported."""
    return next(
        (
            r.t_ms
            for r, z in zip(rows, reported, strict=True)
            if stay.start_ms <= r.t_ms <= stay.end_ms and z == stay.zone
        ),
        None,
    )


def stable_entry(
    stay: Stay,
    rows: Sequence[TruthRow],
    reported: Sequence[str | None],
    segments: Sequence[Segment],
    hold_ms: int,
) -> int | None:
    """The first truth row time in the stay at which its zone is reported by a
    stretch that holds for ``hold_ms`` after it began (after the true entry,
    if it began before); None when no stretch during the stay does."""
    starts = [segment.start_ms for segment in segments]
    for row, zone in zip(rows, reported, strict=True):
        if not stay.start_ms <= row.t_ms <= stay.end_ms or zone != stay.zone:
            continue
        segment = segments[bisect.bisect_right(starts, row.t_ms) - 1]
        entered = max(segment.start_ms, stay.start_ms)
        if segment.end_ms is None or segment.end_ms - entered >= hold_ms:
            return row.t_ms
    return None


def _median(values: Sequence[float]) -> float | None:
    return _round(statistics.median(values)) if values else None


def _p90(values: Sequence[float]) -> float | None:
    return _round(_percentile(values, 0.9)) if values else None


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
