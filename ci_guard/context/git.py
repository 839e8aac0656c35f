"""Read-only git queries for context detection: refs, identity and diff stats.

Detection must never crash on git, so every call has a timeout and failures come back as
:class:`GitUnavailable` (callers turn it into a note on the RunContext).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

GIT_TIMEOUT_S = 10.0
ZERO_SHA = re.compile(r"^0+$")


class GitUnavailable(Exception):
    """git is missing, timed out, or refused the command; the message says which."""


@dataclass(frozen=True)
class DiffStats:
    """Size of a change. ``None`` in a field means that part is unknown."""

    lines: int | None
    files: int | None
    paths: list[str] | None


def _run(cwd: str, args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise GitUnavailable("git is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitUnavailable(f"`git {args[0]}` timed out after {timeout:g}s") from exc
    except OSError as exc:
        raise GitUnavailable(f"cannot run git: {exc}") from exc


def git(cwd: str, *args: str, timeout: float = GIT_TIMEOUT_S) -> str:
    """Run ``git args`` in ``cwd`` and return stdout; raise :class:`GitUnavailable` on any failure."""
    proc = _run(cwd, args, timeout)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitUnavailable(f"`git {args[0]}` failed: {err[-1] if err else f'exit {proc.returncode}'}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def try_git(cwd: str, *args: str) -> str | None:
    """Like :func:`git` but ``None`` on failure, and stripped output (``None`` if empty)."""
    try:
        out = git(cwd, *args).strip()
    except GitUnavailable:
        return None
    return out or None


def is_work_tree(cwd: str) -> bool:
    return try_git(cwd, "rev-parse", "--is-inside-work-tree") == "true"


def head_and_work_tree(cwd: str) -> tuple[str | None, bool]:
    """(HEAD's commit, or None when there is none; whether ``cwd`` is inside a work tree) in one git
    call, where ``try_git(cwd, "rev-parse", "--verify", "-q", "HEAD")`` and :func:`is_work_tree`
    took two: ``check`` and ``run`` ask on every launch, mostly outside a checkout or in one with
    commits. git prints ``true``/``false`` first, then the commit if HEAD resolves (exit 1 if not,
    128 outside a repository: nothing printed)."""
    try:
        proc = _run(cwd, ("rev-parse", "--is-inside-work-tree", "--verify", "-q", "HEAD"), GIT_TIMEOUT_S)
    except GitUnavailable:
        return None, False
    lines = proc.stdout.decode("utf-8", "surrogateescape").split()
    sha = lines[1] if proc.returncode == 0 and len(lines) > 1 else None
    return sha, bool(lines) and lines[0] == "true"


def has_commit(cwd: str, rev: str | None) -> bool:
    """Whether ``rev`` names a commit present in the local object store (false for all-zero shas)."""
    if not rev or ZERO_SHA.match(rev):
        return False
    return try_git(cwd, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}") is not None


def merge_parents(cwd: str, rev: str) -> tuple[str, str] | None:
    """The first and second parent of ``rev`` when it is a merge commit whose parents are here.

    ``None`` for a commit with fewer than two parents, for a missing commit, and at the edge of a
    shallow clone (git shows a shallow commit without parents).
    """
    if not has_commit(cwd, rev):
        return None
    out = try_git(cwd, "rev-list", "--parents", "-n", "1", f"{rev}^{{commit}}", "--")
    shas = out.split() if out else []
    if len(shas) < 3 or not all(has_commit(cwd, sha) for sha in shas[1:3]):
        return None
    return shas[1], shas[2]


def diff_stats(cwd: str, base: str, head: str = "HEAD") -> DiffStats:
    """Lines, files and paths changed on ``head`` since it forked from ``base`` (``base...head``).

    Binary files count as changed files with 0 lines. A rename counts as one file, and both its
    old and new path are listed (moving ``src/x`` to ``docs/x`` also touches ``src/``).
    """
    out = git(cwd, "diff", "--numstat", "-z", "-M", "--no-ext-diff", "--no-textconv",
              f"{base}...{head}", "--")
    return parse_numstat_z(out)


def parse_numstat_z(out: str) -> DiffStats:
    """Parse ``git diff --numstat -z`` output.

    Each record is ``ADDED\\tDELETED\\tPATH\\0``; for a rename or copy the path field is empty and
    the old and new paths follow as two more NUL-terminated fields. Binary files show ``-``.
    """
    tokens = out.split("\0")
    lines = files = 0
    paths: list[str] = []
    i = 0
    while i < len(tokens):
        record = tokens[i]
        i += 1
        if not record:
            continue
        added, deleted, path = record.split("\t", 2)
        names = [path]
        if not path:  # rename/copy: old and new path follow
            names = [tokens[i], tokens[i + 1]]
            i += 2
        files += 1
        lines += _count(added) + _count(deleted)
        paths.extend(n for n in names if n not in paths)
    return DiffStats(lines=lines, files=files, paths=paths)


def _count(field: str) -> int:
    return 0 if field == "-" else int(field)


def diff_or_reason(cwd: str, base: str | None, head: str | None) -> tuple[DiffStats | None, str | None]:
    """Diff stats for ``base...head`` if both commits and their merge base are here, else a reason."""
    if not base:
        return None, "no base commit is known"
    if ZERO_SHA.match(base):
        return None, "the push created the branch (no previous commit to compare with)"
    if not is_work_tree(cwd):
        return None, "not a git checkout"
    if not has_commit(cwd, base):
        return None, f"base commit {base[:12]} is not in the clone (shallow or single-branch checkout)"
    if not head or not has_commit(cwd, head):
        return None, f"head commit {(head or '?')[:12]} is not in the clone"
    try:
        return diff_stats(cwd, base, head), None
    except GitUnavailable as exc:
        # Typically "no merge base" in a shallow clone that has both tips but not their fork point.
        return None, str(exc)
    except (ValueError, IndexError):
        return None, "unexpected `git diff --numstat` output"
