"""Validation plus lint of one policy file, every problem located (for `ci-guard validate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ci_guard.errors import Problem
from ci_guard.policy.lint import lint_policy
from ci_guard.policy.loader import sort_problems, validate_located
from ci_guard.policy.yamlmarks import dotted, parse_yaml


@dataclass
class Report:
    path: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    rules: int = 0
    skipped: str | None = None  # why the file was not validated as a policy (a tests file)


def validate_file(path: str | Path, strict: bool = False) -> Report:
    report = Report(str(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.errors.append(Problem(f"cannot read: {exc}", str(path)))
        return report
    located = parse_yaml(text, str(path))
    if isinstance(located.data, dict) and "cases" in located.data and "rules" not in located.data:
        # A policy's unit tests next to it (`validate policies/*.yml` picks up policies/x.tests.yml):
        # not a policy, not an error either; `ci-guard test` runs it.
        policy = Path(path).with_name(Path(path).name.replace(".tests.", ".", 1))
        target = str(policy) if policy != Path(path) and policy.is_file() else "POLICY"
        report.skipped = f"policy tests file, skipped (run it with `ci-guard test {target} {path}`)"
        return report
    policy, problems = validate_located(located, str(path), check_references=False)
    report.errors += problems
    if policy is None:
        report.errors = sort_problems(report.errors)
        return report
    report.rules = len(policy.rules)
    for finding in lint_policy(policy, strict=strict):
        line, col = located.where(finding.path, key=True)
        problem = Problem(finding.message, str(path), line, col, dotted(finding.path) or None)
        (report.errors if finding.severity == "error" else report.warnings).append(problem)
    if not report.errors:
        from ci_guard.policy.model_prices import model_price_findings

        for severity, mpath, message in model_price_findings(policy, Path(path).parent):
            line, col = located.where(mpath, key=True)
            problem = Problem(message, str(path), line, col, dotted(mpath) or None)
            (report.errors if severity == "error" else report.warnings).append(problem)
    report.errors = sort_problems(report.errors)
    report.warnings = sort_problems(report.warnings)
    return report
