"""A fake GitLab REST API v4, just the endpoints ci-guard's comment code calls.

* ``GET /api/v4/user``
* ``GET /api/v4/projects/{id or url-encoded path}``, ``GET .../merge_requests/{iid}``
* ``GET`` (paginated: ``per_page``/``page``, ``X-Total``/``X-Next-Page``/``Link``) and
  ``POST /api/v4/projects/{id}/merge_requests/{iid}/notes``
* ``PUT``/``DELETE .../notes/{note_id}``
* ``PUT .../merge_requests/{iid}`` (``add_labels``, ``reviewer_ids``) and ``GET /api/v4/users?username=``
  for the handoff, each write recorded in ``handoff_writes``
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.forges.fake_server import FakeServer, Reply, Request

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PROJECT_ID = 42


@dataclass
class Note:
    id: int
    iid: int
    author: str
    body: str
    created_at: datetime
    system: bool = False


class FakeGitLab(FakeServer):
    def __init__(self, path: str = "acme/app", tokens: dict[str, str] | None = None,
                 iids: tuple[int, ...] = (7,)) -> None:
        super().__init__()
        self.path = path
        self.tokens = tokens or {"glpat-alice-000000000000": "alice"}
        self.iids = set(iids)
        self.notes: list[Note] = []
        self.next_id = 500
        self.author = "dev-dana"
        self.labels: list[str] = []
        self.reviewers: list[int] = []
        self.users = {"alice": 101, "bob": 102, "dev-dana": 103}  # username -> id
        self.handoff_writes: list[tuple[str, str, object]] = []
        self.finished: dict[int, tuple[str, datetime]] = {}  # iid -> (merged | closed, updated_at), for the list

    @property
    def url(self) -> str:
        return self.root

    def add_note(self, author: str, body: str, iid: int = 7, system: bool = False) -> Note:
        self.next_id += 1
        note = Note(self.next_id, iid, author, body, EPOCH + timedelta(minutes=self.next_id), system)
        self.notes.append(note)
        return note

    def visible(self, iid: int = 7) -> list[Note]:
        return [n for n in self.notes if n.iid == iid and not n.system]

    def route(self, req: Request) -> Reply:
        login = self.tokens.get(req.headers.get("private-token", ""))
        if login is None:
            return Reply(401, {"message": "401 Unauthorized"})
        path = req.path.removeprefix("/api/v4")
        project = rf"/projects/(?:{PROJECT_ID}|{re.escape(self.path.replace('/', '%2F'))})"
        routes = [
            ("GET", r"/user", self._user),
            ("GET", project, self._project),
            ("GET", project + r"/merge_requests/(\d+)", self._mr),
            ("PUT", project + r"/merge_requests/(\d+)", self._update_mr),
            ("GET", r"/users", self._users),
            ("GET", project + r"/merge_requests", self._list_mrs),
            ("GET", project + r"/merge_requests/(\d+)/notes", self._list),
            ("POST", project + r"/merge_requests/(\d+)/notes", self._create),
            ("PUT", project + r"/merge_requests/(\d+)/notes/(\d+)", self._update),
            ("DELETE", project + r"/merge_requests/(\d+)/notes/(\d+)", self._delete),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if method == req.method and match:
                return handler(req, login, *match.groups())
        return Reply(404, {"message": "404 Not Found"})

    def _user(self, req: Request, login: str) -> Reply:
        return Reply(200, {"id": 3, "username": login, "web_url": f"{self.root}/{login}"})

    def _project(self, req: Request, login: str) -> Reply:
        return Reply(200, {"id": PROJECT_ID, "path_with_namespace": self.path,
                           "web_url": f"{self.root}/{self.path}"})

    def _mr(self, req: Request, login: str, iid: str) -> Reply:
        if int(iid) not in self.iids:
            return Reply(404, {"message": "404 Not found"})
        return Reply(200, self._mr_json(int(iid)))

    def _mr_json(self, iid: int) -> dict:
        names = {v: k for k, v in self.users.items()}
        return {"id": 9000 + iid, "iid": iid, "project_id": PROJECT_ID, "title": "t",
                "author": {"id": self.users.get(self.author, 1), "username": self.author},
                "labels": list(self.labels),
                "reviewers": [{"id": i, "username": names.get(i, f"user{i}")} for i in self.reviewers]}

    def _update_mr(self, req: Request, login: str, iid: str) -> Reply:
        if int(iid) not in self.iids:
            return Reply(404, {"message": "404 Not found"})
        body = req.body or {}
        self.handoff_writes.append(("PUT", req.path, body))
        for name in [n for n in str(body.get("add_labels") or "").split(",") if n]:
            if name not in self.labels:
                self.labels.append(name)
        if "reviewer_ids" in body:
            self.reviewers = [int(i) for i in body["reviewer_ids"]]
        return Reply(200, self._mr_json(int(iid)))

    def _list_mrs(self, req: Request, login: str) -> Reply:
        """``?state=merged|closed&updated_after=ISO`` (one page: the fake holds few merge requests)."""
        after = datetime.fromisoformat(req.query["updated_after"]) if "updated_after" in req.query else None
        items = [{"id": 9000 + iid, "iid": iid, "project_id": PROJECT_ID, "state": state,
                  "updated_at": at.isoformat()}
                 for iid, (state, at) in sorted(self.finished.items())
                 if req.query.get("state", "all") in ("all", state) and (after is None or at >= after)]
        return Reply(200, items, {"X-Total": str(len(items)), "X-Total-Pages": "1", "X-Page": "1",
                                  "X-Per-Page": "100", "X-Next-Page": ""})

    def _users(self, req: Request, login: str) -> Reply:
        name = req.query.get("username", "")
        return Reply(200, [{"id": self.users[name], "username": name}] if name in self.users else [])

    def _json(self, n: Note) -> dict:
        return {"id": n.id, "body": n.body, "author": {"id": 3, "username": n.author}, "system": n.system,
                "created_at": n.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "noteable_iid": n.iid,
                "noteable_type": "MergeRequest"}

    def _list(self, req: Request, login: str, iid: str) -> Reply:
        if int(iid) not in self.iids:
            return Reply(404, {"message": "404 Not found"})
        items = [n for n in self.notes if n.iid == int(iid)]
        if req.query.get("sort", "desc") == "desc":
            items = items[::-1]
        per_page = min(int(req.query.get("per_page", 20)), 100)
        page = int(req.query.get("page", 1))
        pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {"X-Total": str(len(items)), "X-Total-Pages": str(pages), "X-Per-Page": str(per_page),
                   "X-Page": str(page), "X-Next-Page": str(page + 1) if page < pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else ""}
        base = f"{self.root}/api/v4/projects/{PROJECT_ID}/merge_requests/{iid}/notes"
        query = f"order_by=created_at&per_page={per_page}&sort={req.query.get('sort', 'desc')}"
        links = [f'<{base}?{query}&page=1>; rel="first"', f'<{base}?{query}&page={pages}>; rel="last"']
        if page < pages:
            links.insert(0, f'<{base}?{query}&page={page + 1}>; rel="next"')
        headers["Link"] = ", ".join(links)
        return Reply(200, [self._json(n) for n in chunk], headers)

    def _create(self, req: Request, login: str, iid: str) -> Reply:
        if int(iid) not in self.iids:
            return Reply(404, {"message": "404 Not found"})
        body = (req.body or {}).get("body", "")
        if len(body) > 1_000_000:
            return Reply(400, {"message": {"body": ["is too long (maximum is 1000000 characters)"]}})
        return Reply(201, self._json(self.add_note(login, body, int(iid))))

    def _find(self, note_id: str) -> Note | None:
        return next((n for n in self.notes if n.id == int(note_id)), None)

    def _update(self, req: Request, login: str, iid: str, note_id: str) -> Reply:
        note = self._find(note_id)
        if note is None or note.iid != int(iid):
            return Reply(404, {"message": "404 Note Not Found"})
        if note.author != login:
            return Reply(403, {"message": "403 Forbidden"})
        note.body = (req.body or {}).get("body", "")
        return Reply(200, self._json(note))

    def _delete(self, req: Request, login: str, iid: str, note_id: str) -> Reply:
        note = self._find(note_id)
        if note is None or note.iid != int(iid):
            return Reply(404, {"message": "404 Note Not Found"})
        self.notes.remove(note)
        return Reply(204)
