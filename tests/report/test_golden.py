"""Golden files of the rendered comment. Regenerate with: UPDATE_GOLDEN=1 pytest tests/report/test_golden.py"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ci_guard.report.render import render_comment
from tests.report import builders as b

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "normal": lambda: render_comment([b.normal()]),
    "capped": lambda: render_comment([b.capped()]),
    "retry_storm": lambda: render_comment([b.retry_storm()]),
    "denied": lambda: render_comment([b.denied()]),
    "several_runs": lambda: render_comment(b.several()[-1:], b.several()[:-1]),
    "hostile": lambda: render_comment([b.hostile()]),
    "gitlab_normal": lambda: render_comment([b.normal()], platform="gitlab", tag="nightly-review"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    body = CASES[name]().body
    path = GOLDEN / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(body, encoding="utf-8")
    assert path.exists(), f"missing golden {path}; run with UPDATE_GOLDEN=1"
    assert body == path.read_text(encoding="utf-8")
