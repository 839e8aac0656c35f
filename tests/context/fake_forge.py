"""A tiny GitHub + GitLab REST server on 127.0.0.1 for the API fallback tests.

It speaks the documented shapes of the endpoints ci-guard reads:

* GitHub ``GET /repos/{owner}/{repo}/pulls/{n}`` and ``GET .../pulls/{n}/files`` (``per_page`` up to
  100, ``page``, and a ``Link`` header with ``rel="next"``/``rel="last"`` like api.github.com).
* GitLab ``GET /api/v4/projects/{id}/merge_requests/{iid}/changes``.

Every request is recorded (path, query, headers) so tests can assert what was sent.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeForge:
    def __init__(self) -> None:
        self.pulls: dict[tuple[str, int], dict[str, Any]] = {}
        self.pull_files: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.mr_changes: dict[tuple[str, int], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_status: int | None = None
        self.delay_s = 0.0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # do not wait for a deliberately slow handler
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeForge:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- routing ------------------------------------------------------------------------------

    def route(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        parts = path.strip("/").split("/")
        if parts[:1] == ["repos"] and len(parts) >= 5 and parts[3] == "pulls":
            key = (f"{parts[1]}/{parts[2]}", int(parts[4]))
            if len(parts) == 5 and key in self.pulls:
                return 200, self.pulls[key], {}
            if len(parts) == 6 and parts[5] == "files" and key in self.pull_files:
                return self._page(path, query, self.pull_files[key])
        if parts[:3] == ["api", "v4", "projects"] and len(parts) == 7 and parts[6] == "changes":
            key = (parts[3], int(parts[5]))
            if key in self.mr_changes:
                return 200, self.mr_changes[key], {}
        return 404, {"message": "Not Found"}, {}

    def _page(self, path: str, query: dict[str, list[str]], items: list[Any]) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        last = max(1, -(-len(items) // per_page))
        links = []
        if page < last:
            links.append(f'<{self.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{self.url}{path}?per_page={per_page}&page={last}>; rel="last"')
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, items[(page - 1) * per_page: page * per_page], headers

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        forge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                forge.requests.append({"path": url.path, "query": query, "headers": dict(self.headers)})
                if forge.delay_s:
                    time.sleep(forge.delay_s)
                if forge.fail_status:
                    status, body, headers = forge.fail_status, {"message": "Bad credentials"}, {}
                else:
                    status, body, headers = forge.route(url.path, query)
                # Like GitHub Enterprise, API URLs inside bodies point at this server.
                data = json.dumps(body).replace("https://api.github.com", forge.url).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                    pass

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def github_file(name: str, additions: int = 1, deletions: int = 0, status: str = "modified",
                previous: str | None = None) -> dict[str, Any]:
    """One item of ``GET /repos/{o}/{r}/pulls/{n}/files`` as documented by GitHub."""
    item = {
        "sha": "bbcd538c8e72b8c175046e27cc8f907076331401",
        "filename": name,
        "status": status,
        "additions": additions,
        "deletions": deletions,
        "changes": additions + deletions,
        "blob_url": f"https://github.com/acme/payments-api/blob/b1f2a3c/{name}",
        "raw_url": f"https://github.com/acme/payments-api/raw/b1f2a3c/{name}",
        "contents_url": f"https://api.github.com/repos/acme/payments-api/contents/{name}?ref=b1f2a3c",
        "patch": "@@ -1 +1 @@\n-old\n+new",
    }
    if previous:
        item["previous_filename"] = previous
    return item


def gitlab_change(old: str, new: str, diff: str, **flags: bool) -> dict[str, Any]:
    """One item of the ``changes`` array of ``GET .../merge_requests/:iid/changes``."""
    return {
        "old_path": old, "new_path": new, "a_mode": "100644", "b_mode": "100644", "diff": diff,
        "new_file": flags.get("new_file", False), "renamed_file": flags.get("renamed_file", old != new),
        "deleted_file": flags.get("deleted_file", False), "generated_file": None,
        **{k: v for k, v in flags.items() if k in ("too_large", "collapsed")},
    }
