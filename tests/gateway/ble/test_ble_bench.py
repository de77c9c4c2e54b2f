"""The gateway benchmark returns its figures; the numbers themselves are printed
by `omnizone bench gateway`, never asserted (see docs/benchmarks.md)."""

from omnizone.suite.bench.gateway import advert_mix, run_gateway_bench


def test_the_advert_mix_is_half_noise() -> None:
    from omnizone.gateway.ble.adstructures import parse_ad_structures
    from omnizone.gateway.ble.decode import decode_advertisement

    mix = advert_mix(devices=50)
    named = 0
    for _address, payload, _rssi in mix:
        ad = parse_ad_structures(payload, -70)
        named += decode_advertisement(ad.manufacturer_data, ad.service_data) is not None
    assert named == len(mix) // 2


def test_run_gateway_bench_returns_every_figure() -> None:
    result = run_gateway_bench(seconds=0.5, rate=500, devices=20)
    for key in ("adverts_per_s", "cpu_percent_at_2000_adverts_s", "rss_mb"):
        assert isinstance(result[key], int | float) and result[key] > 0, key
    assert (result["seconds"], result["rate"], result["devices"]) == (0.5, 500, 20)
    assert result["python"] and result["platform"]
    paced = result["paced"]
    assert paced["pushed"] > 0 and paced["delivered"] == paced["pushed"]
    assert 0 < paced["kept"] < paced["delivered"]  # the noise was dropped
    assert paced["messages"] >= 1  # at least one window reached the outbox
    assert paced["scanner"] == "scanning (active)"
    assert result["heavy_modules_loaded"] == []
