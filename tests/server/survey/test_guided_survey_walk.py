"""The guided survey's samples, as pure state: one gateway window of the
staff phone per cell, a window closed once every gateway has had time to
report it, late readings and the walk-in counted, never merged silently."""

import math

from omnizone.server.domain.localize.guided_survey import EnoughRule, Reading, SurveyWalk

ANCHORS = ("gw-a", "gw-b", "gw-c")


def _walk(**extra: int) -> SurveyWalk:
    values = {"settle_windows": 0, **extra}
    return SurveyWalk(ANCHORS, EnoughRule(min_windows=3, min_anchors=2), **values)


def _window(walk: SurveyWalk, start_ms: int, heard: dict[str, float]) -> None:
    for gateway, rssi in heard.items():
        walk.add([Reading(gateway, start_ms, 1000, rssi)])


def test_one_window_of_every_gateway_becomes_one_sample_of_the_zone() -> None:
    walk = _walk()
    walk.pick("shoes")
    for n in range(4):
        _window(walk, n * 1000, {"gw-a": -60.0 - n, "gw-b": -70.0})
    walk.finish()
    survey = walk.survey()
    assert survey.zones == ("shoes",) * 4
    assert survey.anchors == ANCHORS
    assert survey.rssi[:, 0].tolist() == [-60.0, -61.0, -62.0, -63.0]
    assert all(math.isnan(v) for v in survey.rssi[:, 2])  # gw-c never heard it
    (shoes,) = [p for p in walk.progress(["shoes", "denim"]) if p.zone == "shoes"]
    assert (shoes.windows, shoes.anchors, shoes.enough) == (4, ("gw-a", "gw-b"), True)


def test_a_zone_heard_by_too_few_anchors_is_not_enough_however_long_it_is_walked() -> None:
    walk = _walk()
    walk.pick("denim")
    for n in range(10):
        _window(walk, n * 1000, {"gw-c": -65.0})
    walk.finish()
    progress = {p.zone: p for p in walk.progress(["shoes", "denim"])}
    assert progress["denim"].windows == 10 and not progress["denim"].enough
    assert progress["shoes"].windows == 0 and not progress["shoes"].enough


def test_a_reading_for_a_closed_window_is_counted_late_and_not_merged() -> None:
    walk = _walk()
    walk.pick("shoes")
    _window(walk, 0, {"gw-a": -60.0})
    _window(walk, 2000, {"gw-a": -60.0})  # closes the window at 0
    _window(walk, 0, {"gw-b": -70.0})  # too late for it
    walk.finish()
    assert walk.late_readings == 1
    assert len(walk.survey()) == 2


def test_the_walk_in_is_left_out_and_a_pause_collects_nothing() -> None:
    walk = _walk(settle_windows=2)
    walk.pick("shoes")
    for n in range(5):
        _window(walk, n * 1000, {"gw-a": -60.0})
    walk.pick(None)
    for n in range(5, 9):
        _window(walk, n * 1000, {"gw-a": -60.0})
    walk.finish()
    assert walk.settling_dropped == 2
    assert len(walk.survey()) == 3


def test_a_full_session_counts_what_it_could_not_keep() -> None:
    walk = _walk(max_windows=3)
    walk.pick("shoes")
    for n in range(6):
        _window(walk, n * 1000, {"gw-a": -60.0})
    walk.finish()
    assert walk.full and len(walk.samples) == 3 and walk.over_limit == 3


def test_readings_of_gateways_the_store_does_not_have_are_counted() -> None:
    walk = _walk()
    walk.pick("shoes")
    walk.add([Reading("gw-elsewhere", 0, 1000, -50.0)])
    assert walk.unknown_gateway_readings == 1


def test_small_stores_need_every_anchor_they_have() -> None:
    assert EnoughRule.for_store(2).min_anchors == 2
    assert EnoughRule.for_store(10).min_anchors == 3
