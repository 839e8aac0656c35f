"""RunContext outside CI: what the local git checkout says.

* ``head_branch``: the current branch (``None`` when HEAD is detached).
* ``base_branch``: the branch ``origin/HEAD`` points to, else ``main``, else ``master``.
* ``actor``: ``git config user.name``, else ``user.email``.
* ``repo``/``org``: parsed from the ``origin`` remote URL.
* diff: ``git diff --numstat BASE...HEAD`` (committed changes on this branch since it forked).
* ``trigger`` is ``manual`` (a person ran it) and ``event_name`` is ``local``.
"""

from __future__ import annotations

import re

from ci_guard.context.git import GitUnavailable, diff_stats, head_and_work_tree, try_git
from ci_guard.context.model import RunContext
from ci_guard.context.overrides import PATHS_UNKNOWN

# git@host:group/sub/name.git, ssh://git@host:22/group/name.git, https://host/group/name(.git)
_REMOTE = re.compile(r"^(?:[a-z+]+://)?(?:[^@/]+@)?[^:/]+(?::\d+)?[:/](?P<path>.+?)(?:\.git)?/?$")


def local_context(cwd: str) -> RunContext:
    """Build the context of a run on a developer machine (or an unknown CI).

    Uses five git calls at most (one outside a checkout): ``check`` runs this on every invocation and must start fast.
    """
    sha, work_tree = head_and_work_tree(cwd)
    if sha is None and not work_tree:
        return RunContext(platform="local", trigger="manual", event_name="local",
                          notes=[f"{PATHS_UNKNOWN}: {cwd} is not a git checkout (or git is unavailable)"])
    config = _config(cwd)
    repo = parse_remote(config.get("remote.origin.url"))
    base_branch, base_ref = _base(cwd)
    fields = {
        "platform": "local",
        "trigger": "manual",
        "event_name": "local",
        "repo": repo,
        "org": repo.split("/")[0] if repo else None,
        "head_branch": try_git(cwd, "symbolic-ref", "--short", "-q", "HEAD"),
        "base_branch": base_branch,
        "sha": sha,
        "actor": config.get("user.name") or config.get("user.email"),
    }
    notes: list[str] = []
    if base_ref is None:
        notes.append(f"{PATHS_UNKNOWN}: no base branch found (origin/HEAD, main and master are all missing)")
    elif sha is None:
        notes.append(f"{PATHS_UNKNOWN}: the repository has no commits yet")
    else:
        try:
            stats = diff_stats(cwd, base_ref, "HEAD")
            fields.update(diff_lines=stats.lines, diff_files=stats.files, changed_paths=stats.paths)
        except GitUnavailable as exc:  # e.g. no merge base in a shallow clone
            notes.append(f"{PATHS_UNKNOWN}: {exc}")
    return RunContext(**fields, notes=notes)


def parse_remote(url: str | None) -> str | None:
    """``owner/name`` (or ``group/sub/name``) from a git remote URL; ``None`` for a local path."""
    if not url or url.startswith(("/", ".", "file:")):
        return None
    match = _REMOTE.match(url.strip())
    return match.group("path").strip("/") if match else None


def _config(cwd: str) -> dict[str, str]:
    """user.name, user.email and remote.origin.url in one git call."""
    out = try_git(cwd, "config", "--get-regexp", r"^(user\.name|user\.email|remote\.origin\.url)$") or ""
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key, value.strip())
    return {k: v for k, v in values.items() if v}


_BASE_REFS = ("refs/remotes/origin/HEAD", "refs/heads/main", "refs/remotes/origin/main",
              "refs/heads/master", "refs/remotes/origin/master")


def _base(cwd: str) -> tuple[str | None, str | None]:
    """(branch name, ref to diff against): origin/HEAD's branch, else main, else master."""
    out = try_git(cwd, "for-each-ref", "--format=%(refname) %(symref)", *_BASE_REFS) or ""
    refs = {name: symref.strip() for name, _, symref in (line.partition(" ") for line in out.splitlines())}
    target = refs.get("refs/remotes/origin/HEAD", "")
    if target.startswith("refs/remotes/origin/"):
        return target.removeprefix("refs/remotes/origin/"), target.removeprefix("refs/remotes/")
    for name in ("main", "master"):
        for ref in (f"refs/heads/{name}", f"refs/remotes/origin/{name}"):
            if ref in refs:
                return name, ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")
    return None, None
