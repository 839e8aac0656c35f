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

    async def post(self, key: str, stream: bool) -> float:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        body = json.dumps(dict(BODY, stream=stream)).encode()
        request = (f"POST {self.prefix}/v1/messages HTTP/1.1\r\nHost: {self.host}\r\nx-api-key: {key}\r\n"
                   f"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
                   f"content-length: {len(body)}\r\n\r\n").encode() + body
        t0 = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:40]
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
    args = ap.parse_args()

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


if __name__ == "__main__":
    main()
