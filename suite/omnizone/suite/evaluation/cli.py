"""``omnizone eval …``: accuracy against ground truth, printed as JSON
(docs/benchmarks.md). Heavy imports stay inside the commands."""

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from omnizone.paths import shipped_config
from omnizone.suite.output import print_result

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from omnizone.sim.scenario import PhoneMode, Scenario

eval_app = typer.Typer(help="Accuracy against ground truth; prints JSON (docs/benchmarks.md).")


def _progress(progress: "Progress", task: "TaskID", fraction: float) -> None:
    progress.update(task, completed=fraction)


@eval_app.command("localize")
def eval_localize(
    scenario: Annotated[Path, typer.Option(help="scenario YAML (config/scenarios/…)")],
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    duration: Annotated[float | None, typer.Option(help="simulated seconds")] = None,
    localizer: Annotated[
        str, typer.Option(help="grid (position filter, the default) or zone (zone filter)")
    ] = "grid",
    enter_probability: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="the filter's hysteresis bar instead of its default (latency/flap trade-off)",
        ),
    ] = None,
    truth_interval_ms: Annotated[
        int | None,
        typer.Option(
            min=100, help="ground truth every N ms (default: the scenario's, 1000): finer latency"
        ),
    ] = None,
    phone_mode: Annotated[
        str | None,
        typer.Option(
            help="every phone advertises, listens or both (issue 15); all: one run per mode"
        ),
    ] = None,
    window_ms: Annotated[
        int | None,
        typer.Option(
            min=100,
            help="the gateways' BLE window instead of the scenario's (1000 ms by default): "
            "shorter windows let the filter decide sooner",
        ),
    ] = None,
    delayed_truth: Annotated[
        list[float] | None,
        typer.Option(
            min=0.0,
            help="also score the true zones reported this many seconds late (repeatable): "
            "the ceiling of a localizer with that latency",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Simulate the scenario through the real gateway and server path; score the
    localizer and the nearest-gateway baseline against ground truth."""
    from rich.console import Console
    from rich.progress import Progress

    from omnizone.suite.evaluation.localize import run_localize_eval

    console = Console(stderr=True)
    if localizer not in ("grid", "zone"):
        console.print(f"[red]--localizer must be grid or zone, not {localizer!r}[/]")
        raise typer.Exit(2)
    modes = ("advertise", "listen", "both")
    if phone_mode is not None and phone_mode not in (*modes, "all"):
        console.print(
            f"[red]--phone-mode must be advertise, listen, both or all, not {phone_mode!r}[/]"
        )
        raise typer.Exit(2)
    plan = _scenario_or_exit(
        console,
        scenario,
        seed=seed,
        duration_s=duration,
        ground_truth_interval_ms=truth_interval_ms,
        window_ms=window_ms,
    )
    runs = modes if phone_mode == "all" else (phone_mode,)
    results: dict[str, dict[str, Any]] = {}
    with Progress(console=console, transient=True) as progress:
        for mode in runs:
            task = progress.add_task(f"{plan.name} (seed {plan.seed}) {mode or ''}", total=1.0)
            results[mode or "scenario"] = run_localize_eval(
                plan,
                localizer="grid" if localizer == "grid" else "zone",
                enter_probability=enter_probability,
                on_progress=functools.partial(_progress, progress, task),
                phone_mode=cast("PhoneMode | None", mode),
                truth_delays_s=tuple(delayed_truth or ()),
            )
    if phone_mode == "all":
        print_result({"scenario": plan.name, "modes": results}, json_output, console)
    else:
        print_result(next(iter(results.values())), json_output, console)


@eval_app.command("selfcal")
def eval_selfcal(
    scenario: Annotated[
        Path | None,
        typer.Option(help="scenario YAML with hidden radio.gateways; default: the shipped selfcal"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    duration: Annotated[float | None, typer.Option(help="simulated seconds")] = None,
    warmup: Annotated[
        float, typer.Option(min=10.0, help="seconds the gateways hear one another before opening")
    ] = 120.0,
    calibration: Annotated[
        list[str] | None,
        typer.Option(help="default, true or self (repeatable; default: all three)"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Zone accuracy with the default radio parameters, the simulator's hidden
    true ones, and the gateways' self-calibration alone (docs/localization.md)."""
    from rich.console import Console
    from rich.progress import Progress

    from omnizone.suite.evaluation.selfcal import MODES, run_selfcal_eval

    console = Console(stderr=True)
    modes = tuple(calibration or MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        console.print(
            f"[red]--calibration must be one of {', '.join(MODES)}, not {unknown[0]!r}[/]"
        )
        raise typer.Exit(2)
    plan = _scenario_or_exit(
        console,
        scenario or shipped_config("scenarios/selfcal.yaml"),
        seed=seed,
        duration_s=duration,
    )
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{plan.name} (seed {plan.seed})", total=1.0)
        result = run_selfcal_eval(
            plan,
            warmup_s=warmup,
            modes=modes,
            on_progress=lambda mode, f: progress.update(
                task, completed=f, description=f"{plan.name} {mode}"
            ),
        )
    print_result(result, json_output, console)


@eval_app.command("beacons")
def eval_beacons(
    scenario: Annotated[
        Path | None,
        typer.Option(help="scenario YAML with fixed_beacons; default: the shipped beacons.yaml"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    duration: Annotated[float | None, typer.Option(help="simulated seconds")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The store's fixed beacons through the real gateway and ingest: telemetry,
    alerts and fitted radio against the simulator's hidden truth."""
    from rich.console import Console
    from rich.progress import Progress

    from omnizone.suite.evaluation.beacons import run_beacon_eval

    console = Console(stderr=True)
    plan = _scenario_or_exit(
        console,
        scenario or shipped_config("scenarios/beacons.yaml"),
        seed=seed,
        duration_s=duration,
    )
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{plan.name} (seed {plan.seed})", total=1.0)
        result = run_beacon_eval(plan, on_progress=lambda f: progress.update(task, completed=f))
    print_result(result, json_output, console)


@eval_app.command("fingerprint")
def eval_fingerprint(
    train: Annotated[Path | None, typer.Option(help="survey CSV to learn from")] = None,
    test: Annotated[Path | None, typer.Option(help="survey CSV to classify")] = None,
    suite: Annotated[
        Path | None,
        typer.Option(help="folder: run every <name>-train.csv / <name>-test.csv pair in it"),
    ] = None,
    through_phone: Annotated[
        bool,
        typer.Option(
            "--through-phone",
            help="send the test rows as phones' beacon windows through the shopper API "
            "into a server started from the store file (--store, or <name>.yaml beside "
            "each suite pair) that names the training survey (issue 15)",
        ),
    ] = False,
    store: Annotated[
        Path | None,
        typer.Option(
            help="with --through-phone and --test: the store file naming the train survey"
        ),
    ] = None,
    send: Annotated[
        str,
        typer.Option(
            help="with --through-phone: rows (each row one phone's only window) or walk "
            "(each zone's rows as one phone's consecutive windows)"
        ),
    ] = "rows",
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Train on one survey, classify the other; compare with scikit-learn peers
    (kNN k=3, random forest, gradient boosting) and a tuned kNN baseline.
    With --through-phone, the rows go through the phone path and the server."""
    from rich.console import Console

    from omnizone.server.domain.localize.survey import SurveyError, load_survey
    from omnizone.store import StoreConfigError
    from omnizone.suite.evaluation.fingerprint import (
        SuiteError,
        evaluate_fingerprint,
        evaluate_fingerprint_suite,
    )
    from omnizone.suite.evaluation.phone_fingerprint import (
        SendMode,
        evaluate_through_phone,
        evaluate_through_phone_suite,
    )

    console = Console(stderr=True)
    if through_phone:
        if send not in ("rows", "walk"):
            console.print(f"[red]--send must be rows or walk, not {send!r}[/]")
            raise typer.Exit(2)
        if train is not None or (suite is None) == (store is None or test is None):
            console.print("[red]with --through-phone give --store and --test, or --suite DIR[/]")
            raise typer.Exit(2)
    elif (suite is None) == (train is None or test is None) or (
        suite is not None and (train is not None or test is not None)
    ):
        console.print("[red]give either --train and --test, or --suite DIR[/]")
        raise typer.Exit(2)
    mode: SendMode = "walk" if send == "walk" else "rows"
    try:
        if suite is not None:
            with console.status("fingerprint suite") as status:
                if through_phone:
                    result = evaluate_through_phone_suite(
                        suite,
                        mode=mode,
                        on_pair=lambda name: status.update(f"through the phone: {name}"),
                    )
                else:
                    result = evaluate_fingerprint_suite(
                        suite, on_pair=lambda name: status.update(f"fingerprint suite: {name}")
                    )
        elif through_phone:
            assert store is not None and test is not None
            result = evaluate_through_phone(store, test, mode=mode)
        else:
            assert train is not None and test is not None
            result = evaluate_fingerprint(load_survey(train), load_survey(test))
    except (SurveyError, SuiteError, StoreConfigError) as error:
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(2) from None
    print_result(result, json_output, console)


@eval_app.command("replay")
def eval_replay(
    store: Annotated[Path, typer.Option(help="store file (YAML) the readings were taken in")],
    readings: Annotated[Path, typer.Option(help="readings CSV: time,anchor,device,rssi")],
    truth: Annotated[Path, typer.Option(help="ground truth CSV: time,device,x,y or zone")],
    survey: Annotated[
        Path | None,
        typer.Option(
            help="survey CSV, used as the store's own (localization.survey) and by the "
            "random-forest peer; default: the survey the store file names, if any"
        ),
    ] = None,
    localizer: Annotated[
        str, typer.Option(help="grid (position filter, the default) or zone (zone filter)")
    ] = "grid",
    window_ms: Annotated[
        int,
        typer.Option(
            min=100, help="the BLE window the readings are cut into (a gateway's window_ms)"
        ),
    ] = 1000,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Replay real readings through the deployed server (build_server, ingest);
    score it, the nearest-gateway server and a random forest on the survey
    against the ground truth."""
    from rich.console import Console

    from omnizone.server.domain.localize.survey import SurveyError
    from omnizone.sim.recording.imports import ImportProblems
    from omnizone.store import StoreConfigError
    from omnizone.suite.evaluation.replay import run_replay_eval

    console = Console(stderr=True)
    if localizer not in ("grid", "zone"):
        console.print(f"[red]--localizer must be grid or zone, not {localizer!r}[/]")
        raise typer.Exit(2)
    try:
        result = run_replay_eval(
            store,
            readings,
            truth,
            survey_path=survey,
            localizer="grid" if localizer == "grid" else "zone",
            window_ms=window_ms,
        )
    except (ImportProblems, SurveyError, StoreConfigError) as error:
        console.print(str(error), markup=False, style="red")
        raise typer.Exit(2) from None
    print_result(result, json_output, console)


def _scenario_or_exit(console: "Console", path: Path, **overrides: Any) -> "Scenario":
    """The scenario file, or its problems on stderr and exit 2 (no traceback)."""
    from omnizone.sim.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path, **overrides)
    except ScenarioError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None


@eval_app.command("predict")
def eval_predict(
    seed: Annotated[int, typer.Option(help="the simulated history's seed")] = 1,
    days: Annotated[int, typer.Option(help="days of history")] = 35,
    cut_day: Annotated[int, typer.Option(help="train on days before it, score the 7 after")] = 28,
    trips_per_day: Annotated[int, typer.Option(help="store trips on an ordinary day")] = 600,
    holiday: Annotated[
        bool, typer.Option(help="a public holiday (11 November) in the history")
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Backtest next-product and footfall predictions on a simulated history
    against the naive baselines (most popular products; same hour last week)."""
    from rich.console import Console

    from omnizone.suite.evaluation.predict import run_predict_eval

    console = Console(stderr=True)
    if not 14 <= cut_day <= days - 7:
        console.print(f"[red]--cut-day must be 14 .. days - 7 ({days - 7}), got {cut_day}[/]")
        raise typer.Exit(2)
    if trips_per_day < 1:
        console.print(f"[red]--trips-per-day must be at least 1, got {trips_per_day}[/]")
        raise typer.Exit(2)
    with console.status(f"predictions backtest (seed {seed})"):
        result = run_predict_eval(
            seed=seed, days=days, cut_day=cut_day, trips_per_day=trips_per_day, holiday=holiday
        )
    print_result(result, json_output, console)
