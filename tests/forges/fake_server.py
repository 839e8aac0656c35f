"""A tiny recording HTTP server on 127.0.0.1 for driving the real forge client libraries.

Subclasses route requests to handlers; every request is recorded (method, path, query, JSON
body, headers) so tests can assert the exact requests a client made. ``fail(...)`` queues
canned error responses (status, headers, body) that are served before the normal handler.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    path_re: str
    reply: Reply
    times: int = 1


class FakeServer:
    """Start with ``with FakeX() as srv:``; ``srv.url`` is the base URL."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                req = Request(self.command, split.path, query, body, {k.lower(): v for k, v in self.headers.items()})
                with server.lock:
                    server.requests.append(req)
                    reply = server._fault_for(req) or server.route(req)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json; charset=utf-8", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # faults and routing -------------------------------------------------------------------
    def fail(self, method: str, path_re: str, status: int, body: Any = None,
             headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.faults.append(Fault(method, path_re, Reply(status, body, headers or {}), times))

    def _fault_for(self, req: Request) -> Reply | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == req.method and re.fullmatch(fault.path_re, req.path):
                fault.times -= 1
                return fault.reply
        return None

    def route(self, req: Request) -> Reply:
        raise NotImplementedError

    # assertions helpers ---------------------------------------------------------------------
    def lines(self, methods: tuple[str, ...] = ("GET", "POST", "PATCH", "PUT", "DELETE")) -> list[str]:
        return [r.line for r in self.requests if r.method in methods]

    def writes(self) -> list[str]:
        return self.lines(("POST", "PATCH", "PUT", "DELETE"))

    def clear(self) -> None:
        self.requests.clear()
