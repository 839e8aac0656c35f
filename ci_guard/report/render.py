"""Render the cost comment: jinja2 template + hidden marker, fitted under the forge's size limit.

The environment is sandboxed (a policy directory may supply its own template) and has no HTML
autoescape (the output is markdown); instead :func:`ci_guard.report.escape.finalize` escapes
every string a template outputs unless a trusted filter produced it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ci_guard import money
from ci_guard.errors import InvalidInputError, Problem
from ci_guard.meter.summary import RunSummary
from ci_guard.report import escape
from ci_guard.report.comment import STATUS_EMOJI, CommentView, RunView, build_view
from ci_guard.report.marker import DEFAULT_TAG, format_time, marker_line

TEMPLATE_DIR = Path(__file__).parent / "templates"
DEFAULT_TEMPLATE = "comment.md.j2"
# Characters a comment body may have. GitHub answers 422 "Body is too long (maximum is 65536
# characters)"; GitLab limits notes to 1,000,000 characters (docs/api/notes.md).
MAX_CHARS = {"github": 65_536, "gitlab": 1_000_000}
FORGE_NAMES = {"github": "GitHub", "gitlab": "GitLab"}
PR_WORDS = {"github": "pull request", "gitlab": "merge request"}
MIN_PRS_FOR_MEDIAN = 3  # fewer other PRs make no median worth comparing with
MEDIAN_DAYS = 30


@dataclass(frozen=True)
class RenderedComment:
    body: str  # marker + markdown: what is posted
    markdown: str  # without the marker: what the step summary and --dry-run show
    tag: str
    valid_at: datetime
    omitted_calls: int = 0


def comment_length(text: str) -> int:
    """Length as a forge counts it, conservatively: UTF-16 code units (an emoji counts twice)."""
    return len(text.encode("utf-16-le")) // 2


# helpers the template calls; they build trusted markup from escaped parts -------------------
def summary_line(view: CommentView) -> escape.Safe:
    runs = len(view.runs)
    parts = [f"**{runs} agent {'run' if runs == 1 else 'runs'}**", f"**{money.format_usd(view.total_cost)}** in total"]
    labels = [("completed", "completed"), ("capped", "capped"), ("retry_storm", "retry storm"),
              ("failed", "failed"), ("cancelled", "cancelled"), ("no_calls", "without a metered call"),
              ("error", "ci-guard error"), ("denied", "denied"), ("skipped", "skipped"), ("running", "running")]
    counts = view.counts
    for kind, label in labels:
        if counts.get(kind):
            parts.append(f"{STATUS_EMOJI[kind]} {counts[kind]} {label}")
    return escape.Safe(" · ".join(parts))


def lead_line(view: CommentView, pr_word: str = "pull request") -> escape.Safe:
    """This PR's spend against the repository's median PR, when the ledger knows enough PRs."""
    if view.repo_median is None or view.repo_prs < MIN_PRS_FOR_MEDIAN:
        return escape.Safe("")
    total, median = view.total_cost, view.repo_median
    if median > 0:
        ratio = total / median
        compare = f"{ratio:.1f}× the median" if ratio >= Decimal("1.05") else (
            "about the median" if ratio > Decimal("0.95") else f"{ratio * 100:.0f}% of the median")
    else:
        compare = "more than the median" if total > 0 else "the median"
    repo = f" of {escape.code(view.repo)}" if view.repo else ""
    return escape.Safe(f"This {pr_word}: **{money.format_usd(total)}**, {compare} PR{repo} "
                       f"({money.format_usd(median)} over its last {view.repo_prs} PRs in {MEDIAN_DAYS} days).")


def status_cell(run: RunView) -> escape.Safe:
    if run.kind in ("capped", "retry_storm"):
        return escape.Safe(f"{run.emoji} **stopped: {escape.md(run.stop_label)}**")
    if run.kind == "error":
        return escape.Safe(f"{run.emoji} **error**")
    if run.kind == "failed":
        why = {"upstream_auth": " (auth error)", "upstream_unreachable": " (upstream unreachable)"}.get(
            run.summary.stop_reason or "", "")
        return escape.Safe(f"{run.emoji} **failed: exit code {escape.md(str(run.summary.agent_exit_code))}"
                           f"{why}**")
    if run.kind == "cancelled":
        return escape.Safe(f"{run.emoji} **cancelled**" + (f" ({escape.md(run.summary.stop_reason)})"
                                                           if run.summary.stop_reason else ""))
    if run.kind == "no_calls":
        return escape.Safe(f"{run.emoji} **no metered call**")
    if run.blocked:
        return escape.Safe(f"{run.emoji} {run.kind}: {escape.md(run.decision.get('reason'), 80)}")
    return escape.Safe(f"{run.emoji} {escape.md(run.kind)}")


def footer(view: CommentView) -> escape.Safe:
    parts = []
    if view.pr is not None:
        title = f" {escape.md(view.title, 80)}" if view.title else ""
        parts.append(f"#{int(view.pr)}{title}")
    if view.head_branch:
        base = f" → {escape.code(view.base_branch, 80)}" if view.base_branch else ""
        parts.append(f"{escape.code(view.head_branch, 80)}{base}")
    if view.sha:
        parts.append(escape.code(str(view.sha)[:12]))
    if view.run_url:
        parts.append(escape.link("CI job", view.run_url))
    parts.append(f"valid at {format_time(view.valid_at)} · ci-guard")
    return escape.Safe(" · ".join(parts))


def _safe(fn):  # type: ignore[no-untyped-def]
    return lambda *args, **kwargs: escape.Safe(fn(*args, **kwargs))


def _ms(value: object) -> str:
    try:
        ms = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    return f"{ms / 1000:.1f}s" if ms >= 1000 else f"{ms:.0f}ms"


def _usd(value: object, missing: object = "—", precise: bool = False) -> escape.Safe:
    # `missing` is printed as is, so a template that passes a PR value there still gets it escaped
    return escape.Safe(money.format_usd(value, escape.md(missing) if missing else "", precise))


def make_env(extra_dir: Path | None = None) -> SandboxedEnvironment:
    """Built-in templates are also reachable as ``builtin/<name>`` so overrides can extend them."""
    builtin = jinja2.FileSystemLoader(str(TEMPLATE_DIR))
    loaders: list[jinja2.BaseLoader] = [jinja2.PrefixLoader({"builtin": builtin})]
    if extra_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(extra_dir)))
    loaders.append(builtin)
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders), autoescape=False, finalize=escape.finalize,
        keep_trailing_newline=True, trim_blocks=False, lstrip_blocks=False,
    )
    env.filters.update(
        md=escape.md, code=escape.code, link=escape.link,
        usd=_usd, tokens=_safe(money.format_tokens), bar=_safe(money.burn_bar),
        duration=_safe(money.format_duration), ms=_safe(_ms),
    )
    env.globals.update(summary_line=summary_line, status_cell=status_cell, footer=footer, lead_line=lead_line)
    return env


@functools.lru_cache(maxsize=1)
def _builtin_template() -> jinja2.Template:
    return make_env().get_template(DEFAULT_TEMPLATE)


def _load(template: Path | None) -> jinja2.Template:
    if template is None:
        return _builtin_template()
    path = Path(template)
    if not path.is_file():
        raise InvalidInputError("", [Problem("comment template not found", file=str(path))])
    try:
        return make_env(path.parent).get_template(path.name)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInputError(
            "", [Problem(f"template syntax error: {exc.message}", file=str(path), line=exc.lineno)]
        ) from exc


def render_view(view: CommentView, *, template: Path | None = None, platform: str = "github",
                tag: str = DEFAULT_TAG) -> str:
    """The comment's markdown (without the marker)."""
    try:
        text = _load(template).render(
            view=view, platform=platform, tag=tag, pr_word=PR_WORDS.get(platform, "pull request"),
            forge_name=FORGE_NAMES.get(platform, platform),
        )
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
        where = str(template) if template else DEFAULT_TEMPLATE
        line = getattr(exc, "lineno", None)
        raise InvalidInputError("", [Problem(f"cannot render the comment: {exc}", file=where, line=line)]) from exc
    return text.strip() + "\n"


def render_comment(
    current: Sequence[RunSummary], history: Iterable[RunSummary] = (), *,
    tag: str = DEFAULT_TAG, template: Path | None = None, platform: str = "github",
    max_chars: int | None = None, now: datetime | None = None,
    repo_median: tuple[Decimal, int] | None = None,
) -> RenderedComment:
    """Render the comment for this job's summaries plus earlier runs, within ``max_chars``.

    When the body is too long the per-call tables are cut first (newest runs keep their calls
    longest), each with a note; only if that is not enough is the text itself cut.
    """
    history = list(history)
    limit = max_chars or MAX_CHARS.get(platform, MAX_CHARS["github"])

    def attempt(max_calls: int | None) -> tuple[RenderedComment, int]:
        view = build_view(current, history, max_calls=max_calls, now=now, repo_median=repo_median)
        markdown = render_view(view, template=template, platform=platform, tag=tag)
        body = f"{marker_line(tag, view.valid_at)}\n\n{markdown}"
        return RenderedComment(body, markdown, tag, view.valid_at, view.omitted_calls), view.total_calls

    best, total_calls = attempt(None)
    if comment_length(best.body) <= limit:
        return best
    low, high = 0, total_calls  # largest number of calls that still fits
    fitted = None
    while low <= high:
        mid = (low + high) // 2
        candidate, _ = attempt(mid)
        if comment_length(candidate.body) <= limit:
            fitted, low = candidate, mid + 1
        else:
            high = mid - 1
    return fitted or _hard_cut(attempt(0)[0], limit)


def _hard_cut(comment: RenderedComment, limit: int) -> RenderedComment:
    note = "\n\n_(ci-guard cut this comment to stay under the forge's size limit.)_\n"
    keep = comment.body
    while comment_length(keep) + comment_length(note) > limit:
        keep = keep[: max(0, len(keep) - max(1, (comment_length(keep) + comment_length(note) - limit)))]
    body = keep + note
    marker_end = body.index("\n\n") + 2 if "\n\n" in body else 0
    return RenderedComment(body, body[marker_end:], comment.tag, comment.valid_at, comment.omitted_calls)


def footer_line(current: Sequence[RunSummary], history: Iterable[RunSummary] = (), *, platform: str = "github",
                now: datetime | None = None, repo_median: tuple[Decimal, int] | None = None,
                extra: str | None = None) -> tuple[str, datetime]:
    """One markdown line of cost for the agent's own comment (``comment --footer-on``), and its time.

    The same figures and money format as the comment's summary line, in ``<sub>``; ``extra`` is
    trusted markup (the handoff's mention) appended to it.
    """
    view = build_view(current, history, now=now, repo_median=repo_median)
    pr_word = PR_WORDS.get(platform, "pull request")
    parts = [f"💸 ci-guard on this {pr_word}: {summary_line(view)}"]
    lead = lead_line(view, pr_word)
    if lead:  # "This pull request: **$x**, 1.4× the median PR ...": the total is already there
        parts.append(lead.split(", ", 1)[-1].rstrip("."))
    if view.run_url:
        parts.append(escape.link("CI job", view.run_url))
    line = " · ".join(parts)
    if extra:
        line += " " + extra
    return line.replace("\n", " "), view.valid_at
