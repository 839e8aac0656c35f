"""git helpers: numstat parsing (binary files, renames) on real repositories, and failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_guard.context import git as gitmod
from ci_guard.context.git import DiffStats, diff_or_reason, diff_stats, has_commit, parse_numstat_z
from tests.context.conftest import commit_all, git, pr_change, write


def test_parse_numstat_z_counts_binary_as_zero_lines_and_lists_both_rename_paths() -> None:
    out = "10\t2\tsrc/a.py\0-\t-\tlogo.png\0" "3\t1\t\0old/name.py\0new/name.py\0"
    stats = parse_numstat_z(out)
    assert stats == DiffStats(lines=16, files=3,
                              paths=["src/a.py", "logo.png", "old/name.py", "new/name.py"])


def test_parse_numstat_z_handles_tabs_and_newlines_in_paths() -> None:
    stats = parse_numstat_z("1\t0\tweird\tname\nwith newline.txt\0")
    assert stats.paths == ["weird\tname\nwith newline.txt"]
    assert stats.lines == 1


def test_parse_empty_diff_is_known_and_empty() -> None:
    assert parse_numstat_z("") == DiffStats(lines=0, files=0, paths=[])


def test_diff_stats_on_a_real_repository(repo: Path) -> None:
    base, head = pr_change(repo)
    stats = diff_stats(str(repo), base, head)
    assert stats.files == 3
    assert stats.lines == 3  # +2 -1 in app.py, binary and pure rename count 0 lines
    assert sorted(stats.paths or []) == ["assets/logo.png", "docs/guide.md", "docs/manual.md", "src/app.py"]


def test_three_dot_diff_ignores_commits_made_on_the_base_since_the_fork(repo: Path) -> None:
    _, head = pr_change(repo)
    git(repo, "checkout", "-q", "main")
    write(repo, "CHANGELOG.md", "base moved on\n")
    moved = commit_all(repo, "on main")
    stats = diff_stats(str(repo), moved, head)
    assert "CHANGELOG.md" not in (stats.paths or [])
    assert stats.files == 3


def test_missing_base_commit_gives_a_reason_not_an_error(repo: Path) -> None:
    stats, reason = diff_or_reason(str(repo), "0123456789abcdef0123456789abcdef01234567", "HEAD")
    assert stats is None
    assert reason is not None and "0123456789ab" in reason and "not in the clone" in reason


def test_all_zero_base_means_a_new_branch(repo: Path) -> None:
    stats, reason = diff_or_reason(str(repo), "0" * 40, "HEAD")
    assert stats is None and reason is not None and "created the branch" in reason


def test_not_a_checkout(tmp_path: Path) -> None:
    stats, reason = diff_or_reason(str(tmp_path), "HEAD~1", "HEAD")
    assert stats is None and reason == "not a git checkout"


def test_has_commit(repo: Path) -> None:
    assert has_commit(str(repo), "HEAD")
    assert not has_commit(str(repo), "deadbeef" * 5)
    assert not has_commit(str(repo), None)


def test_git_timeout_and_missing_binary_become_git_unavailable(monkeypatch: pytest.MonkeyPatch,
                                                              repo: Path) -> None:
    with pytest.raises(gitmod.GitUnavailable, match="timed out"):
        gitmod.git(str(repo), "log", timeout=0.000001)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(gitmod.GitUnavailable, match="not installed"):
        gitmod.git(str(repo), "status")
    assert gitmod.try_git(str(repo), "status") is None


def test_head_and_work_tree_answers_both_questions_in_one_call(tmp_path: Path, repo: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    real = gitmod._run

    def counting(cwd: str, args: tuple[str, ...], timeout: float):  # type: ignore[no-untyped-def]
        calls.append(args)
        return real(cwd, args, timeout)

    monkeypatch.setattr(gitmod, "_run", counting)
    outside = tmp_path / "plain"
    outside.mkdir()
    assert gitmod.head_and_work_tree(str(outside)) == (None, False)
    empty = tmp_path / "empty"
    git(tmp_path, "init", "-q", str(empty))
    assert gitmod.head_and_work_tree(str(empty)) == (None, True)  # a checkout without commits
    head = git(repo, "rev-parse", "HEAD")
    assert gitmod.head_and_work_tree(str(repo)) == (head, True)
    assert gitmod.head_and_work_tree(str(repo / ".git")) == (head, False)  # inside .git: not a work tree
    assert len(calls) == 4
    # the same answers as the two separate calls it replaces
    for where in (outside, empty, repo, repo / ".git"):
        separate = (gitmod.try_git(str(where), "rev-parse", "--verify", "-q", "HEAD"), gitmod.is_work_tree(str(where)))
        assert gitmod.head_and_work_tree(str(where)) == separate
