"""Policy unit tests (`ci-guard test POLICY TESTS.yml`), in the spirit of `opa test`.

A tests file lists cases, each a run context (RunContext fields), optional budget statuses (the
snapshot format) and the expected outcome; ``defaults:`` are merged into every case::

    defaults:
      context: {platform: github, repo: acme/web, trigger: pull_request, agent: pr-review}
    cases:
      - name: drafts are skipped
        context: {draft: true}
        expect: {decision: skip, rule: skip-drafts}
      - name: low budget keeps the small model
        context: {base_branch: main, changed_paths: [src/app.py], diff_lines: 10}
        budgets: {org-monthly: {spent_usd: "1700"}}
        expect: {decision: allow, model: small, limits: {max_turns: 8}}
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ci_guard.context.model import TRIGGERS, RunContext
from ci_guard.errors import InvalidInputError, Problem
from ci_guard.policy.decision import Decision
from ci_guard.policy.models import LimitsSpec, Policy


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["allow", "deny", "skip"] | None = None
    rule: str | None = None
    model: str | None = Field(None, description="Concrete model id or tier name.")
    model_tier: str | None = None
    team: str | None = None
    limits: LimitsSpec | None = Field(None, description="Only the keys given are compared.")
    reason_contains: str | None = None
    hint_contains: str | None = None
    notes_contain: str | None = None


class CaseDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context: dict[str, Any] = Field(default_factory=dict)
    budgets: dict[str, Any] | None = None
    now: datetime | None = None


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    context: dict[str, Any] = Field(default_factory=dict)
    budgets: dict[str, Any] | None = None
    now: datetime | None = None
    expect: Expect


class TestsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: CaseDefaults = Field(default_factory=CaseDefaults)
    cases: list[Case] = Field(min_length=1)


@dataclass
class CaseResult:
    name: str
    passed: bool
    seconds: float
    failures: list[str] = field(default_factory=list)
    decision: Decision | None = None


@dataclass
class Prepared:
    name: str
    ctx: RunContext
    source: Any
    now: datetime
    expect: Expect


def load_tests(path: str | Path) -> list[Prepared]:
    """Parse and validate a tests file; raise InvalidInputError with file:line for every problem."""
    from ci_guard.policy.loader import sort_problems, validation_problems
    from ci_guard.policy.yamlmarks import dotted, parse_yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read tests file {path}: {exc}") from None
    located = parse_yaml(text, str(path))
    problems = list(located.problems)
    if located.data is None and not problems:
        problems.append(Problem("the file is empty; expected a mapping with cases:", str(path), 1, 1))
    if problems:
        raise InvalidInputError(f"{path}: invalid tests file", problems)
    try:
        spec = TestsFile.model_validate(located.data)
    except ValidationError as exc:
        raise InvalidInputError(f"{path}: invalid tests file",
                                sort_problems(validation_problems(exc, located, str(path), TestsFile))) from None
    out: list[Prepared] = []
    seen: set[str] = set()
    for i, case in enumerate(spec.cases):
        where = ("cases", i)
        try:
            if case.name in seen:
                raise ValueError(f"duplicate case name {case.name!r}")
            seen.add(case.name)
            out.append(_prepare(case, spec.defaults, str(path)))
        except (ValueError, ValidationError, InvalidInputError) as exc:
            line, col = located.where(where)
            problems.append(Problem(_short(exc), str(path), line, col, dotted(where)))
    if problems:
        raise InvalidInputError(f"{path}: invalid tests file", problems)
    return out


def _prepare(case: Case, defaults: CaseDefaults, origin: str) -> Prepared:
    from ci_guard.policy.snapshot import SnapshotBudgetSource

    try:
        ctx = RunContext.model_validate({**defaults.context, **case.context})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"context.{loc}: {err['msg']}") from None
    if ctx.trigger is not None and ctx.trigger not in TRIGGERS:
        raise ValueError(f"context.trigger: expected one of {', '.join(TRIGGERS)}, got {ctx.trigger!r}")
    budgets = case.budgets if case.budgets is not None else defaults.budgets
    source = SnapshotBudgetSource.from_data(budgets, origin) if budgets is not None else None
    now = case.now or defaults.now or datetime.now(UTC)
    return Prepared(case.name, ctx, source, now if now.tzinfo else now.replace(tzinfo=UTC), case.expect)


def _short(exc: Exception) -> str:
    if isinstance(exc, InvalidInputError):
        return "; ".join(p.message for p in exc.problems) or str(exc)
    return str(exc)


def run_tests(policy: Policy, cases: list[Prepared]) -> list[CaseResult]:
    from ci_guard.policy.decide import evaluate

    results = []
    for case in cases:
        started = time.perf_counter()
        decision = evaluate(policy, case.ctx, budget_source=case.source, now=case.now)
        failures = compare(case.expect, decision)
        results.append(CaseResult(case.name, not failures, time.perf_counter() - started, failures, decision))
    return results


def compare(expect: Expect, d: Decision) -> list[str]:
    """Differences between what a case expects and the decision."""
    out = []
    for key in ("decision", "rule", "model_tier"):
        want = getattr(expect, key)
        if want is not None and getattr(d, key) != want:
            out.append(f"{key}: expected {want!r}, got {getattr(d, key)!r}")
    if expect.model is not None and expect.model not in (d.model, d.model_tier):
        out.append(f"model: expected {expect.model!r}, got {d.model!r} (tier {d.model_tier!r})")
    if expect.team is not None and d.context.team != expect.team:
        out.append(f"team: expected {expect.team!r}, got {d.context.team!r}")
    if expect.limits is not None:
        for key in expect.limits.model_fields_set:
            want = getattr(expect.limits, key)
            got = getattr(d.limits, "max_runtime_s" if key == "max_runtime" else key)
            if not _same(want, got):
                out.append(f"limits.{key}: expected {want!r}, got {got!r}")
    for key, text in (("reason", expect.reason_contains), ("hint", expect.hint_contains)):
        value = getattr(d, key) or ""
        if text is not None and text not in value:
            out.append(f"{key}: expected to contain {text!r}, got {value!r}")
    if expect.notes_contain is not None and not any(expect.notes_contain in n for n in d.notes):
        out.append(f"notes: expected one containing {expect.notes_contain!r}, got {d.notes!r}")
    return out


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, Decimal) or isinstance(got, Decimal):
        return want is not None and got is not None and Decimal(want) == Decimal(got)
    return bool(want == got)


def render_results(tests_path: str, results: list[CaseResult], verbose: bool = True) -> str:
    lines = [f"{tests_path}:"]
    for r in results:
        if r.passed and not verbose:
            continue
        lines.append(f"{'PASS' if r.passed else 'FAIL'}: {r.name} ({r.seconds * 1000:.2f}ms)")
        lines += [f"    {f}" for f in r.failures]
    passed = sum(r.passed for r in results)
    lines.append("-" * 80)
    lines.append(f"PASS: {passed}/{len(results)}")
    if passed != len(results):
        lines.append(f"FAIL: {len(results) - passed}/{len(results)}")
    return "\n".join(lines)
