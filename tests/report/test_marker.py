from datetime import UTC, datetime

import pytest

from ci_guard.errors import InvalidInputError
from ci_guard.report.marker import check_tag, find_marker, marker_line, strip_markers

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_marker_round_trip() -> None:
    line = marker_line("ci-guard-comment", AT)
    assert line == "[//]: <> (ci-guard-comment, valid-at=2026-01-02T03:04:05Z)"
    marker = find_marker(line + "\n\nbody", "ci-guard-comment")
    assert marker is not None and marker.valid_at == AT


def test_tags_are_independent() -> None:
    body = marker_line("nightly", AT) + "\n\nx"
    assert find_marker(body, "ci-guard-comment") is None
    assert find_marker(body, "nightly") is not None


def test_infracost_style_marker_without_time() -> None:
    marker = find_marker("[//]: <> (ci-guard-comment)\nx", "ci-guard-comment")
    assert marker is not None and marker.valid_at is None


@pytest.mark.parametrize("tag", ["", "a b", "x)", "-lead", "a" * 65])
def test_bad_tags_are_invalid_input(tag: str) -> None:
    with pytest.raises(InvalidInputError):
        check_tag(tag)


def test_strip_markers() -> None:
    assert strip_markers(marker_line("t", AT) + "\n\n# hi\n") == "# hi\n"


def test_the_marker_counts_only_as_the_first_line() -> None:
    line = marker_line("ci-guard-comment", AT)
    assert find_marker("I ran the review.\n" + line + "\n\nx", "ci-guard-comment") is None
    assert find_marker("\n" + line, "ci-guard-comment") is None
    assert find_marker(" " + line, "ci-guard-comment") is None
    assert find_marker(line + "\r\n\r\nedited in the web UI", "ci-guard-comment") is not None
    assert find_marker(line, "ci-guard-comment") is not None
