"""CPU instructions per request of the metering proxy and of a bare aiohttp pass-through (callgrind).

Latency on a shared 2-core machine moves with everyone else's load; the instructions a process
executes for a request do not. This runs each server under ``valgrind --tool=callgrind`` (all its
threads: event loop, inspection worker, ledger writer), sends the same Claude-Code-like bodies as
``bench_proxy.py --only large`` through it, and reads the instruction count (Ir) of each case from
callgrind's counters, zeroed before and dumped after the case's requests:

* **proxy**: ``ci-guard start`` (the detached proxy with an SQLite ledger) from this checkout;
* **B** (with ``--baseline DIR``): the proxy of another checkout, e.g. the code before a change;
* **aiohttp**: ``bench/passthrough_floor.py``, the framework's two hops without metering.

The upstream is ``bench/fast_upstream.py`` (not under valgrind). Needs valgrind (``apt-get install
valgrind``); each server runs ~50x slower under it, so a few requests per case suffice (the counts
repeat to within a fraction of a percent).

    python bench/proxy_instructions.py [--requests 5] [--baseline DIR] [--out bench/results/proxy-instructions.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_proxy import POLICY, RawConnection, claude_code_body, free_port

VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--quiet"]

# `ci-guard start` launches the proxy with sys.executable; this runs start with the proxy's launch
# wrapped in valgrind (and a start-up timeout that allows for valgrind's pace).
_START = """
import subprocess, sys
from ci_guard.meter import detached
_popen, _ready = subprocess.Popen, detached._wait_ready
def popen(args, *a, **k):
    if "proxy" in args:
        args = {valgrind!r} + [f"--callgrind-out-file={out}"] + list(args)
    return _popen(args, *a, **k)
subprocess.Popen = popen
detached._wait_ready = lambda state, proc, timeout_s, *rest: _ready(state, proc, 600.0, *rest)
from ci_guard.cli import main
sys.exit(main({argv!r}))
"""


def _start_proxy(work: Path, name: str, upstream: str, env: dict[str, str],
                 baseline: str | None) -> tuple[str, str, int, Path]:
    state = work / f"state-{name}.json"
    penv, cwd = {**env, "CI_GUARD_ANTHROPIC_UPSTREAM": upstream}, None
    if baseline:
        penv, cwd = {**penv, "PYTHONPATH": os.path.abspath(baseline)}, os.path.abspath(baseline)
    argv = ["start", "--policy", str(work / "policy.yml"), "--repo", f"bench/{name}", "--ledger",
            f"sqlite:///{work / f'ledger-{name}.db'}", "--state", str(state), "--quiet"]
    code = _START.format(valgrind=VALGRIND, out=str(work / f"cg-{name}.out"), argv=argv)
    subprocess.run([sys.executable, "-c", code], env=penv, cwd=cwd, check=True, capture_output=True,
                   timeout=900)
    st = json.loads(state.read_text())
    return f"http://127.0.0.1:{st['port']}/anthropic", st["token"], st["pid"], state


def _control(*args: str) -> str:
    return subprocess.run(["callgrind_control", *args], check=True, capture_output=True, text=True,
                          timeout=300).stdout


def _instructions(pid: int, out_prefix: Path, case: str, send: Callable[[], None]) -> int:
    """Ir of ``pid`` while ``send()`` runs: counters zeroed, requests sent, counters dumped."""
    _control("--zero", str(pid))
    send()
    before = set(out_prefix.parent.glob(out_prefix.name + "*"))
    _control("--dump=" + case, str(pid))
    for _ in range(600):
        new = set(out_prefix.parent.glob(out_prefix.name + "*")) - before
        if new:
            break
        time.sleep(0.1)
    (dump,) = new
    for _ in range(100):
        text = dump.read_text()
        m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if m:
            return int(m.group(1))
        time.sleep(0.1)
    raise RuntimeError(f"no totals in {dump}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5, help="requests per case (after 2 warm-up requests)")
    ap.add_argument("--baseline", help="a checkout (directory holding ci_guard/) whose proxy is the B side")
    ap.add_argument("--out", default="bench/results/proxy-instructions.json")
    args = ap.parse_args()
    key = "sk-ant-bench-provider-key-000000000000"
    here = Path(__file__).resolve().parent
    work = Path(tempfile.mkdtemp(prefix="cig-bench-instr-"))
    (work / "policy.yml").write_text(POLICY)
    env = {**os.environ, "ANTHROPIC_API_KEY": key}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    procs = [subprocess.Popen([sys.executable, str(here / "fast_upstream.py"), str(up_port)])]
    states: list[Path] = []
    servers: dict[str, tuple[str, str, int, Path]] = {}
    try:
        url, tok, pid, st = _start_proxy(work, "proxy", upstream, env, None)
        states.append(st)
        servers["proxy"] = (url, tok, pid, work / "cg-proxy.out")
        if args.baseline:
            url, tok, pid, st = _start_proxy(work, "proxy_b", upstream, env, args.baseline)
            states.append(st)
            servers["proxy_b"] = (url, tok, pid, work / "cg-proxy_b.out")
        port = free_port()
        floor_out = work / "cg-floor.out"
        procs.append(subprocess.Popen([*VALGRIND, f"--callgrind-out-file={floor_out}", sys.executable,
                                       str(here / "passthrough_floor.py"), upstream, str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        servers["aiohttp"] = (f"http://127.0.0.1:{port}", key, procs[-1].pid, floor_out)
        for _ in range(600):  # the pass-through under valgrind takes a while to listen
            try:
                asyncio.run(RawConnection(servers["aiohttp"][0]).post(key, False))
                break
            except (OSError, AssertionError):
                time.sleep(0.5)
        for _url, _tok, pid, _out in servers.values():
            _control("--instr=on", str(pid))
        cases = [("json, small", None, False), ("json, 100 kB", 100_000, False), ("json, 1 MB", 1_000_000, False),
                 ("stream, 1 MB", 1_000_000, True), ("json, 4 MB", 4_000_000, False)]
        results: dict[str, dict[str, float]] = {}
        for label, size, stream in cases:
            body = claude_code_body(size, stream) if size else None
            results[label] = {"body_bytes": len(body) if body else 0}
            for name, (url, tok, pid, out) in servers.items():
                async def send(n: int, url: str = url, tok: str = tok, stream: bool = stream,
                               body: bytes | None = body) -> None:
                    conn = RawConnection(url)
                    for _ in range(n):
                        await conn.post(tok, stream, body)
                    assert conn.writer is not None
                    conn.writer.close()

                asyncio.run(send(2))  # warm-up: first-use imports (msgspec) and caches
                ir = _instructions(pid, out, label.replace(" ", "").replace(",", "-"),
                                   lambda send=send: asyncio.run(send(args.requests)))
                results[label][name] = ir / args.requests
                print(f"{label:<14} {name:<8} {ir / args.requests / 1e6:10.2f} M instructions per request",
                      flush=True)
    finally:
        for st in states:
            subprocess.run([sys.executable, "-m", "ci_guard", "stop", "--state", str(st)], capture_output=True,
                           timeout=900)
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)  # callgrind dumps, ledgers, state files
    names = [n for n in ("proxy", "proxy_b", "aiohttp") if n in servers]
    print("\ninstructions per request (millions, callgrind Ir, all threads)")
    print(f"{'case':<16}" + "".join(f"{n:>10}" for n in names) + f"{'proxy/aiohttp':>15}")
    for label, r in results.items():
        print(f"{label:<16}" + "".join(f"{r[n] / 1e6:>10.2f}" for n in names) + f"{r['proxy'] / r['aiohttp']:>15.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": sys.version.split()[0], "requests": args.requests,
                               "baseline": args.baseline, "cases": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
