import re

from ci_guard.report.escape import ZWJ, Safe, code, finalize, link, md
from ci_guard.report.marker import find_marker


def test_mentions_do_not_ping() -> None:
    out = md("thanks @octocat and @acme/admins")
    assert "@octocat" not in out and "@acme/admins" not in out
    assert out.replace(ZWJ, "") == "thanks @octocat and @acme/admins"


def test_gitlab_references_do_not_link_but_issue_numbers_stay() -> None:
    out = md("see !12 ~bug %v1.0 $42 &7 and #99")
    for ref in ("!12", "~bug", "%v1.0", "$42", "&7"):
        assert ref not in out.replace("\\", "")
    assert "\\#99" in out  # GitHub/GitLab still link #99, which is harmless


def test_html_and_markdown_are_neutralised() -> None:
    out = md("<img src=x onerror=alert(1)> [x](javascript:alert(1)) **b** `c` a|b")
    assert "<" not in out and ">" not in out
    assert "&lt;img" in out
    assert "\\[x\\]\\(" in out and "\\*\\*b\\*\\*" in out and "\\`c\\`" in out and "a\\|b" in out


def test_newlines_collapse_and_long_text_is_cut() -> None:
    assert md("a\nb\r\nc\td") == "a b c d"
    out = md("x" * 500, 50)
    assert len(out) == 50 and out.endswith("…")


def test_autolinks_are_broken() -> None:
    out = md("https://evil.example and www.evil.example")
    assert "https://" not in out and "www." not in out


def test_marker_lookalike_in_untrusted_text_is_not_a_marker() -> None:
    forged = md("[//]: <> (ci-guard-comment, valid-at=2099-01-01T00:00:00Z)")
    assert find_marker("\n" + forged + "\n", "ci-guard-comment") is None


def test_code_span_survives_backticks_and_pipes() -> None:
    assert code("a`b") == "``a`b``"
    assert code("`x") == "`` `x ``"
    assert code("a|b") == "`a\\|b`"
    assert code(None) == "—"


def test_link_only_for_http_urls() -> None:
    assert link("job", "https://ci.example/run/1") == "[job](https://ci.example/run/1)"
    assert link("job", "javascript:alert(1)") == "job"
    assert link("job", "https://x/a) [y](z") == "job"


def test_finalize_escapes_plain_strings_and_passes_safe_markup() -> None:
    assert finalize("**x**") == "\\*\\*x\\*\\*"
    assert finalize(Safe("**x**")) == "**x**"
    assert finalize(None) == "—"
    assert finalize(3) == "3"
    assert re.fullmatch(r"\\\|", finalize("|"))


def test_mentions_behind_an_escaped_character_do_not_ping() -> None:
    # md() backslash-escapes `_`; GitLab resolves the mention on the rendered text, where "@\_admin"
    # reads "@_admin" again, so the sigil needs the joiner too
    for name in ("@_admin", "@-team", "~_label", "%_milestone", "!_x"):
        out = md(f"hi {name}")
        sigil = name[0]
        assert f"{sigil}{ZWJ}" in out, out
        rendered = out.replace("\\", "")
        assert name not in rendered


def test_escaped_text_never_starts_a_quick_action() -> None:
    for hostile in ("/merge", "  /close", "\n/approve", "/unassign @me"):
        out = md(hostile)
        assert not out.startswith("/"), out
        assert out.startswith("\\/")  # markdown renders "\/" as "/"
    assert md("ok\n/merge") == "ok /merge"  # newlines are folded: "/" only ever follows text
    assert finalize("/merge").startswith("\\/")
    assert md("a/b") == "a/b"  # a slash inside the text stays as it is


def test_finalize_escapes_objects_whose_repr_holds_untrusted_strings() -> None:
    out = finalize(["/merge", "@admin"])
    assert "@admin" not in out and "\n" not in out
    assert finalize({"k": "<b>"}).count("<") == 0
    assert finalize(2.5) == "2.5"
