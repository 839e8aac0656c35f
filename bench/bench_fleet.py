"""A CI fleet on one budget: N concurrent `ci-guard run` processes against one ledger.

Each run wraps a tiny agent (``bench/fleet_agent.py``: Python's http.client, back-to-back calls to
the proxy it was given) in front of the simulator. The ledger is PostgreSQL by default (one fresh
schema per bench run) and the policy has one org-wide monthly budget that every run charges.
Reported, per fleet size:

* launch: from starting all N `ci-guard run` processes to every agent's first answered call (max
  and median over the runs); for N = 1 it is compared with the agent run alone against the
  simulator, interleaved in the same rounds, with the CPU each launch took (ci-guard and its agent,
  the warm launcher's forked run included; PostgreSQL's backend, when the server is local);
* commit rate: calls in the ledger per second while the agents were sending (first call to last
  agent's last answer);
* lag: how long after the last agent's last answer the ledger held every call (polled every 5 ms).

The proxies and agents of a 32-run fleet need far more CPU than the ledger; on a loaded 2-core
machine they cannot send 1,000 calls/s at all, so the fleet rounds measure the ledger only up to
their own rate. The *writer* rounds (``--writer-calls``) time the ledger alone: N processes, each one
run's ledger traffic (reserve, start, one transaction per call, settle; ``bench/fleet_writer.py``),
all on the same org budget -- the commit rate the ledger can take from N concurrent runs.

Two more variants are this checkout's runs started through one warm launcher (``ci-guard warm
start`` before the first round, ``CI_GUARD_WARM`` in the runs' environment; docs/warm.md), each
on its own schema: "warm" starts ``ci-guard`` as the runs' ``PATH`` names it after ``warm start
--format github|shell`` (the launcher's own client, ``<socket>.bin/ci-guard``), "warm-script" the
installed console script. ``--no-warm`` leaves both out. "new" and "old" start ``python -m
ci_guard``, as earlier rounds of this bench did.

With ``--baseline-src DIR`` (a directory holding another version's ``ci_guard`` package, e.g. from
``git archive <commit> ci_guard | tar -x -C DIR``) every measurement is repeated with that version
(run with ``PYTHONPATH=DIR``, its own schema), interleaved with this checkout's: "new" vs "old".
Every process runs in the bench's temporary directory: ``python -m`` puts the working directory first
on ``sys.path``, so from a checkout both variants would import the checkout's ``ci_guard``.

    python bench/bench_fleet.py [--runs 32] [--calls 200] [--rounds 3] [--ledger postgresql://...]
                                [--launch-rounds 10] [--baseline-src DIR] [--no-warm] [--install here|wheel]
                                [--out bench/results/fleet.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
AGENT = HERE / "fleet_agent.py"
WRITER = HERE / "fleet_writer.py"
POLICY = """version: 1
budgets:
  - {name: org-month, scope: org, period: month, limit_usd: 1000000}
defaults:
  model: claude-sonnet-4-5
  limits: {max_turns: 100000000, max_cost_usd: 50, max_runtime: 1h}
rules:
  - {name: fleet, decision: allow}
"""
PG = "postgresql://postgres@127.0.0.1:5432/postgres"
# The interpreter of everything measured (ci-guard, the agent, the ledger writers): this one, or a
# fresh venv's with --install wheel
PYTHON = sys.executable
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ledger_calls(conn: psycopg.Connection, schema: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {schema}.calls").fetchone()[0])  # type: ignore[index]


def fleet(n: int, calls: int, work: Path, env: dict[str, str], ledger: str, conninfo: str | None,
          schema: str | None, ci_guard: list[str]) -> dict[str, float]:
    """Start N runs at once; return launch, commit rate and lag."""
    conn = psycopg.connect(conninfo, autocommit=True) if conninfo else None  # one connection, polled
    before = ledger_calls(conn, schema) if conn is not None and schema else 0  # earlier rounds' calls
    total = before + n * calls
    procs = []
    marks = []
    t0 = time.time()
    for i in range(n):
        mark = work / f"agent-{i}.json"
        mark.unlink(missing_ok=True)
        marks.append(mark)
        procs.append(subprocess.Popen(
            [*ci_guard, "run", "--policy", str(work / "policy.yml"), "--repo",
             f"fleet/repo{i % 8}", "--ledger", ledger, "--quiet", "--preset", "none", "--",
             PYTHON, str(AGENT), str(calls), str(mark)],
            env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    # poll the ledger while the agents run, to see when every call is committed
    seen: list[tuple[float, int]] = []
    try:
        while any(p.poll() is None for p in procs) or (conn and seen and seen[-1][1] < total):
            if conn is not None and schema:
                seen.append((time.time(), ledger_calls(conn, schema)))
            time.sleep(0.005)
            if time.time() - t0 > 600:
                break
    finally:
        if conn is not None:
            conn.close()
    errors = [p.stderr.read().decode()[-400:] for p in procs if p.wait() != 0]  # type: ignore[union-attr]
    if errors:
        raise SystemExit(f"{len(errors)} runs failed: {errors[0]}")
    agents = [json.loads(m.read_text()) for m in marks]
    first = [a["first_answer"] - t0 for a in agents]
    start = min(a["first_sent"] for a in agents)
    end = max(a["last_answer"] for a in agents)
    out = {"runs": n, "calls_per_run": calls, "launch_all_s": max(first), "launch_p50_s": statistics.median(first),
           "launch_p90_s": pct(first, 90)}
    if conninfo and schema:
        during = [c - before for t, c in seen if t <= end]
        committed_at_end = during[-1] if during else 0
        done_at = next((t for t, c in seen if c >= total), None)
        out.update({
            "calls": total - before, "committed_when_agents_done": committed_at_end,
            "commit_rate_per_s": committed_at_end / max(end - start, 1e-9),
            "agent_rate_per_s": (total - before) / max(end - start, 1e-9),
            "lag_s": (done_at - end) if done_at is not None else float("nan"),
            "traffic_s": end - start,
        })
    return out


def writers(n: int, calls: int, work: Path, env: dict[str, str], ledger: str, tag: str,
            batch: int = 1) -> dict[str, float]:
    """N processes each writing one run's calls to the ledger at once; commit rate over all of them."""
    go = work / "go"
    go.unlink(missing_ok=True)
    marks = [work / f"writer-{i}.json" for i in range(n)]
    procs = [subprocess.Popen([PYTHON, str(WRITER), ledger, f"w-{tag}-{i}", str(calls), str(go), str(m),
                               str(batch)],
                              env=env, cwd=work, stderr=subprocess.PIPE) for i, m in enumerate(marks)]
    # go once every writer has imported, opened the ledger and started its run: the rate is the ledger's,
    # not 32 interpreters starting on a loaded machine
    deadline = time.time() + 300
    while not all(Path(f"{m}.ready").exists() for m in marks) and time.time() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.05)
    go.touch()
    errors = [p.stderr.read().decode()[-400:] for p in procs if p.wait() != 0]  # type: ignore[union-attr]
    if errors:
        raise SystemExit(f"{len(errors)} writers failed: {errors[0]}")
    done = [json.loads(m.read_text()) for m in marks]
    start = min(d["go"] for d in done)
    last = max(d["last_commit"] for d in done)
    client = sum(d["client_cpu_s"] for d in done)
    server = sum(d["server_cpu_s"] for d in done) if all(d["server_cpu_s"] is not None for d in done) else None
    cpu_per_call = (client + (server or 0)) / (n * calls)
    return {"runs": n, "calls": n * calls, "batch": batch, "commit_rate_per_s": n * calls / (last - start),
            "all_settled_s": max(d["settled"] for d in done) - start,
            "client_cpu_ms_per_call": client / (n * calls) * 1000,
            "server_cpu_ms_per_call": server / (n * calls) * 1000 if server is not None else None,
            # what the machine's cores could commit if the ledger writes had them to themselves
            "cpu_bound_calls_per_s": (os.cpu_count() or 1) / cpu_per_call if cpu_per_call else None}


def children_cpu_s(pid: int | None) -> float:
    """CPU of the reaped children of ``pid`` (the warm launcher's runs, PostgreSQL's backends)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime + cstime


def postmaster_pid(conninfo: str | None) -> int | None:
    """The local PostgreSQL server's pid (the parent of a backend), to count its backends' CPU."""
    if not conninfo:
        return None
    try:
        with psycopg.connect(conninfo) as conn:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, psycopg.Error, ValueError):
        return None  # a remote server: its CPU is not counted


def launch_cpu(work: Path, env: dict[str, str], ledger: str | None, ci_guard: list[str], warm_pid: int | None,
               pg_pid: int | None) -> tuple[float, float, float]:
    """One launch (``launch_once``) and the CPU it took: (seconds to the first answer, CPU seconds
    of ci-guard and the agent (the warm launcher's forked run included), CPU seconds of the
    PostgreSQL backends). Backends and forked runs count once they have exited; the caller waits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    warm_before, pg_before = children_cpu_s(warm_pid), children_cpu_s(pg_pid)
    first = launch_once(work, env, ledger, ci_guard)
    time.sleep(0.05)  # the launcher reaps its run, PostgreSQL its backend
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return (first, own + children_cpu_s(warm_pid) - warm_before, children_cpu_s(pg_pid) - pg_before)


def launch_once(work: Path, env: dict[str, str], ledger: str | None, ci_guard: list[str]) -> float:
    """One run (or the agent alone against the simulator) to its first answered call, in seconds."""
    mark = work / "launch.json"
    mark.unlink(missing_ok=True)
    t0 = time.time()
    if ledger is None:  # the agent alone
        cmd = [PYTHON, str(AGENT), "1", str(mark)]
        agent_env = {**env, "ANTHROPIC_BASE_URL": env["CI_GUARD_ANTHROPIC_UPSTREAM"], "ANTHROPIC_API_KEY": "k"}
    else:
        cmd = [*ci_guard, "run", "--policy", str(work / "policy.yml"), "--repo",
               "fleet/launch", "--ledger", ledger, "--quiet", "--preset", "none", "--",
               PYTHON, str(AGENT), "1", str(mark)]
        agent_env = env
    subprocess.run(cmd, env=agent_env, cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(mark.read_text())["first_answer"] - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=32)
    ap.add_argument("--calls", type=int, default=200, help="calls per agent")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--launch-rounds", type=int, default=10)
    ap.add_argument("--ledger", default=PG, help="a PostgreSQL server URL (a fresh schema is created) or sqlite")
    ap.add_argument("--writer-calls", type=int, default=200, help="calls per process in the writer rounds "
                    "(0: none)")
    ap.add_argument("--writer-batch", type=int, default=20, help="calls per transaction in the batched "
                    "writer rounds (the ledger thread's batch when calls queue behind a commit)")
    ap.add_argument("--baseline-src", help="a directory holding another version's ci_guard package, run "
                    "interleaved with this one (PYTHONPATH=DIR)")
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="leave out the variant started "
                    "through a warm launcher (ci-guard warm start, docs/warm.md)")
    ap.add_argument("--install", choices=["here", "wheel"], default="here",
                    help="here: this interpreter and its install of ci-guard (an editable checkout, whose "
                    "import finder every Python process started here pays); wheel: a fresh venv with "
                    "`pip install .`, as a user installs it (agents started with its Python too)")
    ap.add_argument("--out", default="bench/results/fleet.json")
    args = ap.parse_args()
    global PYTHON

    work = Path(tempfile.mkdtemp(prefix="cig-fleet-"))
    if args.install == "wheel":
        subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
        subprocess.run([str(work / "venv/bin/python"), "-m", "pip", "install", "-q", str(ROOT)], check=True,
                       capture_output=True)
        PYTHON = str(work / "venv/bin/python")
    (work / "policy.yml").write_text(POLICY)
    sim_port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "ci_guard", "simulate", "--port", str(sim_port),
                            "--scenario", "tool-loop"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-fleet-bench-0000000000000000",
           "CI_GUARD_ANTHROPIC_UPSTREAM": f"http://127.0.0.1:{sim_port}"}
    # an installed package has its bytecode compiled; a checkout run with PYTHONDONTWRITEBYTECODE
    # would recompile every module on every start
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(var, None)
    pg = args.ledger.startswith("postgres")
    conninfo = args.ledger if pg else None
    # variant -> (environment, ledger URL, schema): each version on its own schema (or file)
    variants: dict[str, tuple[dict[str, str], str, str | None]] = {}
    module = [PYTHON, "-m", "ci_guard"]
    commands: dict[str, list[str]] = {}  # how each variant's runs are started

    def add_variant(name: str, venv: dict[str, str], command: list[str]) -> None:
        """A variant on its own schema (or SQLite file), started with ``command``."""
        if pg:
            schema = f"cig_fleet_{name.replace('-', '_')}_{secrets.token_hex(4)}"
            variants[name] = (venv, f"{args.ledger}?schema={schema}", schema)
        else:
            variants[name] = (venv, f"sqlite:///{work}/{name}.db", None)
        commands[name] = command

    for name, src in (("new", None), ("old", args.baseline_src)):
        if name == "old" and not src:
            continue
        add_variant(name, {**env, "PYTHONPATH": str(Path(src).resolve())} if src else env, module)
    warm = None
    if args.warm:
        # "warm": this checkout's runs started through a warm launcher (ci-guard warm start),
        # started before any round, as a job would start it before its runs
        socket_path = str(work / "warm.sock")
        subprocess.run([PYTHON, "-m", "ci_guard", "warm", "start", "--socket", socket_path,
                        "--idle-timeout", "0"], env=env, cwd=work, check=True, capture_output=True)
        warm = socket_path
        wenv = {**env, "CI_GUARD_WARM": socket_path}
        # "warm": `ci-guard` as the job's PATH names it after `warm start --format github|shell`, the
        # launcher's own client (ci_guard/warm/shim.py); "warm-script": the installed console script
        # with CI_GUARD_WARM set (PATH left as it was).
        shim = Path(socket_path + ".bin") / "ci-guard"
        script = Path(PYTHON).parent / "ci-guard"
        for name, command in (("warm", [str(shim)]), ("warm-script", [str(script)])):
            if not Path(command[0]).exists():
                continue
            add_variant(name, {**wenv, "PATH": f"{shim.parent}{os.pathsep}{env.get('PATH', '')}"}
                        if name == "warm" else wenv, command)
    time.sleep(1.0)
    results: dict[str, object] = {"python": sys.version.split()[0], "install": args.install,
                                  "backend": "postgres" if pg else "sqlite",
                                  "load_before": os.getloadavg(), "variants": list(variants)}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    wrounds: dict[str, list[dict[str, float]]] = {}
    try:
        for venv, ledger, _ in variants.values():
            subprocess.run([PYTHON, "-m", "ci_guard", "ledger", "migrate", "--ledger", ledger], env=venv,
                           cwd=work, check=True, capture_output=True)
        # launch: one run to its first answer vs the agent alone, interleaved (the order rotates)
        names = ["alone", *variants]
        launch: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
        warm_pid = int((work / "warm.sock.log").read_text().rsplit("(pid ", 1)[1].split(")")[0]) if warm else None
        pg_pid = postmaster_pid(conninfo)
        for i in range(args.launch_rounds):
            for name in names[i % len(names):] + names[:i % len(names)]:
                venv, ledger = (env, None) if name == "alone" else variants[name][:2]
                first, own_cpu, pg_cpu = launch_cpu(work, venv, ledger, commands.get(name, module),
                                                    warm_pid if name.startswith("warm") else None, pg_pid)
                launch[name].append(first)
                cpu[name].append((own_cpu, pg_cpu))
        results["launch"] = {k: {"p50_s": statistics.median(v), "p90_s": pct(v, 90), "min_s": min(v),
                                 "max_s": max(v), "all_s": [round(x, 3) for x in v],
                                 "cpu_ms_p50": statistics.median(c[0] for c in cpu[k]) * 1000,
                                 "postgres_cpu_ms_p50": statistics.median(c[1] for c in cpu[k]) * 1000}
                             for k, v in launch.items() if v}
        print("launch to first answered call (s):", {k: v["all_s"] for k, v in results["launch"].items()},
              flush=True)
        for i in range(args.rounds if args.runs and args.calls else 0):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for name in order:
                venv, ledger, schema = variants[name]
                rounds[name].append(fleet(args.runs, args.calls, work, venv, ledger, conninfo, schema, commands[name]))
                print(f"fleet round ({name}):", rounds[name][-1], flush=True)
        results["fleet"] = rounds
        for i in range(args.rounds if args.writer_calls else 0):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for name in order:
                venv, ledger, _ = variants[name]
                for batch in (1, args.writer_batch):
                    key = f"{name} b{batch}"
                    wrounds.setdefault(key, []).append(
                        writers(args.runs, args.writer_calls, work, venv, ledger, f"{name}{i}b{batch}", batch))
                    print(f"writer round ({key}):", wrounds[key][-1], flush=True)
        results["writers"] = wrounds
    finally:
        if warm is not None:
            subprocess.run([PYTHON, "-m", "ci_guard", "warm", "stop", "--socket", warm], env=env, cwd=work,
                           capture_output=True)
        sim.terminate()
        sim.wait(10)
        if pg:
            with psycopg.connect(args.ledger, autocommit=True) as conn:
                for _, _, schema in variants.values():
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = os.getloadavg()

    if results["launch"]:
        print(f"launch to first answered call ({args.launch_rounds} rounds, interleaved), p50 / p90 [min-max]:")
    for name, lr in results["launch"].items():  # type: ignore[attr-defined]
        base = results["launch"]["alone"]["p50_s"]  # type: ignore[index]
        added = "" if name == "alone" else f"  (+{(lr['p50_s'] - base) * 1000:.1f} ms)"
        print(f"  {name:<8}{lr['p50_s'] * 1000:8.1f} / {lr['p90_s'] * 1000:6.1f} ms "
              f"[{lr['min_s'] * 1000:.1f}-{lr['max_s'] * 1000:.1f}]{added}; CPU p50: {lr['cpu_ms_p50']:.0f} ms "
              f"ci-guard and agent, {lr['postgres_cpu_ms_p50']:.0f} ms PostgreSQL")
    print(f"{args.runs} concurrent runs x {args.calls} calls, one org budget, {results['backend']} ledger:")
    print(f"{'variant':>8}{'round':>6}{'launch p50/p90 s':>18}{'all serving s':>15}{'agents calls/s':>16}"
          f"{'committed/s':>13}{'at end':>8}{'lag ms':>9}")
    for name, rs in rounds.items():
        for i, r in enumerate(rs):
            print(f"{name:>8}{i + 1:>6}{r['launch_p50_s']:>10.2f}/{r['launch_p90_s']:<7.2f}{r['launch_all_s']:>15.2f}"
                  f"{r.get('agent_rate_per_s', 0):>16.0f}{r.get('commit_rate_per_s', 0):>13.0f}"
                  f"{r.get('committed_when_agents_done', 0) / max(r.get('calls', 1), 1):>8.0%}"
                  f"{r.get('lag_s', float('nan')) * 1000:>9.0f}")
        if rs:
            med = {k: statistics.median(r.get(k, float("nan")) for r in rs)
                   for k in ("launch_all_s", "commit_rate_per_s", "lag_s")}
            print(f"{name:>8}{'med':>6}{'':>18}{med['launch_all_s']:>15.2f}{'':>16}{med['commit_rate_per_s']:>13.0f}"
                  f"{'':>8}{med['lag_s'] * 1000:>9.0f}")
    if any(wrounds.values()):
        print(f"ledger alone: {args.runs} processes x {args.writer_calls} calls, one org budget "
              f"(b1: one transaction a call; b{args.writer_batch}: {args.writer_batch} calls a transaction):")
        print(f"{'variant':>10}{'round':>6}{'committed/s':>13}{'all settled s':>15}{'client ms/call':>16}"
              f"{'server ms/call':>16}{'CPU-bound calls/s':>19}")
        for name, rs in wrounds.items():
            for i, r in enumerate(rs):
                server = r["server_cpu_ms_per_call"]
                print(f"{name:>10}{i + 1:>6}{r['commit_rate_per_s']:>13.0f}{r['all_settled_s']:>15.2f}"
                      f"{r['client_cpu_ms_per_call']:>16.3f}{server if server is not None else float('nan'):>16.3f}"
                      f"{r['cpu_bound_calls_per_s'] or 0:>19.0f}")
            if rs:
                bound = statistics.median(r["cpu_bound_calls_per_s"] or 0 for r in rs)
                print(f"{name:>10}{'med':>6}{statistics.median(r['commit_rate_per_s'] for r in rs):>13.0f}"
                      f"{'':>15}{'':>16}{'':>16}{bound:>19.0f}")
    print(f"load average before / after: {results['load_before']} / {results['load_after']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
