"""`ci-guard comment` as a library call: load summaries, add the PR's history, render, post.

Forge failures never fail the CI job unless asked (``fail_on_error``): they become a warning on
stderr and, on GitHub Actions, a ``::warning::`` annotation.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from ci_guard.errors import EXIT_OK, ForgeError, InvalidInputError, Problem
from ci_guard.files import write_text_atomic
from ci_guard.meter.summary import RunSummary
from ci_guard.report.marker import DEFAULT_TAG, check_tag
from ci_guard.report.render import MAX_CHARS, RenderedComment, render_comment
from ci_guard.secrets import redact
from ci_guard.text import clean_any


@dataclass
class CommentOptions:
    summaries: Sequence[str] = ()
    policy: str | None = None
    ledger: str | None = None
    no_ledger: bool = False
    platform: str = "auto"  # github | gitlab | auto
    repo: str | None = None
    pr: int | None = None
    behavior: str = "update"
    tag: str = DEFAULT_TAG
    template: str | None = None
    dry_run: bool = False
    output: str | None = None
    token_env: str | None = None
    fail_on_error: bool = False
    body: str | None = None  # post this markdown file (e.g. `what-if --format markdown`) instead
    comment_on: str = "spend"  # spend | always | never
    footer_on: str | None = None  # put a one-line footer on the agent's comment (author login or marker:TEXT)
    handoff: bool = True  # apply the policy's handoff: when a cap stopped a run of this job
    forge_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. throttle=False in tests


# inputs -------------------------------------------------------------------------------------
def load_summary(path: str | Path) -> RunSummary:
    """One run summary file; bad JSON or a bad field is an InvalidInputError naming the place."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError("", [Problem(f"cannot read the run summary: {exc.strerror}", file=str(path))]) from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError("", [Problem(f"not UTF-8 text (byte {exc.start})", file=str(path))]) from None
    try:
        # clean_any: a summary may carry lone surrogates (JSON escapes an agent chose as its model)
        data = clean_any(json.loads(text))
    except RecursionError:
        raise InvalidInputError("", [Problem("JSON nested too deeply", file=str(path))]) from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError("", [Problem(f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno,
                                             column=exc.colno)]) from None
    try:
        return RunSummary.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(f"{e['msg']} (got {str(e.get('input'))[:60]!r})", file=str(path),
                            field=".".join(str(p) for p in e["loc"])) for e in exc.errors()]
        raise InvalidInputError("invalid run summary", problems) from None


def comment_template(opts: CommentOptions) -> Path | None:
    """--template, else the policy's ``comment_template:`` (relative to the policy file)."""
    if opts.template:
        return Path(opts.template)
    if not opts.policy:
        return None
    from ci_guard.policy.decide import load_policy

    policy = load_policy(opts.policy)
    return policy.resolve_path(policy.comment_template) if policy.comment_template else None


def detect_platform(opts: CommentOptions, summaries: Sequence[RunSummary], env: dict[str, str]) -> str | None:
    if opts.platform in ("github", "gitlab"):
        return opts.platform
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI") == "true":
        return "gitlab"
    for summary in reversed(summaries):
        platform = (summary.decision.get("context") or {}).get("platform")
        if platform in ("github", "gitlab"):
            return platform
    return None


def target(opts: CommentOptions, summaries: Sequence[RunSummary], platform: str | None,
           env: dict[str, str]) -> tuple[str | None, int | None]:
    """(repo or project, PR/MR number): flags first, then the newest run's context, then CI variables."""
    ctx = (summaries[-1].decision.get("context") or {}) if summaries else {}
    repo = opts.repo or ctx.get("repo")
    pr = opts.pr if opts.pr is not None else ctx.get("pr")
    if platform == "gitlab":
        repo = repo or env.get("CI_PROJECT_ID") or env.get("CI_PROJECT_PATH")
        pr = pr if pr is not None else _int(env.get("CI_MERGE_REQUEST_IID"))
    return repo, _int(pr)


def _flags_overrule_context(opts: CommentOptions, summaries: Sequence[RunSummary]) -> bool:
    """True when --repo/--pr point elsewhere than a summary's run context (an artifact's claim)."""
    for summary in summaries:
        ctx = summary.decision.get("context") or {}
        if opts.repo and ctx.get("repo") not in (None, "", opts.repo):
            return True
        if opts.pr is not None and _int(ctx.get("pr")) not in (None, opts.pr):
            return True
    return False


def _int(value: object) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _ledger_url(opts: CommentOptions, env: dict[str, str]) -> str | None:
    """The ledger the comment reads: --ledger, else CI_GUARD_LEDGER, else the default SQLite file if it
    exists; None with --no-ledger."""
    if opts.no_ledger:
        return None
    url = opts.ledger or env.get("CI_GUARD_LEDGER")
    if not url and not opts.ledger:
        from ci_guard.ledger import default_ledger_path

        default = default_ledger_path(env)
        url = f"sqlite:///{default}" if default.is_file() else None
    return url


def history(opts: CommentOptions, repo: str | None, pr: int | None, env: dict[str, str],
            warn: Callable[[str], None]) -> list[RunSummary]:
    """Earlier runs of this PR/MR from the ledger; a ledger problem only costs the history."""
    url = _ledger_url(opts, env)
    if not url or repo is None or pr is None:
        return []
    try:
        from ci_guard.ledger import open_ledger
        from ci_guard.report.history import summaries_for_pr

        store = open_ledger(url, create=False)
        try:
            return summaries_for_pr(store, repo, pr)
        finally:
            store.close()
    except ImportError:
        warn("the ledger backend is not available; the comment shows this job's runs only")
    except Exception as exc:  # the comment is still worth posting without history
        warn(f"could not read earlier runs from the ledger: {redact(str(exc))}")
    return []


def repo_median(opts: CommentOptions, repo: str | None, pr: int | None, env: dict[str, str],
                warn: Callable[[str], None]) -> tuple[Decimal, int] | None:
    """The median spend of the repository's *other* PRs over the last 30 days, and how many there were."""
    url = _ledger_url(opts, env)
    if not url or repo is None:
        return None
    try:
        from datetime import UTC, datetime, timedelta

        from ci_guard.ledger import open_ledger
        from ci_guard.report.finops import median, usd
        from ci_guard.report.render import MEDIAN_DAYS

        store = open_ledger(url, create=False)
        try:
            costs = store.pr_costs(repo, datetime.now(UTC) - timedelta(days=MEDIAN_DAYS))
        finally:
            store.close()
    except Exception as exc:  # only the comparison is lost
        warn(f"could not read the repository's PR spend from the ledger: {redact(str(exc))}")
        return None
    others = [micros for number, micros in costs.items() if number != pr]
    return (usd(median(others)), len(others)) if others else None


# outputs ------------------------------------------------------------------------------------
def annotation(message: str) -> str:
    """A GitHub ``::warning::`` workflow command with the message escaped as GitHub documents."""
    text = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::warning title=ci-guard comment::{text}"


@dataclass
class Reporter:
    out: TextIO
    err: TextIO
    github_actions: bool

    def warn(self, message: str) -> None:
        message = redact(message)
        print(f"ci-guard: warning: {message}", file=self.err)
        if self.github_actions:
            print(annotation(message), file=self.out)

    def info(self, message: str) -> None:
        print(f"ci-guard: {redact(message)}", file=self.err)


def make_forge(platform: str, repo: str, pr: int, opts: CommentOptions, env: dict[str, str]) -> Any:
    if platform == "github":
        from ci_guard.forges import github

        return github.from_env(repo, pr, opts.token_env or "GITHUB_TOKEN", env, **opts.forge_kwargs)
    from ci_guard.forges import gitlab

    return gitlab.from_env(repo, pr, opts.token_env or "GITLAB_TOKEN", env, **opts.forge_kwargs)


def run_comment(opts: CommentOptions, *, environ: dict[str, str] | None = None, out: TextIO | None = None,
                err: TextIO | None = None, retry: Any = None) -> int:
    """Everything `ci-guard comment` does; returns the exit code."""
    env = dict(os.environ if environ is None else environ)
    report = Reporter(out or sys.stdout, err or sys.stderr, env.get("GITHUB_ACTIONS") == "true")
    tag = check_tag(opts.tag)
    footer_target = _footer_target(opts.footer_on)
    summaries = [load_summary(p) for p in opts.summaries]
    platform = detect_platform(opts, summaries, env)
    repo, pr = target(opts, summaries, platform, env)
    if _flags_overrule_context(opts, summaries):
        # the summary's own values are not echoed: in a second-stage job PR code wrote them
        report.info(f"the run summary names another repository or PR; posting to {repo}#{pr} "
                    "as --repo/--pr say")
    forge = _Lazy(platform, repo, pr, opts, env)
    mention = _handoff(opts, summaries, forge, platform, report, retry)
    if opts.body is not None:
        comment = body_comment(opts.body, tag, platform)
    else:
        if opts.comment_on == "never":
            if mention:
                report.info("comment-on is never: the handoff's mention was not posted")
            report.info("comment-on is never: no comment posted")
            return EXIT_OK
        earlier = history(opts, repo, pr, env, report.warn)
        if not summaries and not earlier:
            raise InvalidInputError("nothing to comment on: give --summary FILE (or a ledger with runs of --repo/--pr)")
        if opts.comment_on == "spend" and all(s.status in ("denied", "skipped") for s in [*summaries, *earlier]):
            # a denied or skipped run spent nothing: a comment would only be noise (--comment-on always posts it)
            report.info("every run was denied or skipped: no comment (comment-on: spend)")
            return EXIT_OK
        median = repo_median(opts, repo, pr, env, report.warn)
        if footer_target is not None and not opts.dry_run and _footer(
                footer_target, summaries, earlier, median, mention, tag, platform, forge, report):
            return EXIT_OK
        limit = MAX_CHARS.get(platform or "github", 65_536)
        comment = render_comment(summaries, earlier, tag=tag, template=comment_template(opts),
                                 platform=platform or "github", max_chars=limit - (len(mention or "") * 2 + 4),
                                 repo_median=median)
        if mention:
            comment = with_line(comment, mention)
    if comment.omitted_calls:
        report.info(f"{comment.omitted_calls} calls were left out of the per-call table to fit the size limit")
    if opts.output:
        write_text_atomic(opts.output, comment.markdown)
    if opts.dry_run:
        print(comment.body, file=report.out, end="")
        return EXIT_OK
    _step_summary(comment, env, report)
    return _post(comment, platform, repo, pr, opts, forge, report, retry, renew_unless=mention)


class _Lazy:
    """The forge client, made on first use (a dry run or a quiet job never needs a token)."""

    def __init__(self, platform: str | None, repo: str | None, pr: int | None, opts: CommentOptions,
                 env: dict[str, str]) -> None:
        self.platform, self.repo, self.pr, self.opts, self.env = platform, repo, pr, opts, env
        self._forge: Any = None

    def problem(self) -> str | None:
        if self.platform is None:
            return "cannot tell the forge (use --platform github|gitlab)"
        if self.repo is None or self.pr is None:
            return "this run is not on a pull/merge request (no --repo/--pr in flags or context)"
        return None

    def get(self) -> Any:
        """The client; raises ForgeError (no token, say)."""
        if self._forge is None:
            self._forge = make_forge(self.platform, self.repo, self.pr, self.opts, self.env)  # type: ignore[arg-type]
        return self._forge


def _footer_target(value: str | None) -> Any:
    if not value:
        return None
    from ci_guard.forges.footer import FooterTarget

    try:
        return FooterTarget.parse(value)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def with_line(comment: RenderedComment, line: str) -> RenderedComment:
    """``comment`` with a trusted markdown line after its heading (where a reader looks first)."""
    head, sep, rest = comment.markdown.partition("\n\n")
    markdown = f"{head}\n\n{line}\n\n{rest}" if sep else f"{comment.markdown.rstrip()}\n\n{line}\n"
    marker = comment.body[: len(comment.body) - len(comment.markdown)]
    return RenderedComment(marker + markdown, markdown, comment.tag, comment.valid_at, comment.omitted_calls)


def _handoff(opts: CommentOptions, summaries: Sequence[RunSummary], forge: _Lazy, platform: str | None,
             report: Reporter, retry: Any) -> str | None:
    """Apply the policy's handoff for this job's capped runs; the mention line for the comment, if any."""
    if not opts.handoff or not opts.policy or not summaries:
        return None
    from ci_guard.forges.handoff import apply_handoff, plan_handoff
    from ci_guard.policy.decide import load_policy
    from ci_guard.report.render import PR_WORDS

    plan = plan_handoff(summaries, load_policy(opts.policy))
    if plan is None:
        return None
    pr_word = PR_WORDS.get(platform or "github", "pull request")
    if opts.dry_run:
        report.info(f"handoff (dry run, nothing changed): {plan.describe()}")
        from ci_guard.forges.handoff import mention_line

        return mention_line(plan, None, pr_word)  # the author is only known to the forge
    problem = forge.problem()
    if problem:
        report.warn(f"handoff not applied: {problem}")
        return None
    try:
        client = forge.get()
    except ForgeError as exc:
        report.warn(f"handoff not applied: {exc.render()}")
        return None
    result = apply_handoff(client, plan, retry, pr_word=pr_word)
    for warning in result.warnings:
        report.warn(warning)
    for done in result.done:
        report.info(f"handoff: {done}")
    for same in result.unchanged:
        report.info(f"handoff: {same}")
    return result.mention_line


def _footer(target_: Any, summaries: Sequence[RunSummary], earlier: Sequence[RunSummary],
            median: tuple[Decimal, int] | None, mention: str | None, tag: str, platform: str | None,
            forge: _Lazy, report: Reporter) -> bool:
    """Put the cost footer on the agent's comment; False when the cost comment must be posted instead."""
    from datetime import UTC, datetime

    from ci_guard.forges.footer import put_footer
    from ci_guard.report.render import footer_line

    if forge.problem():
        return False  # the post below says what is missing (and honours --fail-on-error)
    line, valid_at = footer_line(summaries, earlier, platform=platform or "github", repo_median=median, extra=mention)
    try:
        result = put_footer(forge.get(), target_, tag, line, valid_at, datetime.now(UTC))
    except ForgeError as exc:
        report.warn(f"could not put the cost footer on the agent's comment ({exc.render()}); "
                    "posting the cost comment instead")
        return False
    if result.action in ("not-found", "too-long"):
        report.info(result.describe(platform or "", target_) + "; posting the cost comment instead")
        return False
    report.info(result.describe(platform or "", target_))
    return True


def body_comment(path: str, tag: str, platform: str | None) -> RenderedComment:
    """A comment from a markdown file ci-guard wrote (a policy preview): same marker and behaviours.

    Its time is now: a policy preview describes the ledger as it is when the job runs.
    """
    from datetime import UTC, datetime

    from ci_guard.report.escape import truncate
    from ci_guard.report.marker import marker_line, strip_markers

    try:
        markdown = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the comment body {path}: {exc}") from None
    # a marker inside the body would make the forge side treat a quote as ours
    markdown = truncate(redact(strip_markers(markdown)), MAX_CHARS.get(platform or "github", 65_536) - 200)
    now = datetime.now(UTC)
    return RenderedComment(f"{marker_line(tag, now)}\n\n{markdown}", markdown, tag, now)


def _step_summary(comment: RenderedComment, env: dict[str, str], report: Reporter) -> None:
    from ci_guard.report.step_summary import write_step_summary

    try:
        write_step_summary(comment.markdown, env)
    except OSError as exc:
        report.warn(f"could not write the step summary: {exc.strerror}")


def _post(comment: RenderedComment, platform: str | None, repo: str | None, pr: int | None,
          opts: CommentOptions, forge: _Lazy, report: Reporter, retry: Any, renew_unless: str | None = None) -> int:
    from ci_guard.forges.sticky import publish

    problem = forge.problem()
    if problem:
        return _fail(f"{problem}; nothing was posted", opts, report)
    try:
        result = publish(forge.get(), comment, opts.behavior, retry, renew_unless=renew_unless)
    except ForgeError as exc:
        return _fail(f"the cost comment was not posted: {exc.render()}", opts, report)
    for note in result.notes:
        report.info(note)
    report.info(result.describe(platform))  # type: ignore[arg-type]
    return EXIT_OK


def _fail(message: str, opts: CommentOptions, report: Reporter) -> int:
    if opts.fail_on_error:
        raise ForgeError(redact(message))
    report.warn(message)
    return EXIT_OK
