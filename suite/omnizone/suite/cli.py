"""The ``omnizone`` command: it only assembles. Each part brings its own
command group (gateway, server, sim); the suite adds the benchmarks, the
evaluations, the demo and the report. Each command imports its heavy
dependencies lazily, so ``omnizone gateway …`` works on a gateway-only install."""

import typer

from omnizone.gateway.cli import gateway_app
from omnizone.server.cli import server_app
from omnizone.sim.cli import sim_app
from omnizone.suite.bench.cli import bench_app
from omnizone.suite.commands import demo, report
from omnizone.suite.evaluation.cli import eval_app

app = typer.Typer(
    help="omnizone: in-store proximity — gateways, server, simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(gateway_app, name="gateway")
app.add_typer(server_app, name="server")
app.add_typer(sim_app, name="sim")
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
app.command()(report)
app.command()(demo)
