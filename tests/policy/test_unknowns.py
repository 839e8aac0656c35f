"""Regressions: empty vs unknown paths, exact percentages, notes for unknown fields, unknown budget keys."""

from __future__ import annotations

import textwrap
from decimal import Decimal

from ci_guard.policy.engine import decide
from ci_guard.policy.explain import trace_rules
from ci_guard.policy.loader import policy_from_text
from tests.policy.conftest import pr_context, status


def _policy(rules: str, budgets: str = "") -> object:
    return policy_from_text(textwrap.dedent(f"""\
        version: 1
        {budgets}
        rules:
        """) + textwrap.indent(textwrap.dedent(rules), "  "))


def test_not_paths_only_holds_for_an_empty_change() -> None:
    """An empty list is known: paths_only is false on it, so `not:` around it is true."""
    policy = _policy("""\
        - {name: deny-fork-code, decision: deny, when: {fork: true, not: {paths_only: ["docs/**"]}}}
        - {name: rest, decision: allow}
        """)
    d = decide(policy, pr_context(fork=True, changed_paths=[]), [])
    assert (d.decision, d.rule) == ("deny", "deny-fork-code")
    # Unknown paths still never satisfy either side.
    assert decide(policy, pr_context(fork=True, changed_paths=None), []).rule == "rest"


def test_empty_change_is_not_docs_only_and_is_not_reported_as_unknown(default_policy: object) -> None:
    d = decide(default_policy, pr_context(changed_paths=[], base_branch="dev"),  # type: ignore[arg-type]
               [status("org-monthly", "2000")])
    assert d.rule == "everything-else"
    assert not any("docs-only" in n for n in d.notes), d.notes


BUDGET = "budgets: [{name: org-monthly, scope: org, period: month, limit_usd: 7}]"


def test_percentage_is_compared_exactly_not_after_rounding() -> None:
    policy = _policy("""\
        - {name: low, decision: deny, when: {budget_remaining: {org-monthly: "< 20%"}}}
        - {name: rest, decision: allow}
        """, BUDGET)
    # 7 - 5.60005 = 1.39995 remaining = 19.99929% (shown rounded as 20.00%): under 20%.
    st = status("org-monthly", "7", "5.60005")
    assert st.remaining_pct == Decimal("20.00")  # the display rounding stays as it was
    assert decide(policy, pr_context(), [st]).rule == "low"
    assert decide(policy, pr_context(), [status("org-monthly", "7", "5.6")]).rule == "rest"  # exactly 20%


def test_percentage_boundaries_for_every_operator() -> None:
    for op, at_boundary, just_under in (("<=", True, True), (">=", True, False), ("==", True, False),
                                        ("!=", False, True), (">", False, False)):
        policy = _policy(f"""\
            - {{name: hit, decision: deny, when: {{budget_remaining: {{org-monthly: "{op} 20%"}}}}}}
            - {{name: rest, decision: allow}}
            """, BUDGET)
        exact = decide(policy, pr_context(), [status("org-monthly", "7", "5.6")]).rule == "hit"
        under = decide(policy, pr_context(), [status("org-monthly", "7", "5.60005")]).rule == "hit"
        assert (exact, under) == (at_boundary, just_under), op


def test_unknown_fork_is_noted_when_a_rule_could_not_match_on_it() -> None:
    policy = _policy("""\
        - {name: deny-forks, decision: deny, when: {fork: true}}
        - {name: skip-drafts, decision: skip, when: {draft: true, trigger: pull_request}}
        - {name: main-only, decision: deny, when: {not: {base_branch: main}}}
        - {name: comments, decision: allow, when: {trigger: comment}}
        """)
    ctx = pr_context(trigger="comment", event_name="issue_comment", fork=None, draft=None,
                     base_branch=None, head_branch=None)
    d = decide(policy, ctx, [])
    assert (d.decision, d.rule) == ("allow", "comments")
    assert "fork unknown: 'deny-forks' could not match on fork" in d.notes, d.notes
    assert "base_branch unknown: 'main-only' could not match on base_branch" in d.notes, d.notes
    # skip-drafts could not have matched anyway (trigger is known and is not pull_request): no note.
    assert not any("skip-drafts" in n for n in d.notes), d.notes


def test_no_note_for_rules_after_the_deciding_one_or_known_values() -> None:
    policy = _policy("""\
        - {name: comments, decision: allow, when: {trigger: comment}}
        - {name: deny-forks, decision: deny, when: {fork: true}}
        """)
    assert decide(policy, pr_context(trigger="comment", fork=None), []).notes == []
    policy = _policy("""\
        - {name: deny-forks, decision: deny, when: {fork: true}}
        - {name: rest, decision: allow}
        """)
    assert decide(policy, pr_context(fork=False), []).notes == []


def test_notes_for_actor_team_and_nested_conditions() -> None:
    policy = _policy("""\
        - {name: bots, decision: deny, when: {any: [{actor: "*[bot]"}, {team: outsiders}]}}
        - {name: rest, decision: allow}
        """)
    d = decide(policy, pr_context(actor=None, team=None), [])
    assert d.rule == "rest"
    assert "actor unknown: 'bots' could not match on actor" in d.notes, d.notes
    assert "team unknown: 'bots' could not match on team" in d.notes, d.notes


TEAM_BUDGET = "budgets: [{name: team-monthly, scope: team, period: month, limit_usd: 100}]"


def test_budget_with_unknown_scope_key_never_holds_and_is_noted() -> None:
    policy = _policy("""\
        - {name: team-has-money, decision: allow, when: {budget_remaining: {team-monthly: "> 10"}}}
        - {name: team-broke, decision: deny, when: {not: {budget_remaining: {team-monthly: "> 10"}}}}
        - {name: rest, decision: skip}
        """, TEAM_BUDGET)
    no_team = status("team-monthly", "100", scope="team", key=None)  # a full, unspent bucket
    d = decide(policy, pr_context(team=None), [no_team])
    assert d.rule == "rest"  # neither the condition nor its negation holds
    assert any("team unknown for budget team-monthly" in n and "'team-has-money'" in n
               and "'team-broke'" in n for n in d.notes), d.notes
    traces = {t.name: t for t in trace_rules(policy, d)}  # type: ignore[arg-type]
    assert traces["team-has-money"].matched is None
    assert any("team unknown" in o.detail for o in traces["team-has-money"].conditions)
    known = status("team-monthly", "100", scope="team", key="payments")
    assert decide(policy, pr_context(team="payments"), [known]).rule == "team-has-money"


def test_issue_comment_without_a_token_is_noted_end_to_end(tmp_path: object) -> None:
    """The reviewer's case: an issue_comment run with no API token leaves fork unknown."""
    from pathlib import Path

    from ci_guard.context.detect import detect_context
    from tests.context.conftest import github_env

    env = github_env(Path(str(tmp_path)), "issue_comment", "github_issue_comment_pr.json",
                     GITHUB_REF="refs/heads/main")
    ctx = detect_context(env, str(tmp_path))
    assert ctx.fork is None
    policy = _policy("""\
        - {name: deny-forks, decision: deny, when: {fork: true}}
        - {name: comments, decision: allow, when: {trigger: comment}}
        """)
    d = decide(policy, ctx, [])
    assert d.rule == "comments"
    assert "fork unknown: 'deny-forks' could not match on fork" in d.notes


def test_team_budget_without_a_team_through_evaluate() -> None:
    """No budget source: statuses are zero with scope_key None for the team budget; still unknown."""
    from ci_guard.policy.decide import evaluate

    policy = _policy("""\
        - {name: team-has-money, decision: allow, when: {budget_remaining: {team-monthly: "> 10"}}}
        - {name: rest, decision: deny}
        """, TEAM_BUDGET)
    d = evaluate(policy, pr_context(team=None, actor="nobody"))  # type: ignore[arg-type]
    assert d.rule == "rest"
    assert [b.scope_key for b in d.budgets] == [None]
    assert any(n.startswith("team unknown for budget team-monthly") for n in d.notes), d.notes


def test_branch_runs_have_no_draft_or_fork_to_be_unknown() -> None:
    policy = _policy("""\
        - {name: skip-drafts, decision: skip, when: {draft: true}}
        - {name: deny-forks, decision: deny, when: {fork: true}}
        - {name: rest, decision: allow}
        """)
    for trigger in ("push", "schedule", "manual"):
        ctx = pr_context(trigger=trigger, pr=None, draft=None, fork=None)
        d = decide(policy, ctx, [])
        assert (d.decision, d.rule) == ("allow", "rest"), trigger
        assert not any("draft" in n or "fork" in n for n in d.notes), d.notes
        assert (d.context.draft, d.context.fork) == (False, False)  # the decision shows what it used
    # a pull request whose draft state is unknown is still reported: that rule could have matched
    d = decide(policy, pr_context(draft=None), [])
    assert "draft unknown: 'skip-drafts' could not match on draft" in d.notes, d.notes
    # an explicit value on a branch run is kept
    d = decide(policy, pr_context(trigger="push", pr=None, fork=True), [])
    assert d.rule == "deny-forks"
