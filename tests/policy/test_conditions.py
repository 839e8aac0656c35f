from decimal import Decimal

import pytest

from ci_guard.policy.conditions import GlobSet, compile_glob, glob_regex, parse_comparison
from ci_guard.policy.durations import format_duration, parse_duration


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("docs/**", "docs/a.md", True),
    ("docs/**", "docs/deep/er/a.png", True),
    ("docs/**", "src/docs/a.md", False),
    ("docs/**", "docsx/a.md", False),
    ("**/*.md", "README.md", True),
    ("**/*.md", "a/b/c/NOTES.md", True),
    ("**/*.md", "a/b/c/NOTES.mdx", False),
    ("*.md", "a/README.md", False),
    ("*.md", "README.md", True),
    ("src/**/test_*.py", "src/test_a.py", True),
    ("src/**/test_*.py", "src/x/y/test_a.py", True),
    ("src/**/test_*.py", "src/x/y/a_test.py", False),
    ("release/*", "release/2.4", True),
    ("release/*", "release/2.x/hotfix", False),
    ("release/**", "release/2.x/hotfix", True),
    ("acme/payments-*", "acme/payments-api", True),
    ("acme/payments-*", "acme/payments/api", False),
    ("v?.x", "v2.x", True),
    ("v?.x", "v10.x", False),
    ("dependabot[bot]", "dependabot[bot]", True),
    ("dependabot[bot]", "dependabotb", False),
    ("a.b", "axb", False),
    ("docs/", "docs/a/b.md", True),
    ("/docs/*.md", "docs/a.md", True),
    ("**", "anything/at/all", True),
])
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert (compile_glob(pattern).fullmatch(path) is not None) is expected
    assert GlobSet((pattern,)).match(path) is expected


@pytest.mark.parametrize(("pattern", "message"), [
    ("", "empty pattern"),
    ("docs**", "whole path segment"),
    ("***/x", "whole path segment"),
    ("a//b", "empty path segment"),
    ("src\\app.py", "backslash"),
    (" main", "spaces"),
])
def test_bad_globs_say_what_is_wrong(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        glob_regex(pattern)


def test_globset_mixes_literals_and_wildcards() -> None:
    gs = GlobSet(("main", "release/*", "hotfix-?"))
    assert gs.literals == frozenset({"main"})
    assert [gs.match(b) for b in ("main", "release/1", "hotfix-1", "mainx", "hotfix-12")] == [
        True, True, True, False, False]


@pytest.mark.parametrize(("text", "kind", "value", "actual", "expected"), [
    ("> 5000", "count", 5000, 5001, True),
    ("> 5000", "count", 5000, 5000, False),
    (">=5000", "count", 5000, 5000, True),
    ("<= 20%", "budget", 20, Decimal("20.00"), True),
    ("< 50", "budget", 50, Decimal("49.99"), True),
    ("< $50", "budget", 50, Decimal(50), False),
    (">= 1.50", "budget", Decimal("1.50"), Decimal("1.5"), True),
    ("== 3", "count", 3, 3, True),
    ("!= 3", "count", 3, 3, False),
    ("= 3", "count", 3, 3, True),
])
def test_comparisons(text: str, kind: str, value: object, actual: object, expected: bool) -> None:
    cmp = parse_comparison(text, kind=kind)
    assert cmp.value == Decimal(str(value))
    assert cmp.test(actual) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "kind", "message"), [
    ("5000", "count", "comparison such as"),
    ("> 50%", "count", "whole-number"),
    ("> 1.5", "count", "whole-number"),
    ("=> 3", "count", "comparison such as"),
    ("< 120%", "budget", "between 0% and 100%"),
    ("< $20%", "budget", "not both"),
    (5000, "count", "quoted comparison"),
    ("less than 5", "budget", "comparison such as"),
])
def test_bad_comparisons(text: object, kind: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_comparison(text, kind=kind)


@pytest.mark.parametrize(("value", "seconds"), [
    ("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), (45, 45), ("1.5m", 90),
    ("500ms", 1), ("120", 120),
])
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["15 minutes", "m15", "", "0s", -5, True, "1h-5m", None])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (900, 5400, 90, 0)] == ["15m", "1h30m", "1m30s", "0s"]
