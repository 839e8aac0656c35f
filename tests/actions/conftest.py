"""Fixtures shared by the action tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.actions.scenario import GITHUB_TOKEN, PR, REPO
from tests.forges.fake_github import FakeGitHub


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """The fake GitHub API of the scenario's repository, with the pull request and the job's token."""
    with FakeGitHub(repo=REPO, tokens={GITHUB_TOKEN: "ci-bot"}, numbers=(PR,)) as fake:
        yield fake
