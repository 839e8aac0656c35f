"""Delivery of one alert: Slack-compatible webhook, generic JSON webhook, CI annotation.

Each webhook gets up to ``ATTEMPTS`` POSTs, retried on connection errors, 429 and 5xx with
exponential backoff, all within ``DEADLINE_S`` so a dead endpoint cannot hold a CI job. Errors are
returned (redacted), never raised.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ci_guard.secrets import redact

ATTEMPTS = 4
BACKOFF_S = 0.25  # then 0.5, 1.0
TIMEOUT_S = 5.0
DEADLINE_S = 15.0


@dataclass
class Result:
    delivered: bool
    attempts: int
    error: str | None = None


def post_json(url: str, body: dict[str, Any], deadline: float) -> Result:
    data = json.dumps(body).encode()
    error = None
    for attempt in range(1, ATTEMPTS + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "ci-guard"})
        try:
            with urllib.request.urlopen(request, timeout=min(TIMEOUT_S, left)) as response:
                response.read(65536)
                return Result(True, attempt)
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                return Result(False, attempt, error)  # a 4xx will not get better by retrying
        except (urllib.error.URLError, OSError, ValueError) as exc:
            error = redact(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")
        if attempt < ATTEMPTS:
            time.sleep(min(BACKOFF_S * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic())))
    return Result(False, ATTEMPTS, error)


def _usable(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def deliver(alert: Any, targets: Any, annotate: bool = True, log: Any = None) -> Result:
    """Send ``alert`` everywhere configured; delivered when every webhook took it."""
    deadline = time.monotonic() + DEADLINE_S
    results = []
    message = redact(alert.message)
    if targets.slack and _usable(targets.slack):
        results.append(post_json(targets.slack, {"text": f":rotating_light: ci-guard: {message}"}, deadline))
    if targets.webhook and _usable(targets.webhook):
        body = json.loads(redact(json.dumps(alert.payload())))
        results.append(post_json(targets.webhook, body, deadline))
    if annotate:
        annotation(message)
    failed = [r for r in results if not r.delivered]
    if failed and log is not None:
        log.info(f"warning: alert not delivered ({failed[0].error}); it will not be sent again")
    return Result(not failed, sum(r.attempts for r in results), failed[0].error if failed else None)


def annotation(message: str) -> None:
    """A warning annotation on GitHub Actions; a plain warning line elsewhere (GitLab shows the log)."""
    text = redact(message).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if os.environ.get("GITHUB_ACTIONS") == "true":  # a workflow command: read from stdout
        print(f"::warning title=ci-guard alert::{text}", flush=True)
    else:
        sys.stderr.write(f"ci-guard: alert: {text}\n")
