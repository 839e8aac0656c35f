"""Human handoff: when a cap stops an agent, label the PR/MR, request a review, mention someone.

What to do comes from the deciding rule's ``handoff:`` in the *policy file* given to
``ci-guard comment`` -- never from the run summary, which the agent (or, in a second-stage
workflow, PR code) could have written: a summary only names the rule, the status and the cap,
so a forged one can at worst trigger a handoff the policy already defines.

Applied through the same forge clients as the comment, where the forge token already is. Every
step is idempotent (a label already there, a reviewer already requested are left alone) and
never fails the run: a forge error becomes a warning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ci_guard.forges.base import Forge, ForgeRequestError, PullState
from ci_guard.forges.sticky import RetryPolicy, retrying
from ci_guard.policy.models import LOGIN_PATTERN, TEAM_PATTERN, Policy
from ci_guard.report import escape
from ci_guard.report.comment import CAP_LABELS

AUTHOR = "author"  # `mention: author` names the PR/MR author; `@author` is the user called "author"
_LOGIN = re.compile(LOGIN_PATTERN)
_TEAM = re.compile(TEAM_PATTERN)


@dataclass
class HandoffPlan:
    """The union of the handoffs of this job's runs that a cap stopped."""

    runs: list[str] = field(default_factory=list)
    caps: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)  # logins and org/team, without the leading @
    mention: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        if self.labels:
            parts.append("label " + ", ".join(self.labels))
        if self.reviewers:
            parts.append("request review from " + ", ".join(self.reviewers))
        if self.mention:
            parts.append("mention " + ", ".join(self.mention))
        return "; ".join(parts)


@dataclass
class HandoffResult:
    done: list[str] = field(default_factory=list)  # what changed on the forge
    unchanged: list[str] = field(default_factory=list)  # what was already so
    warnings: list[str] = field(default_factory=list)
    mention_line: str | None = None  # markdown for the cost comment (or its footer)


def _add(target: list[str], values: Sequence[str]) -> None:
    for value in values:
        if value not in target:
            target.append(value)


def plan_handoff(summaries: Sequence[Any], policy: Policy) -> HandoffPlan | None:
    """What this job's stopped runs ask for, from their rules in ``policy``; None when nothing.

    ``summaries`` are :class:`ci_guard.meter.summary.RunSummary` (not imported: meter sits above forges).
    """
    rules = {r.name: r for r in policy.rules}
    plan = HandoffPlan()
    for summary in summaries:
        if summary.status != "stopped" or not summary.stop_reason:
            continue
        rule = rules.get(str(summary.decision.get("rule") or ""))
        if rule is None or rule.handoff is None or summary.stop_reason not in rule.handoff.on:
            continue
        _add(plan.runs, [summary.run_id])
        _add(plan.caps, [summary.stop_reason])
        _add(plan.labels, rule.handoff.label)
        _add(plan.reviewers, [r.removeprefix("@") for r in rule.handoff.request_review])
        _add(plan.mention, [m if m == AUTHOR else m.removeprefix("@") for m in rule.handoff.mention])
    return plan if plan.runs else None


def apply_handoff(forge: Forge, plan: HandoffPlan, retry: RetryPolicy | None = None, *, pr_word: str = "pull request"
                  ) -> HandoffResult:
    """Apply ``plan`` on the forge; every failure is a warning in the result, never an exception."""
    result = HandoffResult()
    state: PullState | None = None
    try:
        state = retrying(forge.pull_state, retry)[0]
    except ForgeRequestError as exc:
        result.warnings.append(f"handoff: could not read the {pr_word}: {exc.render()}")
    if state is not None and plan.labels:
        have = {label.lower() for label in state.labels}
        missing = [label for label in plan.labels if label.lower() not in have]
        if missing:
            try:
                retrying(lambda: forge.add_labels(missing), retry)
                result.done.append("added label " + ", ".join(missing))
            except ForgeRequestError as exc:
                result.warnings.append(f"handoff: could not add label {', '.join(missing)}: {exc.render()}")
        else:
            result.unchanged.append("label " + ", ".join(plan.labels) + " already there")
    if state is not None and plan.reviewers:
        _request_reviews(forge, plan, state, result, retry)
    result.mention_line = mention_line(plan, state.author if state else None, pr_word, result)
    return result


def _request_reviews(forge: Forge, plan: HandoffPlan, state: PullState, result: HandoffResult,
                     retry: RetryPolicy | None) -> None:
    author = (state.author or "").lower()
    have_users = {u.lower() for u in state.reviewers}
    have_teams = {t.lower() for t in state.teams}
    users, teams, already = [], [], []
    for who in plan.reviewers:
        if "/" in who:
            if forge.name != "github":
                result.warnings.append(f"handoff: {forge.name} requests reviews from users, not groups: "
                                       f"{who} was not asked")
                continue
            slug = who.rsplit("/", 1)[1]  # GitHub's team_reviewers takes the team's slug
            (already if slug.lower() in have_teams else teams).append(slug)
        elif who.lower() == author:
            # the forge refuses (422) a review request to the PR's own author
            result.warnings.append(f"handoff: {who} is the {'PR' if forge.name == 'github' else 'MR'} author "
                                   "and cannot be asked for a review")
        else:
            (already if who.lower() in have_users else users).append(who)
    if already:
        result.unchanged.append("review already requested from " + ", ".join(already))
    if not users and not teams:
        return
    try:
        retrying(lambda: forge.request_review(users, teams), retry)
        result.done.append("requested review from " + ", ".join([*users, *teams]))
    except ForgeRequestError as exc:
        result.warnings.append(f"handoff: could not request a review: {exc.render()}")


def mention_line(plan: HandoffPlan, author: str | None, pr_word: str = "pull request",
                 result: HandoffResult | None = None) -> str | None:
    """The markdown line that pings the people the plan names (others' text is escaped)."""
    names = []
    for who in plan.mention:
        name = author if who == AUTHOR else who
        if who == AUTHOR and not name:
            if result is not None:
                result.warnings.append(f"handoff: the {pr_word} author is unknown: not mentioned")
            continue
        # policy names passed its patterns; the author's login comes from the forge and must too,
        # else it is shown inert (escaped), never as a mention of something else
        if _LOGIN.fullmatch(name or "") or _TEAM.fullmatch(name or ""):
            names.append("@" + str(name).removeprefix("@"))
        else:
            names.append(escape.code(name))
    if not names:
        return None
    caps = " / ".join(CAP_LABELS.get(cap, cap) for cap in plan.caps)
    return (f"🙋 **Over to a person:** {' '.join(dict.fromkeys(names))}, the agent was stopped by its "
            f"{escape.md(caps)} on this {pr_word}; please take it from here.")
