"""The engine on the issue's example policy, rule by rule, plus escalation, hints, notes and teams."""

from __future__ import annotations

import random
import textwrap
from decimal import Decimal

from ci_guard.policy.decision import Limits
from ci_guard.policy.engine import NO_RULE, decide, resolve_team
from ci_guard.policy.explain import trace_rules
from ci_guard.policy.loader import policy_from_text
from ci_guard.policy.models import Policy
from tests.policy.conftest import pr_context, status

ORG_OK = [status("org-monthly", "2000", "100")]


def test_skip_drafts(default_policy: Policy) -> None:
    d = decide(default_policy, pr_context(draft=True), ORG_OK)
    assert (d.decision, d.rule) == ("skip", "skip-drafts")
    assert d.reason == "Draft pull requests are not reviewed automatically."
    assert d.model is None and d.limits == Limits()
    assert d.hint is not None and "ready for review" in d.hint


def test_oversized_diff_boundary(default_policy: Policy) -> None:
    assert decide(default_policy, pr_context(diff_lines=5001), ORG_OK).rule == "oversized-diff"
    assert decide(default_policy, pr_context(diff_lines=5000), ORG_OK).rule == "protected-review"


def test_docs_only_limits_merge_over_defaults(default_policy: Policy) -> None:
    d = decide(default_policy, pr_context(changed_paths=["docs/a/b.md", "CHANGELOG.md"], base_branch="x"), ORG_OK)
    assert (d.decision, d.rule, d.model, d.model_tier) == ("allow", "docs-only", "claude-haiku-4-5", "small")
    assert d.limits == Limits(max_turns=5, max_cost_usd=Decimal("0.25"), max_runtime_s=900)


def test_paths_only_never_matches_unknown_or_empty(default_policy: Policy) -> None:
    unknown = decide(default_policy, pr_context(changed_paths=None, base_branch="dev"), ORG_OK)
    assert unknown.rule == "everything-else"
    assert "changed files unknown: 'docs-only' could not match on paths_only" in unknown.notes
    empty = decide(default_policy, pr_context(changed_paths=[], base_branch="dev"), ORG_OK)
    assert empty.rule == "everything-else"
    assert empty.notes == []  # an empty change is known: docs-only simply does not hold


def test_budget_nearly_spent_boundary(default_policy: Policy) -> None:
    low = decide(default_policy, pr_context(), [status("org-monthly", "2000", "1500", "101")])
    assert (low.rule, low.model_tier, low.limits.max_turns) == ("budget-nearly-spent", "small", 8)
    assert low.limits.max_cost_usd == Decimal("0.50") and low.limits.max_runtime_s == 900
    assert [b.remaining_usd for b in low.budgets] == [Decimal(399)]
    edge = decide(default_policy, pr_context(), [status("org-monthly", "2000", "1600")])
    assert edge.rule == "protected-review"


def test_budget_unknown_means_no_match_and_a_note(default_policy: Policy) -> None:
    d = decide(default_policy, pr_context(), [])
    assert d.rule == "protected-review"
    assert any("budget status unknown for org-monthly" in n for n in d.notes)


def test_protected_review(default_policy: Policy) -> None:
    for branch in ("main", "release/1.2"):
        d = decide(default_policy, pr_context(base_branch=branch), ORG_OK)
        assert (d.rule, d.model, d.model_tier) == ("protected-review", "claude-sonnet-4-6", "large")
        assert d.limits == Limits(max_turns=30, max_cost_usd=Decimal("5.00"), max_runtime_s=1200)
    assert decide(default_policy, pr_context(platform="gitlab", repo="acme/grp/web"), ORG_OK).rule == \
        "protected-review"


def test_everything_else(default_policy: Policy) -> None:
    for ctx in (pr_context(trigger="push"), pr_context(agent="test-repair"), pr_context(base_branch="dev"),
                pr_context(trigger=None)):
        d = decide(default_policy, ctx, ORG_OK)
        assert (d.decision, d.rule, d.reason) == ("deny", "everything-else", "No rule allows this run.")


def test_team_resolution(default_policy: Policy) -> None:
    assert resolve_team(default_policy, pr_context(actor="ALICE")).team == "payments"
    assert resolve_team(default_policy, pr_context(repo="acme/payments-ledger")).team == "payments"
    assert resolve_team(default_policy, pr_context()).team is None
    assert resolve_team(default_policy, pr_context(team="given", actor="alice")).team == "given"
    assert decide(default_policy, pr_context(actor="bob"), ORG_OK).context.team == "payments"


ESCALATION = textwrap.dedent("""\
    version: 1
    models: {small: s-1, large: l-1}
    defaults: {model: small, limits: {max_turns: 10, max_cost_usd: 1}}
    rules:
      - name: review
        when: {trigger: pull_request, labels: [ai:review]}
        decision: allow
        escalation: {label: ai:escalate, model: large, limits: {max_cost_usd: 3}}
      - name: rest
        decision: deny
    """)


def test_escalation_by_label() -> None:
    policy = policy_from_text(ESCALATION)
    plain = decide(policy, pr_context(labels=["ai:review"]), [])
    assert (plain.model, plain.model_tier, plain.limits.max_cost_usd) == ("s-1", "small", Decimal(1))
    assert plain.hint == "add the label 'ai:escalate' to run on large (l-1)"
    up = decide(policy, pr_context(labels=["ai:review", "ai:escalate"]), [])
    assert (up.model, up.model_tier, up.limits.max_cost_usd, up.limits.max_turns) == ("l-1", "large", 3, 10)
    assert up.hint is None and "escalated by label 'ai:escalate'" in up.notes


def test_deny_hint_names_the_label_that_would_allow() -> None:
    policy = policy_from_text(ESCALATION)
    d = decide(policy, pr_context(labels=[]), [])
    assert d.rule == "rest"
    assert d.hint == "add the label 'ai:review' (rule 'review' would allow the run)"
    assert decide(policy, pr_context(trigger="push"), []).hint is None


def test_no_rule_matches_denies_by_default() -> None:
    policy = policy_from_text("version: 1\nrules: [{name: a, decision: allow, when: {agent: x}}]\n")
    d = decide(policy, pr_context(), [])
    assert (d.decision, d.rule, d.reason) == ("deny", None, NO_RULE)


def test_not_keeps_unknown_unknown() -> None:
    policy = policy_from_text(textwrap.dedent("""\
        version: 1
        rules:
          - {name: code, decision: allow, when: {not: {paths_only: ["docs/**"]}}}
          - {name: rest, decision: deny}
        """))
    assert decide(policy, pr_context(changed_paths=["src/a.py"]), []).rule == "code"
    assert decide(policy, pr_context(changed_paths=["docs/a.md"]), []).rule == "rest"
    assert decide(policy, pr_context(changed_paths=None), []).rule == "rest"


def test_any_and_null_limit_override() -> None:
    policy = policy_from_text(textwrap.dedent("""\
        version: 1
        defaults: {limits: {max_turns: 5, max_runtime: 1h}}
        rules:
          - name: big
            when: {any: [{diff_lines: "> 100"}, {diff_files: "> 10"}], labels: "size/*"}
            decision: allow
            model: gpt-5-mini
            limits: {max_turns: null}
          - {name: rest, decision: deny}
        """))
    d = decide(policy, pr_context(diff_lines=5, diff_files=11, labels=["size/L"]), [])
    assert (d.rule, d.model, d.model_tier) == ("big", "gpt-5-mini", None)
    assert d.limits == Limits(max_turns=None, max_runtime_s=3600)
    assert decide(policy, pr_context(diff_lines=5, diff_files=1, labels=["size/L"]), []).rule == "rest"


def test_enforcement_comes_from_policy_and_pricing() -> None:
    policy = policy_from_text(textwrap.dedent("""\
        version: 1
        models: {small: s-1}
        pricing: {on_unknown_model: warn, fallback_model: small}
        enforcement: {allowed_models: [small, x-2], reservation_ttl: 30m, on_ledger_error: allow}
        rules: [{name: a, decision: allow}]
        """))
    e = decide(policy, pr_context(), []).enforcement
    assert (e.on_unknown_model, e.fallback_model, e.allowed_models) == ("warn", "s-1", ["s-1", "x-2"])
    assert (e.reservation_ttl_s, e.on_ledger_error) == (1800, "allow")


def _random_policy(rng: random.Random, n: int) -> Policy:
    rules = []
    for i in range(n):
        when = {}
        if rng.random() < 0.5:
            when["repo"] = rng.choice(["acme/a", "acme/*", ["acme/b", "x/*"]])
        if rng.random() < 0.4:
            when["base_branch"] = rng.choice(["main", "release/*", ["main", "dev"]])
        if rng.random() < 0.3:
            when["labels"] = rng.choice(["l1", ["l2", "l*"]])
        if rng.random() < 0.3:
            when["draft"] = rng.random() < 0.5
        if rng.random() < 0.3:
            when["diff_lines"] = rng.choice(["> 100", "<= 50"])
        if rng.random() < 0.2:
            when["paths"] = ["src/**"]
        if rng.random() < 0.2:
            when["not"] = {"labels": "skip"}
        rules.append({"name": f"r{i}", "decision": rng.choice(["allow", "deny", "skip"]), "when": when})
    return Policy.model_validate({"version": 1, "rules": rules})


def test_engine_agrees_with_explain_on_random_policies() -> None:
    rng = random.Random(7)
    for _ in range(30):
        policy = _random_policy(rng, 25)
        for _ in range(20):
            ctx = pr_context(
                repo=rng.choice(["acme/a", "acme/b", "x/y", None]),
                base_branch=rng.choice(["main", "release/2", "dev"]),
                labels=rng.sample(["l1", "l2", "lx", "skip"], rng.randint(0, 2)), draft=rng.choice([True, False, None]),
                diff_lines=rng.choice([10, 80, 200, None]), changed_paths=rng.choice([["src/a.py"], ["d.md"], None]))
            d = decide(policy, ctx, [])
            traces = trace_rules(policy, d)
            first = next((t.name for t in traces if t.matched is True), None)
            assert d.rule == first
