"""A scripted fake provider speaking the Anthropic and OpenAI wire formats.

    with run_simulator("tool-loop") as sim:      # background thread
        client = anthropic.Anthropic(base_url=sim.url, api_key="x")
        ...
        sim.served                                # every call with its exact usage

    async with Simulator("flaky") as sim: ...     # inside a running event loop
"""

from ci_guard.simulator.scenario import NAMED, Scenario, load_scenario
from ci_guard.simulator.server import Simulator, run_simulator

__all__ = ["NAMED", "Scenario", "Simulator", "load_scenario", "run_simulator"]
