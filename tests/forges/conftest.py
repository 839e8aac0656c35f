from __future__ import annotations

from collections.abc import Iterator

import pytest

from ci_guard.forges.sticky import RetryPolicy
from ci_guard.report.render import RenderedComment, render_comment
from tests.forges.fake_github import FakeGitHub
from tests.forges.fake_gitlab import FakeGitLab
from tests.report import builders as b


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(integration_tokens={"ghs-actions-token": "github-actions[bot]"}) as srv:
        yield srv


@pytest.fixture
def gitlab_srv() -> Iterator[FakeGitLab]:
    with FakeGitLab() as srv:
        yield srv


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retry(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(attempts=4, backoff_s=1.0, max_wait_s=60, sleep=sleeps)


def comment_at(hour: int, tag: str = "ci-guard-comment", platform: str = "github") -> RenderedComment:
    """A rendered comment whose run ended at 2026-03-02 ``hour``:00 UTC."""
    run = b.run(f"run-{hour}", started=f"2026-03-02T{hour:02d}:00:00Z", ended=f"2026-03-02T{hour:02d}:30:00Z")
    return render_comment([run], tag=tag, platform=platform)
