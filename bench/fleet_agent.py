"""The agent of bench_fleet.py: N back-to-back Messages calls, as lean as a client gets.

    ANTHROPIC_BASE_URL=... ANTHROPIC_API_KEY=... python bench/fleet_agent.py CALLS MARK_FILE

Writes wall-clock times (first request sent, first answer, last answer) to MARK_FILE as JSON.
"""

import http.client
import json
import os
import sys
import time
from urllib.parse import urlsplit


def main() -> None:
    calls, mark = int(sys.argv[1]), sys.argv[2]
    base = urlsplit(os.environ["ANTHROPIC_BASE_URL"])
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "hello " * 50}]}).encode()
    headers = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01",
               "content-type": "application/json"}
    conn = http.client.HTTPConnection(base.hostname or "127.0.0.1", base.port or 80)
    path = base.path.rstrip("/") + "/v1/messages"
    times: dict[str, float] = {"first_sent": time.time()}
    for i in range(calls):
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"call {i}: HTTP {response.status}")
        if i == 0:
            times["first_answer"] = time.time()
    times["last_answer"] = time.time()
    with open(mark, "w") as fh:
        json.dump(times, fh)


if __name__ == "__main__":
    main()
