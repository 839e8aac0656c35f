"""``ci-guard simulate``: serve the scripted fake provider in the foreground."""

from __future__ import annotations

import asyncio

import click

from ci_guard.simulator.scenario import NAMED, load_scenario


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=0, help="Port to listen on (0: a free port).")
@click.option("--scenario", "scenario_spec", default="tool-loop", show_default=True,
              help="A named scenario (see --list) or a YAML scenario file.")
@click.option("--api-key", default=None, help="Accept only this key (default: any key).")
@click.option("--list", "list_only", is_flag=True, help="List the named scenarios and exit.")
def simulate(host: str, port: int, scenario_spec: str, api_key: str | None, list_only: bool) -> int:
    """Serve a fake Anthropic / OpenAI provider for rehearsals and tests.

    \b
    Examples:
      ci-guard simulate --port 8099
      ci-guard simulate --scenario retry-storm
      ANTHROPIC_BASE_URL=http://127.0.0.1:8099 claude -p "hi"
    """
    if list_only:
        for name, spec in NAMED.items():
            click.echo(f"{name:18} {spec['description']}")
        return 0
    scenario = load_scenario(scenario_spec)  # bad names or files exit 2 before anything listens
    try:
        asyncio.run(_serve(scenario, host, port, api_key))
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(scenario: object, host: str, port: int, api_key: str | None) -> None:
    from ci_guard.simulator.server import Simulator

    sim = Simulator(scenario, host, port, api_key)  # type: ignore[arg-type]
    await sim.start()
    click.echo(f"ci-guard simulator: scenario {sim.scenario.name}")
    click.echo(f"  ANTHROPIC_BASE_URL={sim.url}")
    click.echo(f"  OPENAI_BASE_URL={sim.openai_url}")
    click.echo(f"  served calls: {sim.url}/_sim/usage   (Ctrl-C to stop)")
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
