"""What the agent's group watchdog (issue 12 #15) costs a `ci-guard run` launch.

`ci-guard run` starts the agent, then a watchdog process (``python -I -S``, in its own session)
that kills the agent's process group if ci-guard dies. Timed here, interleaved, against the
alternative of no watchdog (the agent alone):

* ``spawn``: the wall time ci-guard waits for (the agent's Popen, plus the watchdog's Popen,
  which returns once the watchdog has exec'd; its interpreter boots in the background);
* ``cpu``: the CPU time the watchdog process uses from its start to its exit (what it takes from
  the agent on a 2-core runner), from the children's rusage.

Three rounds of ``--n`` launches each, medians and spread; writes bench/results/watchdog.json.

    python bench/bench_watchdog.py --n 30
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ci_guard.meter.hardening import GroupWatchdog

AGENT = ["sleep", "0.2"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one(with_watchdog: bool) -> tuple[float, float]:
    """(ms ci-guard waits to launch, ms of CPU the watchdog used) for one launch."""
    t0 = time.perf_counter()
    agent = subprocess.Popen(AGENT, start_new_session=True)
    watchdog = GroupWatchdog(agent.pid) if with_watchdog else None
    spawn = (time.perf_counter() - t0) * 1000
    agent.wait()
    cpu0 = _children_cpu()
    if watchdog is not None:
        watchdog.close()  # the watchdog exits: its rusage is counted now
    cpu = (_children_cpu() - cpu0) * 1000
    return spawn, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30, help="launches per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = []
    for r in range(args.rounds):
        sides: dict[str, dict[str, list[float]]] = {"watchdog": {"spawn": [], "cpu": []},
                                                    "none": {"spawn": [], "cpu": []}}
        for _ in range(args.n):  # interleaved: both sides see the same load
            for side in ("watchdog", "none"):
                spawn, cpu = one(side == "watchdog")
                sides[side]["spawn"].append(spawn)
                sides[side]["cpu"].append(cpu)
        load = os.getloadavg()[0]
        summary = {side: {k: statistics.median(v) for k, v in d.items()} for side, d in sides.items()}
        rounds.append({"round": r + 1, "load": load, "median_ms": summary,
                       "spread_ms": {side: {k: [min(v), max(v)] for k, v in d.items()} for side, d in sides.items()}})
        print(f"round {r + 1} (load {load:.1f}): spawn median {summary['watchdog']['spawn']:.1f} ms with the "
              f"watchdog vs {summary['none']['spawn']:.1f} ms without; watchdog CPU median "
              f"{summary['watchdog']['cpu']:.1f} ms")
    out = Path(__file__).parent / "results" / "watchdog.json"
    out.write_text(json.dumps({"command": f"python bench/bench_watchdog.py --n {args.n}", "rounds": rounds},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
