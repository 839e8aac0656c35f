"""Input-estimate benchmark: ``estimate_input_tokens`` on ~1 MB requests, with and without media.

    python bench/bench_estimate.py            # 25 rounds per case
    python bench/bench_estimate.py --rounds 5

The estimator runs before every metered call. The cases: a Claude-Code-like history of 400 turns
(~1.2 MB of compact JSON, no media); the same with a 0.9 MB base64 screenshot appended (the media
walk runs); the same text mentioning base64 in code (the text check rejects it: no walk); the same
text quoting a ``data:...;base64,`` URL (the check passes, the walk runs over the whole history and
finds nothing: the worst case for a request without media). Prints a table and writes bench/results/estimate.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ci_guard.meter.providers.base import estimate_input_tokens, estimate_tokens  # noqa: E402


def bytes_only(*parts: object) -> int:
    """The estimator before media were counted apart: the floor the media check adds to."""
    size = sum(len(json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode()) for p in parts if p is not None)
    return estimate_tokens(size)


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghij klmnop\n") for _ in range(n))


def requests() -> dict[str, tuple]:
    rng = random.Random(1)
    history = []
    for i in range(400):
        history.append({"role": "assistant", "content": [
            {"type": "text", "text": _text(rng, 300)},
            {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {"command": "ls -la"}}]})
        history.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"t{i}", "content": [{"type": "text", "text": _text(rng, 2200)}]}]})
    tools = [{"name": f"T{i}", "description": _text(rng, 500), "input_schema": {"type": "object"}} for i in range(20)]
    image = base64.b64encode(rng.randbytes(900_000)).decode()
    with_image = [*history, {"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}}]}]
    quote = [*history, {"role": "user", "content": "why is data:image/png;base64,AAAA blank?"}]
    mention = [*history, {"role": "user", "content": 'import base64\nbase64.b64decode(s["base64"])'}]
    return {"text only": ("You are Claude Code.", history, tools),
            "text + 0.9 MB image": ("You are Claude Code.", with_image, tools),
            "text mentioning base64": ("You are Claude Code.", mention, tools),
            "text quoting a data URL": ("You are Claude Code.", quote, tools)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    rows = []
    for name, parts in requests().items():
        size = sum(len(json.dumps(p, separators=(",", ":")).encode()) for p in parts)
        times: dict[str, list[float]] = {"estimate": [], "bytes_only": []}
        for _ in range(args.rounds):  # interleaved: a shared machine's load hits both alike
            for key, fn in (("estimate", estimate_input_tokens), ("bytes_only", bytes_only)):
                start = time.perf_counter()
                fn(*parts)
                times[key].append((time.perf_counter() - start) * 1000)
        rows.append({"case": name, "json_mb": round(size / 1e6, 2), "tokens": estimate_input_tokens(*parts),
                     "bytes_only_tokens": bytes_only(*parts),
                     "p50_ms": round(statistics.median(times["estimate"]), 2),
                     "bytes_only_p50_ms": round(statistics.median(times["bytes_only"]), 2)})
    print(f"{'case':28} {'JSON MB':>8} {'tokens':>9} {'p50 ms':>8} {'bytes/4 tokens':>15} {'bytes/4 p50 ms':>15}")
    for r in rows:
        print(f"{r['case']:28} {r['json_mb']:>8} {r['tokens']:>9} {r['p50_ms']:>8} "
              f"{r['bytes_only_tokens']:>15} {r['bytes_only_p50_ms']:>15}")
    out = ROOT / "bench" / "results" / "estimate.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"rounds": args.rounds, "rows": rows}, indent=2) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
