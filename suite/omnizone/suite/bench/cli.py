"""``omnizone bench …``: speed and latency, printed as JSON (docs/benchmarks.md).
Heavy imports stay inside the commands, so ``--help`` needs no server install."""

from typing import Annotated

import typer

from omnizone.suite.output import print_result

bench_app = typer.Typer(help="Benchmarks that print JSON (see docs/benchmarks.md).")


@bench_app.command("localize")
def bench_localize(
    devices: Annotated[int, typer.Option(help="devices in the largest run")] = 5000,
    anchors: Annotated[int, typer.Option(help="anchors (gateways/beacons)")] = 40,
    model: Annotated[str, typer.Option(help="grid (position filter) or zone")] = "grid",
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Localizer core throughput on one core, and how it scales with devices."""
    from omnizone.suite.bench.localize import run_localize_bench

    sizes = sorted({s for s in (500, 1000, 2000, devices) if s <= devices})
    try:
        result = run_localize_bench(devices=devices, anchors=anchors, sizes=sizes, model=model)
    except ValueError as error:
        typer.echo(f"omnizone bench localize: {error}", err=True)
        raise typer.Exit(2) from None
    print_result(result, json_output)


@bench_app.command("gateway")
def bench_gateway(
    seconds: Annotated[float, typer.Option(help="length of the paced run")] = 5.0,
    rate: Annotated[int, typer.Option(help="adverts per second in the paced run")] = 2000,
    devices: Annotated[int, typer.Option(help="distinct advertisers")] = 300,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Decode + aggregate throughput on one core; CPU and memory at a given advert rate."""
    from omnizone.suite.bench.gateway import run_gateway_bench

    result = run_gateway_bench(seconds=seconds, rate=rate, devices=devices)
    print_result(result, json_output)


@bench_app.command("analytics")
def bench_analytics(
    days: Annotated[int, typer.Option(help="simulated days of one store")] = 7,
    trips: Annotated[int, typer.Option(help="store trips per day")] = 3000,
    runs: Annotated[int, typer.Option(help="timed runs of each view")] = 5,
    database_url: Annotated[
        str | None,
        typer.Option(help="an empty database to fill; default: SQLite in a temp dir"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    staff: Annotated[int, typer.Option(help="staff phones on the floor every day")] = 0,
) -> None:
    """Every analytics view over a simulated week: latency per view and row counts."""
    from omnizone.suite.bench.analytics import run_analytics_bench

    if days < 1 or trips < 1 or runs < 1 or staff < 0:
        typer.echo(
            "omnizone bench analytics: --days, --trips and --runs must be positive", err=True
        )
        raise typer.Exit(2)
    try:
        result = run_analytics_bench(
            days=days, trips_per_day=trips, runs=runs, database_url=database_url, staff=staff
        )
    except ValueError as error:
        typer.echo(f"omnizone bench analytics: {error}", err=True)
        raise typer.Exit(2) from None
    print_result(result, json_output)


@bench_app.command("offers")
def bench_offers(
    shoppers: Annotated[int, typer.Option(help="shoppers with the app, each on a WebSocket")] = 500,
    duration: Annotated[float, typer.Option(help="wall seconds of store traffic")] = 60.0,
    database_url: Annotated[
        str | None,
        typer.Option(help="server database (an empty one); default: SQLite in a temp dir"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Offer latency from gateway publish to the phone, through a real broker and server."""
    from omnizone.suite.bench.offers import run_offers_bench

    if shoppers < 1 or duration <= 0:
        typer.echo("omnizone bench offers: --shoppers and --duration must be positive", err=True)
        raise typer.Exit(2)
    result = run_offers_bench(shoppers=shoppers, duration_s=duration, database_url=database_url)
    print_result(result, json_output)


@bench_app.command("live-map")
def bench_live_map(
    shoppers: Annotated[int, typer.Option(help="shoppers in the store, each with the app")] = 500,
    seconds: Annotated[float, typer.Option(help="wall seconds measured in the browser")] = 20.0,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The dashboard's live map in headless Chromium: updates per second, render time, lag."""
    from omnizone.suite.bench.live_map import run_live_map_bench

    if shoppers < 1 or seconds <= 0:
        typer.echo("omnizone bench live-map: --shoppers and --seconds must be positive", err=True)
        raise typer.Exit(2)
    try:
        result = run_live_map_bench(shoppers=shoppers, seconds=seconds)
    except RuntimeError as error:
        typer.echo(f"omnizone bench live-map: {error}", err=True)
        raise typer.Exit(2) from None
    print_result(result, json_output)


@bench_app.command("record-replay")
def bench_record_replay(
    gateways: Annotated[int, typer.Option(help="gateways the recorder hears, 1 msg/s each")] = 50,
    record_seconds: Annotated[float, typer.Option(help="wall seconds of recording")] = 60.0,
    replay_gateways: Annotated[int, typer.Option(help="gateways of the replayed store")] = 10,
    hours: Annotated[float, typer.Option(help="recorded hours to replay")] = 1.0,
    speed: Annotated[float, typer.Option(help="replay speed")] = 60.0,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Recorder CPU at 50 gateways; an hour of a 10-gateway store replayed at --speed 60."""
    from omnizone.suite.bench.record_replay import run_record_replay_bench

    if min(gateways, replay_gateways) < 1 or min(record_seconds, hours, speed) <= 0:
        typer.echo("omnizone bench record-replay: every option must be positive", err=True)
        raise typer.Exit(2)
    result = run_record_replay_bench(
        gateways=gateways,
        record_s=record_seconds,
        replay_gateways=replay_gateways,
        hours=hours,
        speed=speed,
    )
    print_result(result, json_output)


@bench_app.command("chain")
def bench_chain(
    stores: Annotated[int, typer.Option(help="stores of the chain (copies of the example)")] = 50,
    gateways_per_store: Annotated[int, typer.Option(help="gateways per store (10)")] = 10,
    shoppers_per_store: Annotated[
        int, typer.Option(help="app shoppers per store, each on a WebSocket")
    ] = 50,
    workers: Annotated[str, typer.Option(help="worker counts to measure, e.g. 1,2")] = "1,2",
    duration: Annotated[float, typer.Option(help="wall seconds of traffic per run")] = 60.0,
    partitions: Annotated[int, typer.Option(help="partitions of the stream")] = 16,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """A chain on one machine (3 NATS nodes, PostgreSQL, workers, an API node), per worker count."""
    from omnizone.suite.bench.chain import run_chain_bench

    try:
        counts = [int(w) for w in workers.split(",") if w.strip()]
    except ValueError:
        typer.echo(f"omnizone bench chain: --workers {workers!r}: give counts like 1,2", err=True)
        raise typer.Exit(2) from None
    try:
        result = run_chain_bench(
            stores=stores,
            gateways_per_store=gateways_per_store,
            shoppers_per_store=shoppers_per_store,
            workers=counts,
            duration_s=duration,
            partitions=partitions,
        )
    except ValueError as error:
        typer.echo(f"omnizone bench chain: {error}", err=True)
        raise typer.Exit(2) from None
    print_result(result, json_output)


@bench_app.command("stream")
def bench_stream(
    shoppers: Annotated[int, typer.Option(help="shoppers in the store at once (open stays)")] = 500,
    events: Annotated[
        int, typer.Option(help="events written to and read from the outbox")
    ] = 20_000,
    runs: Annotated[int, typer.Option(help="timed alert evaluations")] = 20,
    database_url: Annotated[
        str | None, typer.Option(help="an empty database; default: SQLite in a temp dir")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """One alert evaluation over a crowd, and the event stream's throughput (issue 18)."""
    from omnizone.suite.bench.stream import run_stream_bench

    if shoppers < 1 or events < 1 or runs < 1:
        typer.echo(
            "omnizone bench stream: --shoppers, --events and --runs must be positive", err=True
        )
        raise typer.Exit(2)
    print_result(run_stream_bench(shoppers, events, runs, database_url), json_output)


@bench_app.command("follow-ups")
def bench_follow_ups(
    shoppers: Annotated[int, typer.Option(help="visits that end with a try-on")] = 2000,
    database_url: Annotated[
        str | None, typer.Option(help="an empty database; default: SQLite in a temp dir")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Follow-ups after the visit: scheduling, the due run and the report (CPU per item)."""
    from omnizone.suite.bench.follow_ups import run_follow_ups_bench

    try:
        result = run_follow_ups_bench(shoppers=shoppers, database_url=database_url)
    except ValueError as error:
        typer.echo(f"omnizone bench follow-ups: {error}", err=True)
        raise typer.Exit(2) from None
    print_result(result, json_output)


@bench_app.command("partitions")
def bench_partitions(
    sightings: Annotated[
        int, typer.Option(help="sightings spread over --days UTC days")
    ] = 2_000_000,
    days: Annotated[int, typer.Option(help="days of sightings; the first is pruned")] = 5,
    batches: Annotated[int, typer.Option(help="timed ingest COPY batches per table")] = 20,
    database_url: Annotated[
        str | None,
        typer.Option(help="a PostgreSQL database; default: a private server the bench starts"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Sightings by day on PostgreSQL: pruning a day by DELETE vs a dropped partition; COPY cost."""
    from omnizone.suite.bench.partitions import run_partitions_bench

    try:
        result = run_partitions_bench(
            sightings=sightings, days=days, batches=batches, database_url=database_url
        )
    except ValueError as error:
        typer.echo(f"omnizone bench partitions: {error}", err=True)
        raise typer.Exit(2) from None
    print_result(result, json_output)
