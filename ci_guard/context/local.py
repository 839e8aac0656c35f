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

from ci_guard.context.git import diff_or_reason, has_commit, is_work_tree, try_git
from ci_guard.context.model import RunContext
from ci_guard.context.overrides import PATHS_UNKNOWN

# git@host:group/sub/name.git, ssh://git@host:22/group/name.git, https://host/group/name(.git)
_REMOTE = re.compile(r"^(?:[a-z+]+://)?(?:[^@/]+@)?[^:/]+(?::\d+)?[:/](?P<path>.+?)(?:\.git)?/?$")


def local_context(cwd: str) -> RunContext:
    """Build the context of a run on a developer machine (or an unknown CI)."""
    if not is_work_tree(cwd):
        return RunContext(platform="local", trigger="manual", event_name="local",
                          notes=[f"{PATHS_UNKNOWN}: {cwd} is not a git checkout (or git is unavailable)"])
    notes: list[str] = []
    repo = parse_remote(try_git(cwd, "remote", "get-url", "origin"))
    base_branch, base_ref = _base(cwd)
    fields = {
        "platform": "local",
        "trigger": "manual",
        "event_name": "local",
        "repo": repo,
        "org": repo.split("/")[0] if repo else None,
        "head_branch": try_git(cwd, "symbolic-ref", "--short", "-q", "HEAD"),
        "base_branch": base_branch,
        "sha": try_git(cwd, "rev-parse", "--verify", "-q", "HEAD"),
        "actor": try_git(cwd, "config", "user.name") or try_git(cwd, "config", "user.email"),
    }
    stats, reason = diff_or_reason(cwd, base_ref, "HEAD") if base_ref else (None, "no base branch found")
    if stats is not None:
        fields.update(diff_lines=stats.lines, diff_files=stats.files, changed_paths=stats.paths)
    else:
        notes.append(f"{PATHS_UNKNOWN}: {reason} (origin/HEAD, main and master are all missing)"
                     if base_ref is None else f"{PATHS_UNKNOWN}: {reason}")
    return RunContext(**fields, notes=notes)


def parse_remote(url: str | None) -> str | None:
    """``owner/name`` (or ``group/sub/name``) from a git remote URL; ``None`` for a local path."""
    if not url or url.startswith(("/", ".", "file:")):
        return None
    match = _REMOTE.match(url.strip())
    return match.group("path").strip("/") if match else None


def _base(cwd: str) -> tuple[str | None, str | None]:
    """(branch name, ref to diff against): origin/HEAD's branch, else main, else master."""
    origin_head = try_git(cwd, "symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD")
    if origin_head and has_commit(cwd, origin_head):
        return origin_head.removeprefix("origin/"), origin_head
    for name in ("main", "master"):
        for ref in (name, f"origin/{name}"):
            if has_commit(cwd, ref):
                return name, ref
    return None, None
