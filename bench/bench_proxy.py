"""Added latency and memory of the metering proxy, measured side by side with direct calls.

"aiohttp" columns are a bare aiohttp pass-through (bench/passthrough_floor.py) measured in the same
run: the cost of the framework's extra hop alone, without ci-guard's metering. "B" columns are a
second ci-guard proxy for an A/B in one run: by default started with CI_GUARD_UPSTREAM_CLIENT=aiohttp
(the upstream hop on aiohttp's ClientSession, as before the lean client); with ``--baseline DIR``,
the proxy of another checkout (e.g. ``git archive <commit> ci_guard | tar -x -C DIR``), so a change
to the proxy is compared with the code before it.

Processes: the simulator (`ci-guard simulate`), the proxy (`ci-guard start`, i.e. the real
detached proxy with an SQLite ledger writing every call) and this load generator. Requests go
alternately direct and through the proxy, so both see the same machine noise. Requests follow each other
back to back, except in the "paced" rows, which pause ``--gap-ms`` after each request (as an agent
runs tools between calls), so every process is idle when the next request arrives.

    python bench/bench_proxy.py [--requests 2000] [--gap-ms 2] [--baseline DIR] [--out bench/results/proxy.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

POLICY = """version: 1
defaults:
  model: claude-sonnet-4-5
  limits: {max_turns: 100000000, max_cost_usd: 1000000, max_runtime: 24h}
rules:
  - {name: bench, decision: allow}
"""
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hello " * 50}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid``, all threads, in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def one(session: aiohttp.ClientSession, url: str, key: str, stream: bool) -> float:
    body = dict(BODY, stream=stream)
    t0 = time.perf_counter()
    async with session.post(url + "/v1/messages", json=body, headers={"x-api-key": key,
                                                                      "anthropic-version": "2023-06-01"}) as r:
        if stream:
            await r.content.readany()  # time to first byte
            elapsed = time.perf_counter() - t0
            await r.read()
            return elapsed
        await r.read()
        assert r.status == 200, r.status
    return time.perf_counter() - t0


class RawConnection:
    """A keep-alive HTTP/1.1 connection that adds as little as possible of its own to the timing.

    The agents' own clients (undici, reqwest) are far leaner than aiohttp's ClientSession, whose
    cost depends on how a server frames its answer; a raw socket measures the paths, not the client.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.prefix = parts.hostname or "127.0.0.1", parts.port or 80, parts.path.rstrip("/")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, key: str, stream: bool, body: bytes | None = None) -> float:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        body = body if body is not None else json.dumps(dict(BODY, stream=stream)).encode()
        request = (f"POST {self.prefix}/v1/messages HTTP/1.1\r\nHost: {self.host}\r\nx-api-key: {key}\r\n"
                   f"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
                   f"content-length: {len(body)}\r\n\r\n").encode() + body
        t0 = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), (self.port, len(body), head[:40])
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        if length is not None:
            await self.reader.readexactly(length)
            return time.perf_counter() - t0
        first = await self._chunk()  # chunked: the first chunk is the first byte of the answer
        elapsed = time.perf_counter() - t0
        while first:
            first = await self._chunk()
        return elapsed if stream else time.perf_counter() - t0

    async def _chunk(self) -> int:
        assert self.reader is not None
        size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
        await self.reader.readexactly(size + 2)
        return size


async def measure(targets: dict[str, tuple[str, str]], n: int, concurrency: int,
                  stream: bool, client: str = "raw", gap_s: float = 0.0) -> dict[str, list[float]]:
    """Latency samples per target; every worker sends to each target in turn, rotating the order.

    ``gap_s`` is a pause after each request, as an agent runs its tools between two calls: the
    servers' work that follows a response (relaying the rest of a stream, metering, the ledger
    write) then ends before the next request, instead of landing on whichever target comes next.
    """
    out: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(count: int) -> None:
            raw = {name: RawConnection(url) for name, (url, _) in targets.items()}

            async def call(name: str) -> float:
                url, key = targets[name]
                if client == "raw":
                    return await raw[name].post(key, stream)
                return await one(session, url, key, stream)

            for _ in range(20):  # warm-up every path
                for name in names:
                    await call(name)
            for i in range(count):
                # rotate which path goes first so none gets a systematic advantage
                for name in names[i % len(names):] + names[:i % len(names)]:
                    out[name].append(await call(name))
                    if gap_s:
                        await asyncio.sleep(gap_s)

        per = max(1, n // concurrency)
        await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    return out


async def memory_under_streams(proxied: str, token: str, pid: int, streams: int) -> int:
    peak = rss_kib(pid)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def slow_stream() -> None:
            body = dict(BODY, stream=True)
            async with session.post(proxied + "/v1/messages", json=body,
                                    headers={"x-api-key": token, "anthropic-version": "2023-06-01"}) as r:
                await r.read()

        tasks = [asyncio.create_task(slow_stream()) for _ in range(streams)]
        while not all(t.done() for t in tasks):
            peak = max(peak, rss_kib(pid))
            await asyncio.sleep(0.02)
        await asyncio.gather(*tasks)
    return peak


def summarize(samples: dict[str, list[float]]) -> dict[str, float]:
    ms = {name: [x * 1000 for x in values] for name, values in samples.items()}
    d = ms["direct"]
    out: dict[str, float] = {"n": len(d), "direct_p50_ms": statistics.median(d), "direct_p99_ms": pct(d, 99)}
    for name in ("proxy", "proxy_b", "floor"):
        out[f"{name}_p50_ms"] = statistics.median(ms[name])
        out[f"{name}_p99_ms"] = pct(ms[name], 99)
        out[f"{name}_added_p50_ms"] = out[f"{name}_p50_ms"] - out["direct_p50_ms"]
        out[f"{name}_added_p99_ms"] = out[f"{name}_p99_ms"] - out["direct_p99_ms"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--gap-ms", type=float, default=2.0,
                    help="pause after each request in the 'paced' rows (the others are back to back)")
    ap.add_argument("--out", default="bench/results/proxy.json")
    ap.add_argument("--baseline", help="a checkout (directory holding ci_guard/) whose proxy is the B side")
    ap.add_argument("--only", choices=["all", "small", "large"], default="all",
                    help="small: the small-request rows; large: megabyte bodies, head-of-line, memory, 32 clients")
    ap.add_argument("--large-rounds", type=int, default=40, help="requests per target in the 1 MB rows")
    args = ap.parse_args()
    if args.only == "large":
        large_main(args)
        return

    key = "sk-ant-bench-provider-key-000000000000"
    work = Path(tempfile.mkdtemp(prefix="cig-bench-"))
    (work / "policy.yml").write_text(POLICY)
    sim_port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "ci_guard", "simulate", "--port", str(sim_port),
                            "--scenario", "tool-loop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    slow_port = free_port()
    slow = subprocess.Popen([sys.executable, "-m", "ci_guard", "simulate", "--port", str(slow_port),
                             "--scenario", "slow"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    env = {**os.environ, "ANTHROPIC_API_KEY": key, "CI_GUARD_ANTHROPIC_UPSTREAM": f"http://127.0.0.1:{sim_port}"}
    state = work / "state.json"
    subprocess.run([sys.executable, "-m", "ci_guard", "start", "--policy", str(work / "policy.yml"), "--repo",
                    "bench/bench", "--ledger", f"sqlite:///{work / 'ledger.db'}", "--state", str(state),
                    "--quiet"], env=env, check=True, capture_output=True)
    st = json.loads(state.read_text())
    proxied, token, pid = f"http://127.0.0.1:{st['port']}/anthropic", st["token"], st["pid"]
    state_aio = work / "state-b.json"
    if args.baseline:  # `python -m ci_guard` from that directory imports its ci_guard, not this one
        b_env, b_cwd = {**env, "PYTHONPATH": os.path.abspath(args.baseline)}, os.path.abspath(args.baseline)
        b_label = f"baseline checkout {args.baseline}"
    else:
        b_env, b_cwd, b_label = {**env, "CI_GUARD_UPSTREAM_CLIENT": "aiohttp"}, None, "CI_GUARD_UPSTREAM_CLIENT=aiohttp"
    subprocess.run([sys.executable, "-m", "ci_guard", "start", "--policy", str(work / "policy.yml"), "--repo",
                    "bench/b", "--ledger", f"sqlite:///{work / 'ledger-b.db'}", "--state",
                    str(state_aio), "--quiet"], env=b_env, cwd=b_cwd, check=True, capture_output=True)
    st_aio = json.loads(state_aio.read_text())
    direct = f"http://127.0.0.1:{sim_port}"
    floor_port = free_port()
    floor = subprocess.Popen([sys.executable, str(Path(__file__).with_name("passthrough_floor.py")), direct,
                              str(floor_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    targets = {"direct": (direct, key), "proxy": (proxied, token),
               "proxy_b": (f"http://127.0.0.1:{st_aio['port']}/anthropic", st_aio["token"]),
               "floor": (f"http://127.0.0.1:{floor_port}", key)}
    results: dict[str, object] = {"requests": args.requests, "python": sys.version.split()[0],
                                  "proxy_b": b_label}
    try:
        idle = rss_kib(pid)
        rows = []
        gap = args.gap_ms / 1000
        paced = f"paced {args.gap_ms:g} ms"
        cases = [("json, 1 client", 1, False, "raw", 0.0), ("stream TTFB, 1 client", 1, True, "raw", 0.0),
                 (f"json, 1 client, {paced}", 1, False, "raw", gap),
                 (f"stream TTFB, 1 client, {paced}", 1, True, "raw", gap),
                 ("json, 1 aiohttp client", 1, False, "aiohttp", 0.0),
                 ("stream TTFB, 1 aiohttp client", 1, True, "aiohttp", 0.0),
                 ("json, 32 clients", 32, False, "raw", 0.0), ("stream TTFB, 32 clients", 32, True, "raw", 0.0)]
        results["gap_ms"] = args.gap_ms
        for label, conc, stream, client, pause in cases:
            s = summarize(asyncio.run(measure(targets, args.requests, conc, stream, client, pause)))
            results[label] = s
            rows.append((label, s))
        # memory: a second proxy in front of the slow scenario, 64 concurrent streams
        state2 = work / "state-slow.json"
        env2 = {**env, "CI_GUARD_ANTHROPIC_UPSTREAM": f"http://127.0.0.1:{slow_port}"}
        subprocess.run([sys.executable, "-m", "ci_guard", "start", "--policy", str(work / "policy.yml"), "--repo",
                        "bench/slow", "--ledger", f"sqlite:///{work / 'ledger2.db'}", "--state", str(state2),
                        "--quiet"], env=env2, check=True, capture_output=True)
        st2 = json.loads(state2.read_text())
        idle2 = rss_kib(st2["pid"])
        peak2 = asyncio.run(memory_under_streams(f"http://127.0.0.1:{st2['port']}/anthropic", st2["token"],
                                                 st2["pid"], args.streams))
        results["memory"] = {"idle_rss_mib": idle2 / 1024, "peak_rss_mib_64_streams": peak2 / 1024,
                             "idle_rss_mib_first_proxy": idle / 1024}
        subprocess.run([sys.executable, "-m", "ci_guard", "stop", "--state", str(state2)], capture_output=True)
    finally:
        for s in (state, state_aio):
            subprocess.run([sys.executable, "-m", "ci_guard", "stop", "--state", str(s)], capture_output=True)
        for p in (sim, slow, floor):
            p.send_signal(signal.SIGTERM)
            p.wait(10)

    print("added latency versus calling the simulator directly, measured interleaved in one run (ms)")
    print(f"B: {b_label}")
    print(f"{'case':<30}{'n':>6}{'direct p50':>11}{'proxy +p50':>11}{'proxy +p99':>11}{'B +p50':>17}"
          f"{'B +p99':>17}{'aiohttp +p50':>13}{'aiohttp +p99':>13}")
    for label, s in rows:
        print(f"{label:<30}{s['n']:>6}{s['direct_p50_ms']:>11.3f}{s['proxy_added_p50_ms']:>11.3f}"
              f"{s['proxy_added_p99_ms']:>11.3f}{s['proxy_b_added_p50_ms']:>17.3f}"
              f"{s['proxy_b_added_p99_ms']:>17.3f}{s['floor_added_p50_ms']:>13.3f}{s['floor_added_p99_ms']:>13.3f}")
    mem = results["memory"]
    print(f"proxy RSS: idle {mem['idle_rss_mib']:.1f} MiB, peak with {args.streams} concurrent streams "
          f"{mem['peak_rss_mib_64_streams']:.1f} MiB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if args.only == "all":
        large_main(args)


# -- megabyte requests ------------------------------------------------------------------------------
# Claude Code's later turns send the whole conversation on every call: 0.3-1 MB of compact JSON and
# more, mostly tool results, with ~20 tool definitions and a long system prompt. These rows run
# against bench/fast_upstream.py (canned answers, no parsing), so the upstream's own CPU does not
# crowd the 2 cores the proxies are measured on.

def claude_code_body(size: int, stream: bool) -> bytes:
    """A Claude-Code-like Messages request of about ``size`` bytes of compact JSON."""
    import random

    rng = random.Random(size)
    words = ["def", "return", "self", "the", "file", "test", "import", "value", "error", "path", "line", "if",
             "for", "in", "not", "None", "print", "json", "data", "result", "é", "→", "{", "}", "(", ")", "\\n"]
    pool = " ".join(rng.choice(words) for _ in range(40_000))

    def text(n: int) -> str:
        start = rng.randrange(0, len(pool) - n)
        return pool[start:start + n]

    tools = [{"name": f"Tool{i}", "description": text(600),
              "input_schema": {"type": "object", "properties": {"command": {"type": "string"},
                                                                 "timeout": {"type": "number"}},
                               "required": ["command"]}} for i in range(20)]
    body = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": stream,
            "system": [{"type": "text", "text": text(12_000), "cache_control": {"type": "ephemeral"}}],
            "tools": tools, "metadata": {"user_id": "user_bench_session_0001"}, "messages": []}
    messages = body["messages"]
    size_now = len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    i = 0
    while size_now < size:
        turn = [{"role": "assistant", "content": [
                    {"type": "text", "text": text(200)},
                    {"type": "tool_use", "id": f"toolu_{i:06d}", "name": "Bash", "input": {"command": text(60)}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{i:06d}", "content": text(2400)}]}]
        messages.extend(turn)
        size_now += len(json.dumps(turn, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        i += 1
    messages.append({"role": "user", "content": "go on"})
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def measure_body(targets: dict[str, tuple[str, str]], n: int, body: bytes, stream: bool,
                       concurrency: int = 1) -> dict[str, list[float]]:
    """Like :func:`measure` (raw client, rotating order), with a given request body."""
    out: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)

    async def worker(count: int) -> None:
        raw = {name: RawConnection(url) for name, (url, _) in targets.items()}
        for _ in range(3):
            for name in names:
                await raw[name].post(targets[name][1], stream, body)
        for i in range(count):
            for name in names[i % len(names):] + names[:i % len(names)]:
                out[name].append(await raw[name].post(targets[name][1], stream, body))

    await asyncio.gather(*(worker(max(1, n // concurrency)) for _ in range(concurrency)))
    return out


async def head_of_line(targets: dict[str, tuple[str, str]], loaded: str, n: int, big: bytes) -> dict[str, list[float]]:
    """Small-stream TTFB via ``loaded`` and direct while another client sends ``big`` to ``loaded`` back to back."""
    small = json.dumps(dict(BODY, stream=True)).encode()
    stop = asyncio.Event()

    async def hammer() -> int:
        conn, sent = RawConnection(targets[loaded][0]), 0
        while not stop.is_set():
            await conn.post(targets[loaded][1], False, big)
            sent += 1
        return sent

    background = asyncio.create_task(hammer())
    await asyncio.sleep(0.2)  # the big requests are flowing
    out: dict[str, list[float]] = {"direct": [], loaded: []}
    conns = {name: RawConnection(targets[name][0]) for name in out}
    for i in range(n):
        for name in (("direct", loaded) if i % 2 == 0 else (loaded, "direct")):
            out[name].append(await conns[name].post(targets[name][1], True, small))
        await asyncio.sleep(0.003)  # land at random points of the big requests' cycle
    stop.set()
    await background
    return out


async def memory_burst(url: str, key: str, pid: int, streams: int, body: bytes,
                       after_s: tuple[float, ...] = (1.0, 3.0, 5.0)) -> dict[str, float]:
    """Peak RSS of ``pid`` with ``streams`` streams of ``body`` in flight, then RSS after they end."""
    idle = rss_kib(pid)
    peak = idle
    conns = [RawConnection(url) for _ in range(streams)]
    tasks = [asyncio.create_task(c.post(key, True, body)) for c in conns]
    while not all(t.done() for t in tasks):
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(0.01)
    for t in tasks:
        t.result()
    for c in conns:
        if c.writer is not None:
            c.writer.close()
    out = {"idle_mib": idle / 1024, "peak_mib": peak / 1024}
    t_end = time.monotonic()
    for s in after_s:
        await asyncio.sleep(max(0.0, t_end + s - time.monotonic()))
        out[f"after_{s:g}s_mib"] = rss_kib(pid) / 1024
    return out


def _start_proxy(work: Path, name: str, upstream: str, env: dict[str, str], baseline: str | None = None
                 ) -> tuple[str, str, int, Path]:
    state = work / f"state-{name}.json"
    penv, cwd = {**env, "CI_GUARD_ANTHROPIC_UPSTREAM": upstream}, None
    if baseline:
        penv, cwd = {**penv, "PYTHONPATH": os.path.abspath(baseline)}, os.path.abspath(baseline)
    subprocess.run([sys.executable, "-m", "ci_guard", "start", "--policy", str(work / "policy.yml"), "--repo",
                    f"bench/{name}", "--ledger", f"sqlite:///{work / f'ledger-{name}.db'}", "--state", str(state),
                    "--quiet"], env=penv, cwd=cwd, check=True, capture_output=True)
    st = json.loads(state.read_text())
    return f"http://127.0.0.1:{st['port']}/anthropic", st["token"], st["pid"], state


def _added(samples: dict[str, list[float]], names: tuple[str, ...]) -> dict[str, float]:
    d = statistics.median(samples["direct"]) * 1000
    out = {"n": len(samples["direct"]), "direct_p50_ms": d}
    for name in names:
        if name in samples:
            out[f"{name}_added_p50_ms"] = statistics.median(samples[name]) * 1000 - d
    if "floor_added_p50_ms" in out and out["floor_added_p50_ms"] > 0:
        for name in names:
            if name != "floor" and f"{name}_added_p50_ms" in out:
                out[f"{name}_vs_floor"] = out[f"{name}_added_p50_ms"] / out["floor_added_p50_ms"]
    return out


def large_main(args: argparse.Namespace) -> None:
    key = "sk-ant-bench-provider-key-000000000000"
    work = Path(tempfile.mkdtemp(prefix="cig-bench-large-"))
    (work / "policy.yml").write_text(POLICY)
    here = Path(__file__).resolve().parent
    fast_port, hold_port = free_port(), free_port()
    procs = [subprocess.Popen([sys.executable, str(here / "fast_upstream.py"), str(fast_port)]),
             subprocess.Popen([sys.executable, str(here / "fast_upstream.py"), str(hold_port), "1.0"])]
    fast, hold = f"http://127.0.0.1:{fast_port}", f"http://127.0.0.1:{hold_port}"
    env = {**os.environ, "ANTHROPIC_API_KEY": key}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    time.sleep(0.5)
    states: list[Path] = []
    results: dict[str, object] = {"python": sys.version.split()[0], "load_before": os.getloadavg(),
                                  "proxy_b": f"baseline checkout {args.baseline}" if args.baseline else None}
    names: tuple[str, ...] = ("proxy", "proxy_b", "floor") if args.baseline else ("proxy", "floor")
    try:
        def floor_for(upstream: str) -> tuple[str, int]:
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, str(here / "passthrough_floor.py"), upstream, str(port)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            return f"http://127.0.0.1:{port}", procs[-1].pid

        purl, ptok, ppid, st = _start_proxy(work, "fast", fast, env)
        states.append(st)
        furl, fpid = floor_for(fast)
        targets = {"direct": (fast, key), "proxy": (purl, ptok), "floor": (furl, key)}
        pids = {"proxy": ppid, "floor": fpid}
        if args.baseline:
            burl, btok, bpid, st = _start_proxy(work, "fast-b", fast, env, args.baseline)
            states.append(st)
            targets["proxy_b"] = (burl, btok)
            pids["proxy_b"] = bpid
        time.sleep(1.0)
        rows: list[tuple[str, dict[str, float]]] = []
        bodies = {size: {s: claude_code_body(size, s) for s in (False, True)}
                  for size in (100_000, 1_000_000, 4_000_000)}
        results["body_bytes"] = {str(k): len(v[False]) for k, v in bodies.items()}
        r = args.large_rounds
        cases = [("json, 100 kB", 100_000, False, 4 * r), ("stream TTFB, 100 kB", 100_000, True, 4 * r),
                 ("json, 1 MB", 1_000_000, False, r), ("stream TTFB, 1 MB", 1_000_000, True, r),
                 ("json, 4 MB", 4_000_000, False, max(10, r // 3)),
                 ("stream TTFB, 4 MB", 4_000_000, True, max(10, r // 3))]
        for label, size, stream, n in cases:
            before = {name: cpu_ms(pid) for name, pid in pids.items()}
            samples = asyncio.run(measure_body(targets, n, bodies[size][stream], stream))
            s = _added(samples, names)
            for name, pid in pids.items():  # CPU per request: robust to the other load on a shared machine
                s[f"{name}_cpu_ms_per_request"] = (cpu_ms(pid) - before[name]) / (len(samples[name]) + 3)
            results[label] = s
            rows.append((label, s))
        small = json.dumps(dict(BODY, stream=True)).encode()
        s = _added(asyncio.run(measure_body(targets, 8 * r, small, True)), names)
        results["stream TTFB, small, idle"] = s
        rows.append(("stream TTFB, small, idle", s))
        # head-of-line: each target in turn carries the 1 MB traffic, rotated in blocks
        hol: dict[str, dict[str, list[float]]] = {name: {"direct": [], name: []} for name in names}
        for block in range(3):
            for name in names[block % len(names):] + names[:block % len(names)]:
                got = asyncio.run(head_of_line(targets, name, 3 * r, bodies[1_000_000][False]))
                for k, v in got.items():
                    hol[name][k].extend(v)
        s = {"n": len(hol["proxy"]["direct"])}
        for name in names:
            a = _added(hol[name], (name,))
            s[f"{name}_added_p50_ms"] = a[f"{name}_added_p50_ms"]
            s[f"{name}_direct_p50_ms"] = a["direct_p50_ms"]
        results["small stream TTFB while 1 MB requests"] = s
        rows.append(("stream TTFB, small, 1 MB load", s))
        s = _added(asyncio.run(measure_body(targets, 32 * r, json.dumps(dict(BODY, stream=False)).encode(), False,
                                            concurrency=32)), names)
        results["json, 32 clients, fast upstream"] = s
        rows.append(("json, 32 clients", s))
        s = _added(asyncio.run(measure_body(targets, 32 * r, small, True, concurrency=32)), names)
        results["stream TTFB, 32 clients, fast upstream"] = s
        rows.append(("stream TTFB, 32 clients", s))
        # memory: a fresh proxy (and a bare pass-through) in front of the holding upstream
        mem: dict[str, dict[str, float]] = {}
        hurl, htok, hpid, st = _start_proxy(work, "hold", hold, env)
        states.append(st)
        hfurl, hfpid = floor_for(hold)
        mem_targets = {"proxy": (hurl, htok, hpid), "floor": (hfurl, key, hfpid)}
        if args.baseline:
            hburl, hbtok, hbpid, st = _start_proxy(work, "hold-b", hold, env, args.baseline)
            states.append(st)
            mem_targets["proxy_b"] = (hburl, hbtok, hbpid)
        time.sleep(1.0)
        for name, (url, tok, pid) in mem_targets.items():
            mem[name] = asyncio.run(memory_burst(url, tok, pid, args.streams, bodies[1_000_000][True]))
        results["memory, 64 streams of 1 MB"] = mem
    finally:
        for st in states:
            subprocess.run([sys.executable, "-m", "ci_guard", "stop", "--state", str(st)], capture_output=True)
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)  # ledgers, state files and logs of the proxies
    results["load_after"] = os.getloadavg()

    print("\nmegabyte requests: added latency p50 (ms) versus calling the fast upstream directly, interleaved")
    head = f"{'case':<34}{'n':>5}{'direct':>9}{'proxy +':>9}"
    head += f"{'B +':>9}" if args.baseline else ""
    head += f"{'aiohttp +':>11}{'proxy/aiohttp':>15}"
    print(head)
    for label, s in rows:
        line = f"{label:<34}{s['n']:>5}{s.get('direct_p50_ms', s.get('proxy_direct_p50_ms', 0)):>9.2f}"
        line += f"{s['proxy_added_p50_ms']:>9.2f}"
        line += f"{s['proxy_b_added_p50_ms']:>9.2f}" if args.baseline else ""
        fl = s["floor_added_p50_ms"]
        line += f"{fl:>11.2f}{(s['proxy_added_p50_ms'] / fl if fl > 0 else float('nan')):>15.2f}"
        print(line)
    print("\nCPU time per request (ms) in each process (user + system, all threads)")
    b_head = f"{'B':>9}" if args.baseline else ""
    print(f"{'case':<34}{'proxy':>9}{b_head}{'aiohttp':>11}{'proxy/aiohttp':>15}")
    for label, s in rows:
        if "proxy_cpu_ms_per_request" not in s:
            continue
        line = f"{label:<34}{s['proxy_cpu_ms_per_request']:>9.2f}"
        line += f"{s['proxy_b_cpu_ms_per_request']:>9.2f}" if args.baseline else ""
        fc = s["floor_cpu_ms_per_request"]
        line += f"{fc:>11.2f}{(s['proxy_cpu_ms_per_request'] / fc if fc > 0 else float('nan')):>15.2f}"
        print(line)
    print(f"\nRSS (MiB) with {args.streams} streams of 1 MB requests in flight, and after they ended")
    print(f"{'':<10}{'idle':>8}{'peak':>8}{'+1 s':>8}{'+3 s':>8}{'+5 s':>8}")
    for name, m in results["memory, 64 streams of 1 MB"].items():  # type: ignore[union-attr]
        print(f"{name:<10}{m['idle_mib']:>8.1f}{m['peak_mib']:>8.1f}{m['after_1s_mib']:>8.1f}"
              f"{m['after_3s_mib']:>8.1f}{m['after_5s_mib']:>8.1f}")
    print(f"load average before / after: {results['load_before']} / {results['load_after']}")
    out = Path(args.out).with_name(Path(args.out).stem + "-large.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
