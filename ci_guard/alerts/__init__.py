"""Alerts: budget thresholds, exhausted budgets, cap hits and retry storms, sent once.

After a run has settled, :func:`send_run_alerts` works out which alerts the run's outcome and the
budgets' new state call for, claims each one in the ledger (``alerts_sent``: the first process to
insert an alert's key sends it; two parallel jobs crossing 80% of the same budget bucket send one
alert), and delivers it to a Slack-compatible incoming webhook, a generic JSON webhook (both URLs
read from environment variables the policy names; the URLs themselves are secrets and are never in
the policy) and as a CI annotation. Delivery is retried with backoff within a short deadline;
nothing here ever raises into the run or changes its exit code, and every text is redacted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ci_guard.secrets import redact, register

KINDS = ("budget_threshold", "budget_exhausted", "cap", "retry_storm")


@dataclass
class Alert:
    key: str  # the deduplication key: one alert per key, ever
    kind: str  # one of KINDS
    subject: str  # budget name or run id
    message: str
    fields: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {"source": "ci-guard", "kind": self.kind, "subject": self.subject, "message": self.message,
                **self.fields}


def alerts_for(config: Any, budgets: Sequence[Any], summary: Any, ctx: Any) -> list[Alert]:
    """The alerts the run's outcome and the budgets' state call for (before deduplication)."""
    wanted = set(getattr(config, "on", None) or KINDS)
    out: list[Alert] = []
    where = _where(ctx, summary)
    for status in budgets:
        if status.scope_key is None:
            continue
        start = status.period_start.isoformat() if status.period_start else None
        bucket = f"{status.name}:{status.scope_key}:{start or ''}"
        base = {"budget": status.name, "scope": status.scope, "scope_key": status.scope_key,
                "period": status.period, "period_start": start,
                "limit_usd": str(status.limit_usd), "spent_usd": str(status.spent_usd)}
        if "budget_threshold" in wanted:
            for threshold in status.alert_at_usd:
                if status.spent_usd >= threshold and threshold < status.limit_usd:
                    pct = (threshold / status.limit_usd * 100).quantize(Decimal(1))
                    out.append(Alert(
                        f"threshold:{bucket}:{threshold}", "budget_threshold", status.name,
                        f"budget {status.name} ({status.scope} {status.scope_key}, {status.period}) passed "
                        f"{pct}%: ${status.spent_usd} of ${status.limit_usd} spent",
                        {**base, "threshold_usd": str(threshold)}))
        if "budget_exhausted" in wanted and status.spent_usd >= status.limit_usd:
            out.append(Alert(
                f"exhausted:{bucket}", "budget_exhausted", status.name,
                f"budget {status.name} ({status.scope} {status.scope_key}, {status.period}) is exhausted: "
                f"${status.spent_usd} of ${status.limit_usd} spent; further runs are denied until it resets",
                base))
    reason = getattr(summary, "stop_reason", None)
    if getattr(summary, "status", None) == "stopped" and reason:
        kind = "retry_storm" if reason == "retry_storm" else "cap"
        if kind in wanted:
            out.append(Alert(
                f"{kind}:{summary.run_id}", kind, summary.run_id,
                f"run {summary.run_id}{where} was stopped by {reason} after {summary.turns} turns, "
                f"${summary.cost_usd}" + (f": {summary.stop_detail}" if getattr(summary, "stop_detail", None) else ""),
                {"run_id": summary.run_id, "stop_reason": reason, "cost_usd": str(summary.cost_usd),
                 "turns": summary.turns, "repo": getattr(ctx, "repo", None), "pr": getattr(ctx, "pr", None),
                 "run_url": getattr(ctx, "run_url", None)}))
    for alert in out:
        alert.message = redact(alert.message)
    return out


def _where(ctx: Any, summary: Any) -> str:
    repo, pr = getattr(ctx, "repo", None), getattr(ctx, "pr", None)
    if repo and pr:
        return f" ({repo}#{pr})"
    return f" ({repo})" if repo else ""


def claim(store: Any, alerts: Sequence[Alert], now: datetime) -> list[Alert]:
    """The alerts this process is the first to claim in the ledger (the others were sent by someone)."""
    return [a for a in alerts if store.claim_alert(a.key, a.kind, a.subject, now)]


def send_run_alerts(config: Any, ledger_url: str | None, budgets_spec: Sequence[Any], ctx: Any, summary: Any,
                    log: Any = None, now: datetime | None = None) -> list[Alert]:
    """Evaluate, deduplicate and deliver a finished run's alerts; never raises. Returns what was sent."""
    if config is None or not ledger_url:
        return []
    try:
        from ci_guard.alerts.deliver import deliver
        from ci_guard.ledger import open_ledger

        now = now or datetime.now(UTC)
        targets = targets_from_env(config)
        store = open_ledger(ledger_url)
        try:
            statuses = store.budget_status(budgets_spec, ctx, now) if budgets_spec else []
            thresholds = {b.name: b.alert_thresholds_usd() for b in budgets_spec}
            statuses = [s.model_copy(update={"alert_at_usd": thresholds.get(s.name, [])}) for s in statuses]
            mine = claim(store, alerts_for(config, statuses, summary, ctx), now)
            for alert in mine:
                result = deliver(alert, targets, annotate=getattr(config, "annotation", True), log=log)
                store.alert_delivered(alert.key, result.delivered, result.attempts, result.error, datetime.now(UTC))
        finally:
            store.close()
        return mine
    except Exception as exc:  # an alert is never worth failing a run over
        if log is not None:
            log.info(f"warning: alerts not sent: {redact(type(exc).__name__ + ': ' + str(exc))}")
        return []


@dataclass
class Targets:
    slack: str | None = None
    webhook: str | None = None


def targets_from_env(config: Any, environ: dict[str, str] | None = None) -> Targets:
    """Webhook URLs from the environment variables the policy names; registered as secrets."""
    env = os.environ if environ is None else environ
    out = Targets()
    for attr, name in (("slack", getattr(config, "slack_webhook_env", None)),
                       ("webhook", getattr(config, "webhook_env", None))):
        value = env.get(name) if name else None
        if value:
            register(value)  # an incoming-webhook URL is a credential: redacted wherever it could appear
            setattr(out, attr, value)
    return out
