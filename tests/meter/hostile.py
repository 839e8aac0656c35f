"""Hostile agents for the hardening tests: tiny scripts that talk raw HTTP/1.1 to the metering proxy.

Each writes what it got back to ``$HOSTILE_OUT`` (JSON lines: status, body) so a test can check
what the agent saw. Raw sockets, so the agent can send bytes no HTTP library would (non-UTF-8
headers, duplicate keys, lone surrogate escapes).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from urllib.parse import urlsplit


def send(path: str, body: bytes, headers: dict[bytes, bytes] | None = None, *, base: str | None = None,
         token: str | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
    url = urlsplit(base or os.environ["CI_GUARD_PROXY_URL"])
    token = token if token is not None else os.environ["ANTHROPIC_API_KEY"]
    head = [b"POST " + path.encode() + b" HTTP/1.1", b"host: " + url.netloc.encode(),
            b"content-type: application/json", b"anthropic-version: 2023-06-01",
            b"content-length: %d" % len(body), b"connection: close"]
    if token:  # "" sends no token (the test sets its own credential header)
        head.append(b"x-api-key: " + token.encode())
    for name, value in (headers or {}).items():
        head.append(name + b": " + value)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
    return status, raw.partition(b"\r\n\r\n")[2]


def report(status: int, body: bytes) -> None:
    with open(os.environ["HOSTILE_OUT"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"status": status, "body": body.decode("utf-8", "replace")}) + "\n")


def main() -> int:
    # argv[1:]: a JSON list of [path, body text (raw JSON, escapes kept), {header: value (latin-1)}]
    for path, body, headers in json.loads(sys.argv[1]):
        hdrs = {k.encode("latin-1"): v.encode("latin-1") for k, v in headers.items()}
        report(*send(path, body.encode("utf-8"), hdrs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
