"""Price imported usage with the catalog and record it in the ledger as one run, marked not enforced.

The run counts against the same budgets as a metered run with the same context (its calls go
through ``record_call``, which updates the rollups), so an agent that cannot be proxied still uses
up the budget it spent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ci_guard.context.model import RunContext
from ci_guard.errors import PricingError, Problem
from ci_guard.importers.model import ImportedCall, ImportedUsage
from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.meter.summary import RunSummary
from ci_guard.policy.decision import Decision
from ci_guard.pricing.catalog import Catalog, load_catalog
from ci_guard.pricing.cost import cost


@dataclass(frozen=True)
class PricedCall:
    call: ImportedCall
    model: str | None  # the catalog model that priced it (None: the vendor's cost was used)
    cost_usd: Decimal
    # who served it: the file's word (a Claude Code / Codex export), else the pricing model's provider in
    # the catalog (a CSV names only the model); "import" only when neither knows
    provider: str | None = None


def price_calls(imported: ImportedUsage, catalog: Catalog, price_as: str | None = None) -> list[PricedCall]:
    """Price every call: catalog first, then ``price_as``, then the vendor's own cost; else an error."""
    priced, unpriced = [], []
    fallback = catalog.lookup(price_as) if price_as else None
    if price_as and fallback is None:
        raise PricingError(f"--price-as {price_as!r}: the catalog has no such model")
    bound = Decimal(0)  # what sums would cost more if every request in them had crossed a tier threshold
    for call in imported.calls:
        price = catalog.resolve(call.model).price if call.model else None
        price = price or fallback
        if price is not None and call.usage.context_tokens + call.usage.output_tokens > 0:
            price = price.for_call(call.service_tier, call.inference_geo)
            fee = catalog.web_search_fee(call.provider, price) * call.web_searches
            if call.is_sum and price.tiers:
                # a sum of requests is never priced with a per-request tier: base rates are exact
                # when no request crossed the threshold; the tier's price is the upper bound
                exact = cost(call.usage, replace(price, tiers=())).total_usd
                upper = cost(call.usage, replace(price, rates=price.tiers[-1].rates, tiers=())).total_usd
                bound += upper - exact
            else:
                exact = cost(call.usage, price).total_usd
            priced.append(PricedCall(call, price.model, exact + fee, call.provider or price.provider))
        elif call.vendor_cost_usd is not None:
            priced.append(PricedCall(call, None, call.vendor_cost_usd, call.provider))
        elif price is not None:  # a row with no tokens at all
            priced.append(PricedCall(call, price.model, Decimal(0), call.provider or price.provider))
        else:
            unpriced.append(call.model or "<no model>")
    if bound > 0:
        imported.notes.append(
            f"{imported.source} reports sums of model calls, not each request: priced at base rates, exact when "
            f"no request was above its model's long-context threshold; at most ${bound} more if every one was "
            "(import the per-call records, e.g. Claude Code's session JSONL, for the exact figure)")
    if unpriced:
        names = ", ".join(sorted(set(unpriced)))
        raise PricingError(
            f"no price for {names} and no vendor cost in the file; pass --price-as MODEL "
            "or add the model under the policy's pricing.overrides")
    return priced


def import_decision(imported: ImportedUsage, ctx: RunContext, model: str | None) -> Decision:
    """The decision recorded with an imported run: allowed by fact, not by the proxy."""
    return Decision(
        decision="allow", rule="import", model=model, context=ctx,
        reason=f"usage imported from {imported.source} export {Path(imported.path).name}; "
               "the model calls did not go through the metering proxy (not enforced)",
        notes=list(imported.notes),
    )


def record_import(imported: ImportedUsage, *, ctx: RunContext, policy: Any | None, policy_path: str | None,
                  ledger_url: str | None, price_as: str | None = None, run_id: str | None = None,
                  now: datetime | None = None) -> RunSummary:
    """Price ``imported`` and write it to the ledger; return the run summary as the ledger has it."""
    from ci_guard.ledger import open_ledger
    from ci_guard.ledger.budgets import budget_keys
    from ci_guard.meter.session import new_run_id
    from ci_guard.report.history import run_summary

    now = now or datetime.now(UTC)
    run_id = run_id or new_run_id()
    if policy is not None:
        from ci_guard.policy.engine import resolve_team

        ctx = resolve_team(policy, ctx)
    catalog = load_catalog(getattr(policy, "pricing", None), Path(policy_path).parent if policy_path else None)
    priced = price_calls(imported, catalog, price_as)
    if any(p.model is None for p in priced):
        imported.notes.append("some rows were priced from the vendor's own cost (no tokens or no catalog price)")
    decision = import_decision(imported, ctx, _main_model(priced))
    started = min((p.call.started_at for p in priced if p.call.started_at), default=None) or now
    ended = started + timedelta(seconds=imported.runtime_s) if imported.runtime_s else now
    store = open_ledger(ledger_url)
    try:
        keys = budget_keys(policy.budgets, ctx, started) if policy is not None else []
        store.start_run(_run_record(run_id, decision, started, imported), keys)
        # Tool calls reported only for the whole run are booked on the first call, so the run total holds.
        loose_tools = imported.tool_calls if not any(p.call.tool_calls for p in priced) else 0
        for seq, p in enumerate(priced, 1):
            tools = p.call.tool_calls + (loose_tools if seq == 1 else 0)
            store.record_call(_call_record(run_id, seq, p, started, ended, imported.session_id, tools))
        status = "error" if imported.is_error else "completed"
        store.finish_run(run_id, status, None, ended, session_id=imported.session_id)
        run = store.get_run(run_id)
        calls = store.list_calls(run_id)
    finally:
        store.close()
    if run is None:  # pragma: no cover - the store just wrote it
        raise PricingError("the imported run was not found in the ledger after writing it",
                           [Problem("ledger read-back failed", field="run_id")])
    summary = run_summary(run, calls)
    summary.decision = decision.as_json()
    if imported.turns is not None:
        summary.turns = imported.turns
    return summary


def _main_model(priced: list[PricedCall]) -> str | None:
    weights: Counter[str] = Counter()
    for p in priced:
        name = p.model or p.call.model
        if name:
            weights[name] += p.call.usage.output_tokens + 1
    return weights.most_common(1)[0][0] if weights else None


def _run_record(run_id: str, decision: Decision, started: datetime, imported: ImportedUsage) -> RunRecord:
    ctx = decision.context
    return RunRecord(
        run_id=run_id, started_at=started, decision="allow", status="running", org=ctx.org, team=ctx.team,
        repo=ctx.repo, user=ctx.actor, workflow=ctx.workflow, agent=ctx.agent, environment=ctx.environment,
        trigger=ctx.trigger, pr=ctx.pr, branch=ctx.head_branch, cohort=ctx.cohort, platform=ctx.platform,
        rule=decision.rule, reason=decision.reason, model=decision.model, limits=decision.as_json()["limits"],
        session_id=imported.session_id, enforced=False,
    )


def _call_record(run_id: str, seq: int, p: PricedCall, started: datetime, ended: datetime,
                 session_id: str | None, tool_calls: int) -> CallRecord:
    call = p.call
    at = call.started_at or started
    return CallRecord(
        run_id=run_id, seq=seq, started_at=at, ended_at=max(at, ended) if not call.started_at else at,
        provider=p.provider or call.provider or "import", endpoint="import", model_requested=call.model,
        model_served=p.model or call.model, usage=call.usage, cost_usd=p.cost_usd, status="ok",
        tool_calls=tool_calls, context_tokens=call.usage.context_tokens, session_id=session_id,
        web_searches=call.web_searches, service_tier=call.service_tier, inference_geo=call.inference_geo,
    )
