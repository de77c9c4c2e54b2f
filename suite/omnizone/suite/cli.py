"""The ``omnizone`` command: it only assembles. Each part brings its own
command group (gateway, server, sim); the suite adds the benchmarks, the
evaluations, the demo and the report. Each command imports its heavy
dependencies lazily, so ``omnizone gateway …`` works on a gateway-only install."""

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import typer

from omnizone.gateway.cli import make_gateway_app
from omnizone.server.cli import server_app
from omnizone.sim.cli import sim_app
from omnizone.suite.bench.cli import bench_app
from omnizone.suite.commands import demo, report
from omnizone.suite.datasets.cli import datasets_app
from omnizone.suite.evaluation.cli import eval_app

if TYPE_CHECKING:
    from omnizone.gateway.ble.backend import BleBackend
    from omnizone.gateway.settings import BleSettings


def gateway_ble_backend(ble: "BleSettings") -> "AbstractAsyncContextManager[BleBackend]":
    """``ble.feed: udp://…`` (QA, the end-to-end tests): the simulator's emulated
    adapter, fed over UDP; otherwise the system's Bluetooth, as on a gateway
    alone. The simulator is imported only when a feed asks for it."""
    if ble.feed:
        from omnizone.sim.devices.ble_backend import udp_feed

        return udp_feed(ble)
    from omnizone.gateway.ble.backend import system_backend

    return system_backend(ble)


app = typer.Typer(
    help="omnizone: in-store proximity — gateways, server, simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(make_gateway_app(ble_backend=gateway_ble_backend), name="gateway")
app.add_typer(server_app, name="server")
sim_app.add_typer(datasets_app, name="datasets")  # needs the server's survey format
app.add_typer(sim_app, name="sim")
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
app.command()(report)
app.command()(demo)
