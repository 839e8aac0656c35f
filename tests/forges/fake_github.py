"""A fake GitHub REST + GraphQL API, just the endpoints ci-guard's comment code calls.

REST under ``/api/v3`` (the GitHub Enterprise Server layout, so ``GITHUB_API_URL`` handling is
exercised too) and GraphQL at ``/api/graphql``:

* ``GET /user`` (403 "Resource not accessible by integration" for app installation tokens)
* ``GET /repos/{o}/{r}``, ``GET /repos/{o}/{r}/issues/{n}``
* ``GET`` (paginated: ``per_page``/``page`` + ``Link``) and ``POST /repos/{o}/{r}/issues/{n}/comments``
* ``PATCH``/``DELETE /repos/{o}/{r}/issues/comments/{id}``
* ``POST /graphql``: ``minimizeComment`` and ``viewer { login }``
* ``GET /repos/{o}/{r}/pulls/{n}`` and ``.../files`` for the PRs put in ``pulls`` (context detection)
* ``POST /repos/{o}/{r}/issues/{n}/labels`` and ``POST .../pulls/{n}/requested_reviewers`` (handoff; see
  :meth:`FakeGitHub.add_pull`), each recorded in ``handoff_writes``
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.forges.fake_server import FakeServer, Reply, Request

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Comment:
    id: int
    number: int
    author: str
    body: str
    created_at: datetime
    minimized: bool = False

    @property
    def node_id(self) -> str:
        return f"IC_node{self.id}"


class FakeGitHub(FakeServer):
    def __init__(self, repo: str = "acme/app", tokens: dict[str, str] | None = None,
                 integration_tokens: dict[str, str] | None = None, numbers: tuple[int, ...] = (12,)) -> None:
        super().__init__()
        self.repo = repo
        self.tokens = tokens or {"tok-alice": "alice"}
        self.integration_tokens = integration_tokens or {}  # token -> bot login (GET /user is 403)
        self.numbers = set(numbers)
        self.comments: list[Comment] = []
        self.next_id = 1000
        self.pulls: dict[int, dict] = {}  # number -> pull request JSON (GET .../pulls/{n})
        self.pull_files: dict[int, list[dict]] = {}
        self.handoff_writes: list[tuple[str, str, object]] = []  # (method, path, body) of handoff writes

    @property
    def url(self) -> str:
        return self.root + "/api/v3"

    # state helpers --------------------------------------------------------------------------
    def add_comment(self, author: str, body: str, number: int = 12) -> Comment:
        self.next_id += 1
        comment = Comment(self.next_id, number, author, body, EPOCH + timedelta(minutes=self.next_id))
        self.comments.append(comment)
        return comment

    def add_pull(self, number: int = 12, author: str = "dev-dana", labels: tuple[str, ...] = (),
                 reviewers: tuple[str, ...] = (), teams: tuple[str, ...] = ()) -> dict:
        """A pull request as GET .../pulls/{n} answers it (author, labels, requested reviewers)."""
        base = f"{self.url}/repos/{self.repo}"
        self.pulls[number] = {
            "id": 7000 + number, "number": number, "state": "open", "title": "t",
            "url": f"{base}/pulls/{number}", "issue_url": f"{base}/issues/{number}",
            "user": {"login": author, "id": 11}, "labels": [{"name": name} for name in labels],
            "requested_reviewers": [{"login": login, "id": 20 + i} for i, login in enumerate(reviewers)],
            "requested_teams": [{"slug": slug, "name": slug, "id": 30 + i} for i, slug in enumerate(teams)],
        }
        return self.pulls[number]

    def labels(self, number: int = 12) -> list[str]:
        return [label["name"] for label in self.pulls[number]["labels"]]

    def visible(self, number: int = 12) -> list[Comment]:
        return [c for c in self.comments if c.number == number]

    # routing --------------------------------------------------------------------------------
    def _login(self, req: Request) -> str | None:
        auth = req.headers.get("authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else ""
        return self.tokens.get(token) or self.integration_tokens.get(token)

    def route(self, req: Request) -> Reply:
        login = self._login(req)
        if login is None:
            return Reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        if req.path == "/api/graphql" and req.method == "POST":
            return self._graphql(req, login)
        path = req.path.removeprefix("/api/v3")
        owner_repo = re.escape(self.repo)
        routes = [
            ("GET", r"/user", self._user),
            ("GET", rf"/repos/{owner_repo}", self._repo),
            ("GET", rf"/repos/{owner_repo}/issues/(\d+)", self._issue),
            ("GET", rf"/repos/{owner_repo}/issues/(\d+)/comments", self._list),
            ("POST", rf"/repos/{owner_repo}/issues/(\d+)/comments", self._create),
            ("PATCH", rf"/repos/{owner_repo}/issues/comments/(\d+)", self._edit),
            ("DELETE", rf"/repos/{owner_repo}/issues/comments/(\d+)", self._delete),
            ("GET", rf"/repos/{owner_repo}/pulls/(\d+)", self._pull),
            ("GET", rf"/repos/{owner_repo}/pulls/(\d+)/files", self._pull_files),
            ("POST", rf"/repos/{owner_repo}/issues/(\d+)/labels", self._add_labels),
            ("POST", rf"/repos/{owner_repo}/pulls/(\d+)/requested_reviewers", self._request_review),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if method == req.method and match:
                return handler(req, login, *match.groups())
        return Reply(404, {"message": "Not Found"})

    def _user(self, req: Request, login: str) -> Reply:
        if login in self.integration_tokens.values():
            return Reply(403, {"message": "Resource not accessible by integration"})
        return Reply(200, {"login": login, "id": 1, "type": "User"})

    def _repo(self, req: Request, login: str) -> Reply:
        owner, name = self.repo.split("/")
        return Reply(200, {"id": 1, "name": name, "full_name": self.repo, "owner": {"login": owner},
                           "url": f"{self.url}/repos/{self.repo}"})

    def _issue(self, req: Request, login: str, number: str) -> Reply:
        if int(number) not in self.numbers:
            return Reply(404, {"message": "Not Found"})
        return Reply(200, {"id": 5000 + int(number), "number": int(number), "title": "t",
                           "url": f"{self.url}/repos/{self.repo}/issues/{number}"})

    def _pull(self, req: Request, login: str, number: str) -> Reply:
        pull = self.pulls.get(int(number))
        return Reply(200, pull) if pull is not None else Reply(404, {"message": "Not Found"})

    def _pull_files(self, req: Request, login: str, number: str) -> Reply:
        if int(number) not in self.pulls:
            return Reply(404, {"message": "Not Found"})
        return Reply(200, self.pull_files.get(int(number), []) if req.query.get("page", "1") == "1" else [])

    def _add_labels(self, req: Request, login: str, number: str) -> Reply:
        pull = self.pulls.get(int(number))
        if pull is None:
            return Reply(404, {"message": "Not Found"})
        self.handoff_writes.append(("POST", req.path, req.body))
        names = req.body if isinstance(req.body, list) else (req.body or {}).get("labels", [])
        for name in names:  # GitHub adds to the labels already there
            if name not in [label["name"] for label in pull["labels"]]:
                pull["labels"].append({"name": name})
        return Reply(200, pull["labels"])

    def _request_review(self, req: Request, login: str, number: str) -> Reply:
        pull = self.pulls.get(int(number))
        if pull is None:
            return Reply(404, {"message": "Not Found"})
        self.handoff_writes.append(("POST", req.path, req.body))
        body = req.body or {}
        if pull["user"]["login"] in body.get("reviewers", []):
            return Reply(422, {"message": "Review cannot be requested from pull request author."})
        for who in body.get("reviewers", []):
            if who not in [u["login"] for u in pull["requested_reviewers"]]:
                pull["requested_reviewers"].append({"login": who, "id": 99})
        for slug in body.get("team_reviewers", []):
            if slug not in [t["slug"] for t in pull["requested_teams"]]:
                pull["requested_teams"].append({"slug": slug, "name": slug, "id": 98})
        return Reply(201, pull)

    def _json(self, c: Comment) -> dict:
        return {"id": c.id, "node_id": c.node_id, "body": c.body, "user": {"login": c.author, "id": 7},
                "created_at": c.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "updated_at": c.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "url": f"{self.url}/repos/{self.repo}/issues/comments/{c.id}",
                "html_url": f"https://github.example/{self.repo}/pull/{c.number}#issuecomment-{c.id}"}

    def _list(self, req: Request, login: str, number: str) -> Reply:
        if int(number) not in self.numbers:
            return Reply(404, {"message": "Not Found"})
        items = self.visible(int(number))
        per_page = min(int(req.query.get("per_page", 30)), 100)
        page = int(req.query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        base = f"{self.url}/repos/{self.repo}/issues/{number}/comments?per_page={per_page}"
        links = []
        if page < last:
            links.append(f'<{base}&page={page + 1}>; rel="next"')
            links.append(f'<{base}&page={last}>; rel="last"')
        headers = {"Link": ", ".join(links)} if links else {}
        return Reply(200, [self._json(c) for c in chunk], headers)

    def _create(self, req: Request, login: str, number: str) -> Reply:
        if int(number) not in self.numbers:
            return Reply(404, {"message": "Not Found"})
        body = (req.body or {}).get("body", "")
        if len(body) > 65536:
            return Reply(422, {"message": "Validation Failed",
                               "errors": [{"message": "Body is too long (maximum is 65536 characters)"}]})
        return Reply(201, self._json(self.add_comment(login, body, int(number))))

    def _find(self, comment_id: str) -> Comment | None:
        return next((c for c in self.comments if c.id == int(comment_id)), None)

    def _edit(self, req: Request, login: str, comment_id: str) -> Reply:
        comment = self._find(comment_id)
        if comment is None:
            return Reply(404, {"message": "Not Found"})
        if comment.author != login:  # GitHub: only the author (or a maintainer) may edit
            return Reply(403, {"message": "Resource not accessible by integration"})
        comment.body = (req.body or {}).get("body", "")
        return Reply(200, self._json(comment))

    def _delete(self, req: Request, login: str, comment_id: str) -> Reply:
        comment = self._find(comment_id)
        if comment is None:
            return Reply(404, {"message": "Not Found"})
        self.comments.remove(comment)
        return Reply(204)

    def _graphql(self, req: Request, login: str) -> Reply:
        query = (req.body or {}).get("query", "")
        variables = (req.body or {}).get("variables") or {}
        if "minimizeComment" in query:
            subject = (variables.get("input") or {}).get("subjectId")
            comment = next((c for c in self.comments if c.node_id == subject), None)
            if comment is None:
                return Reply(200, {"data": None, "errors": [{"type": "NOT_FOUND", "message": "no node"}]})
            comment.minimized = True
            classifier = (variables.get("input") or {}).get("classifier")
            return Reply(200, {"data": {"minimizeComment": {"minimizedComment": {
                "isMinimized": True, "minimizedReason": str(classifier).lower()}}}})
        if "viewer" in query:
            return Reply(200, {"data": {"viewer": {"login": login}}})
        return Reply(200, {"errors": [{"message": "unsupported query"}]})
