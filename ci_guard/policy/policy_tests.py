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
from ci_guard.errors import InvalidInputError, Problem, shown
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
    seen: dict[str, int] = {}
    for i, case in enumerate(spec.cases):
        where: tuple[Any, ...] = ("cases", i)
        if case.name in seen:
            line, col = located.where((*where, "name"))
            problems.append(Problem(f"duplicate case name {case.name!r} (also cases[{seen[case.name]}])",
                                    str(path), line, col, dotted((*where, "name"))))
        seen.setdefault(case.name, i)
        context_problems = _context_problems(case, spec.defaults, i, located, str(path))
        if context_problems:
            problems += context_problems
            continue
        try:
            out.append(_prepare(case, spec.defaults, str(path)))
        except (ValueError, ValidationError, InvalidInputError) as exc:
            line, col = located.where(where)
            problems.append(Problem(_short(exc), str(path), line, col, dotted(where)))
    if problems:
        raise InvalidInputError(f"{path}: invalid tests file", sort_problems(problems))
    return out


def tests_file_for(policy_path: str | Path, *, must_exist: bool = True) -> Path | None:
    """The conventional tests file of a policy: ``x.yml`` -> ``x.tests.yml`` beside it."""
    path = Path(policy_path)
    candidate = path.with_name(f"{path.stem}.tests{path.suffix or '.yml'}")
    return candidate if candidate.is_file() or not must_exist else None


def is_tests_file(path: str | Path) -> bool:
    return Path(path).name.endswith((".tests.yml", ".tests.yaml"))


def _context_problems(case: Case, defaults: CaseDefaults, index: int, located: Any, filename: str
                      ) -> list[Problem]:
    """Every problem of a case's merged context, each located where the value was written."""
    from ci_guard.policy.loader import message_for
    from ci_guard.policy.yamlmarks import dotted

    merged = {**defaults.context, **case.context}
    problems = []
    try:
        ctx = RunContext.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            key = err["loc"][0] if err["loc"] else None
            base = ("cases", index, "context") if key in case.context or key not in defaults.context \
                else ("defaults", "context")
            where = (*base, *err["loc"][:1])
            line, col = located.where(where, key=err["type"] == "extra_forbidden")
            problems.append(Problem(message_for(err, tuple(err["loc"][:1]), RunContext), filename, line, col,
                                    dotted(where)))
        return problems
    if ctx.trigger is not None and ctx.trigger not in TRIGGERS:
        base = ("cases", index, "context") if "trigger" in case.context else ("defaults", "context")
        line, col = located.where((*base, "trigger"))
        problems.append(Problem(f"expected one of {', '.join(TRIGGERS)}, got {ctx.trigger!r}", filename, line, col,
                                dotted((*base, "trigger"))))
    return problems


def _prepare(case: Case, defaults: CaseDefaults, origin: str) -> Prepared:
    from ci_guard.policy.snapshot import SnapshotBudgetSource

    ctx = RunContext.model_validate({**defaults.context, **case.context})
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
            out.append(f"{key}: expected {shown(want)}, got {shown(getattr(d, key))}")
    if expect.model is not None and expect.model not in (d.model, d.model_tier):
        out.append(f"model: expected {shown(expect.model)}, got {shown(d.model)} (tier {shown(d.model_tier)})")
    if expect.team is not None and d.context.team != expect.team:
        out.append(f"team: expected {shown(expect.team)}, got {shown(d.context.team)}")
    if expect.limits is not None:
        for key in expect.limits.model_fields_set:
            want = getattr(expect.limits, key)
            got = getattr(d.limits, "max_runtime_s" if key == "max_runtime" else key)
            if not _same(want, got):
                out.append(f"limits.{key}: expected {shown(want)}, got {shown(got)}")
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
