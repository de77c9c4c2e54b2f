"""Running a simulation in wall time: pacing (speed × real time or flat out)
and periodic progress callbacks."""

import threading
import time
from collections.abc import Callable

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.sim.engine import Simulation


def run_paced(
    simulation: Simulation,
    *,
    speed: float | None,
    stop: threading.Event | None = None,
    wall_limit_s: float | None = None,
    on_progress: Callable[[Simulation], None] | None = None,
    progress_every_s: float = 0.5,
    on_wall_clock: bool = False,
) -> None:
    """Step until the scenario ends, `stop` is set or `wall_limit_s` passes.

    speed: simulated seconds per wall second (None: as fast as possible).
    on_wall_clock: the simulated clock reads epoch time (speed 1, as in a
    latency benchmark): each step waits for the wall clock to reach it, so a
    gateway's `sent_ms` is when it really publishes, however long the set-up took.
    """
    wall_start = time.monotonic()
    sim_start = simulation.clock.now_ms
    next_progress = wall_start
    while not simulation.finished:
        if stop is not None and stop.is_set():
            break
        now = time.monotonic()
        if wall_limit_s is not None and now - wall_start >= wall_limit_s:
            break
        if speed is not None:  # wait for the step's moment: simulated time never runs ahead
            next_ms = simulation.clock.now_ms + simulation.scenario.tick_ms
            if on_wall_clock:
                due = time.monotonic() + (next_ms - wall_clock_ms()) / 1000
            else:
                due = wall_start + (next_ms - sim_start) / 1000 / speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        simulation.step()
        if on_progress is not None and time.monotonic() >= next_progress:
            next_progress = time.monotonic() + progress_every_s
            on_progress(simulation)
    if on_progress is not None:
        on_progress(simulation)
