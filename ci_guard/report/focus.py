"""The ledger as a FinOps FOCUS cost-and-usage dataset: one charge row per model call.

FOCUS (https://focus.finops.org) is the FinOps Foundation's common format for cost data, read by
FinOps tools and warehouses. Columns are those of FOCUS 1.2 plus the 1.3 provider columns
(``ServiceProviderName``, ``HostProviderName``); ci-guard's own columns carry the ``x_`` prefix the
specification reserves for extensions.

What ci-guard knows and what it does not:

* The cost is what the ledger recorded for the call (catalog list prices, or the policy's
  ``pricing.overrides``), so ``BilledCost``, ``EffectiveCost``, ``ListCost`` and ``ContractedCost``
  are the same figure: ci-guard sees no invoice, discount or commitment.
* A call mixes token classes priced at different rates, so there is no single unit price:
  ``ListUnitPrice`` is null and the quantities count tokens (``PricingUnit`` "Tokens"); the
  breakdown by class is in ``SkuPriceDetails``.
* The billing account is the provider's API account, which ci-guard does not see: the provider
  name stands in for it. The repository is the sub-account, the run is the resource.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import IO, Any

from ci_guard.ledger.periods import as_utc, period_bounds
from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.report.marker import format_time

FOCUS_VERSION = "1.2"  # plus the 1.3 provider columns, see the module docstring

COLUMNS = (
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency",
    "BillingAccountId", "BillingAccountName", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription",
    "ChargeFrequency", "ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "PricingUnit",
    "ListUnitPrice", "ContractedUnitPrice", "PricingCategory", "InvoiceIssuerName", "ProviderName",
    "PublisherName", "ServiceProviderName", "HostProviderName", "ServiceName", "ServiceCategory",
    "ServiceSubcategory", "ResourceId", "ResourceName", "ResourceType", "SubAccountId", "SubAccountName",
    "SkuId", "SkuMeter", "SkuPriceDetails", "RegionId", "RegionName", "Tags",
    "x_RunId", "x_CallSeq", "x_CallStatus", "x_Model", "x_ModelRequested", "x_Endpoint", "x_Enforced",
)

_PROVIDERS = {
    "anthropic": ("Anthropic", "Claude API"),
    "openai": ("OpenAI", "OpenAI API"),
}


def focus_rows(pairs: Iterable[tuple[CallRecord, RunRecord]]) -> Iterator[dict[str, Any]]:
    """One FOCUS charge row per call (money as decimal strings, times as ISO 8601 UTC)."""
    for call, run in pairs:
        yield focus_row(call, run)


def focus_row(call: CallRecord, run: RunRecord) -> dict[str, Any]:
    company, service = _PROVIDERS.get(call.provider, (call.provider, f"{call.provider} API"))
    cost = f"{call.cost_usd:.6f}"
    # Whole seconds: the start rounded down, the (exclusive) end rounded up, so that a call shorter
    # than a second still has a period and every call lies inside its own.
    start = as_utc(call.started_at).replace(microsecond=0)
    ended = as_utc(call.ended_at)
    end = max(ended.replace(microsecond=0) + timedelta(seconds=1 if ended.microsecond else 0),
              start + timedelta(seconds=1))
    period_start, period_end = period_bounds("month", "UTC", start)
    usage = call.usage
    tokens = usage.context_tokens + usage.output_tokens
    model = call.model_served or call.model_requested
    return {
        "BilledCost": cost, "EffectiveCost": cost, "ListCost": cost, "ContractedCost": cost,
        "BillingCurrency": "USD",
        "BillingAccountId": call.provider, "BillingAccountName": None,
        "BillingPeriodStart": format_time(period_start), "BillingPeriodEnd": format_time(period_end),
        "ChargePeriodStart": format_time(start), "ChargePeriodEnd": format_time(end),
        "ChargeCategory": "Usage", "ChargeClass": None,
        "ChargeDescription": f"{model or 'unknown model'} {call.endpoint} call {call.seq} of CI agent run "
                             f"{call.run_id}",
        "ChargeFrequency": "Usage-Based",
        "ConsumedQuantity": tokens, "ConsumedUnit": "Tokens",
        "PricingQuantity": tokens, "PricingUnit": "Tokens",
        "ListUnitPrice": None, "ContractedUnitPrice": None, "PricingCategory": "Standard",
        "InvoiceIssuerName": company, "ProviderName": company, "PublisherName": company,
        "ServiceProviderName": company, "HostProviderName": company,
        "ServiceName": service, "ServiceCategory": "AI and Machine Learning",
        "ServiceSubcategory": "Generative AI",
        "ResourceId": call.run_id, "ResourceName": _resource_name(run), "ResourceType": "CI agent run",
        "SubAccountId": run.repo, "SubAccountName": run.repo,
        "SkuId": model, "SkuMeter": call.endpoint,
        "SkuPriceDetails": _json({
            "input_tokens": usage.input_tokens, "cache_write_tokens": usage.cache_write_tokens,
            "cache_write_1h_tokens": usage.cache_write_1h_tokens, "cache_read_tokens": usage.cache_read_tokens,
            "output_tokens": usage.output_tokens, "reasoning_tokens": usage.reasoning_tokens,
            "web_searches": call.web_searches, "service_tier": call.service_tier,
        }),
        "RegionId": None, "RegionName": None,
        "Tags": _json({**_tags(run), **_context_tags(call)}),
        "x_RunId": call.run_id, "x_CallSeq": call.seq, "x_CallStatus": call.status, "x_Model": model,
        "x_ModelRequested": call.model_requested, "x_Endpoint": call.endpoint,
        "x_Enforced": "true" if run.enforced else "false",
    }


def write_focus_csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """Write the rows as CSV (header first; a null is an empty field); returns how many rows."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
        count += 1
    return count


def write_focus_jsonl(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def _tags(run: RunRecord) -> dict[str, str]:
    values = {
        "org": run.org, "team": run.team, "repo": run.repo, "user": run.user, "workflow": run.workflow,
        "agent": run.agent, "environment": run.environment, "trigger": run.trigger, "branch": run.branch,
        "pr": str(run.pr) if run.pr is not None else None, "cohort": run.cohort, "platform": run.platform,
        "rule": run.rule, "run_status": run.status, "stop_reason": run.stop_reason, "outcome": run.outcome,
    }
    return {f"ci-guard/{k}": v for k, v in values.items() if v is not None}


def _context_tags(call: CallRecord) -> dict[str, str]:
    """What the context policy saved on this call (the cost columns hold what was spent)."""
    if not call.context:
        return {}
    tags = {"ci-guard/context_saved_usd": f"{call.context_saved_usd:.6f}",
            "ci-guard/context_changes": ",".join(k for k in ("breakpoints_added", "pruned_tokens", "cleared_tokens",
                                                             "cleared_thinking_turns", "route", "thinking_budget_from",
                                                             "reasoning_effort_from") if call.context.get(k))}
    if call.context.get("method"):
        tags["ci-guard/context_saving_method"] = str(call.context["method"])
    return tags


def _resource_name(run: RunRecord) -> str | None:
    if run.repo and run.pr is not None:
        return f"{run.repo}#{run.pr} ({run.agent or 'agent'})"
    return run.repo


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# -- bulk: a month of a million calls ----------------------------------------------------------------
# The same rows as focus_row, built from the ledger's plain tuples (Store.export_rows) without a
# CallRecord, a RunRecord and a dict per call: what depends only on the run is built once per run,
# what depends only on the month once per month, and CSV rows are written a page at a time.

def focus_value_pages(pages: Iterable[list[tuple[Any, ...]]]) -> Iterator[list[list[Any]]]:
    """Pages of FOCUS rows as value lists in :data:`COLUMNS` order (None for a null)."""
    from ci_guard.ledger.sqlstore import EXPORT_ROW_COLS

    col = EXPORT_ROW_COLS.index
    i_tokens = col("input_tokens")
    i_cost, i_status, i_web, i_tier = col("cost_micros"), col("status"), col("web_searches"), col("service_tier")
    i_ctx, i_saved, i_run = col("context_json"), col("context_saved_micros"), col("run_org")
    runs: dict[str, tuple[Any, ...]] = {}
    months: dict[tuple[int, int], tuple[str, str]] = {}
    second = timedelta(seconds=1)
    for page in pages:
        out = []
        for r in page:
            run_id, seq, started, ended, provider, endpoint, requested, served = r[:8]
            inp, cw, cw1h, cr, outp, reasoning = r[i_tokens:i_tokens + 6]
            run = runs.get(run_id)
            if run is None:
                run = runs[run_id] = _run_columns(r[i_run:])
            resource_name, repo, run_tags, enforced = run
            company, service = _PROVIDERS.get(provider) or (provider, f"{provider} API")
            cost = _money(r[i_cost])
            start = started.replace(microsecond=0) if started.tzinfo is UTC else as_utc(started).replace(microsecond=0)
            ended = ended if ended.tzinfo is UTC else as_utc(ended)
            end = ended.replace(microsecond=0) + second if ended.microsecond else ended
            if end < start + second:
                end = start + second
            period = months.get((start.year, start.month))
            if period is None:
                bounds = period_bounds("month", "UTC", start)
                period = months[(start.year, start.month)] = (format_time(bounds[0]), format_time(bounds[1]))
            tokens = inp + cw + cr + outp
            model = served or requested
            tier = r[i_tier]
            details = (f'{{"cache_read_tokens":{cr},"cache_write_1h_tokens":{cw1h},"cache_write_tokens":{cw},'
                       f'"input_tokens":{inp},"output_tokens":{outp},"reasoning_tokens":{reasoning},'
                       f'"service_tier":{"null" if tier is None else _json(tier)},"web_searches":{r[i_web]}}}')
            tags = run_tags if not r[i_ctx] else _json({**json.loads(run_tags), **_context_tags_of(
                json.loads(r[i_ctx]), r[i_saved])})
            out.append([
                cost, cost, cost, cost, "USD", provider, None, period[0], period[1], _second(start), _second(end),
                "Usage", None, f"{model or 'unknown model'} {endpoint} call {seq} of CI agent run {run_id}",
                "Usage-Based", tokens, "Tokens", tokens, "Tokens", None, None, "Standard", company, company,
                company, company, company, service, "AI and Machine Learning", "Generative AI",
                run_id, resource_name, "CI agent run", repo, repo, model, endpoint, details, None, None, tags,
                run_id, seq, r[i_status], model, requested, endpoint, enforced,
            ])
        yield out


def _csv_field(text: str) -> str:
    """A CSV field as csv.writer writes it (QUOTE_MINIMAL, "\\n" line ends)."""
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


def write_focus_jsonl_pages(pages: Iterable[list[tuple[Any, ...]]], out: IO[str]) -> int:
    """:func:`write_focus_jsonl` of the ledger's export pages, byte for byte."""
    encode = json.JSONEncoder(ensure_ascii=False).encode
    count = 0
    for rows in focus_value_pages(pages):
        out.write("".join(encode(dict(zip(COLUMNS, row, strict=True))) + "\n" for row in rows))
        count += len(rows)
    return count


def _run_columns(r: tuple[Any, ...]) -> tuple[Any, ...]:
    """(ResourceName, SubAccount, Tags JSON without the call's context, x_Enforced) of a run."""
    org, team, repo, user, workflow, agent, environment, trigger, pr, branch, cohort, platform, rule, \
        status, stop_reason, outcome, enforced = r
    values = {
        "org": org, "team": team, "repo": repo, "user": user, "workflow": workflow, "agent": agent,
        "environment": environment, "trigger": trigger, "branch": branch,
        "pr": str(pr) if pr is not None else None, "cohort": cohort, "platform": platform, "rule": rule,
        "run_status": status, "stop_reason": stop_reason, "outcome": outcome,
    }
    tags = {f"ci-guard/{k}": v for k, v in values.items() if v is not None}
    name = f"{repo}#{pr} ({agent or 'agent'})" if repo and pr is not None else repo
    return name, repo, _json(tags), "true" if enforced else "false"


def _context_tags_of(context: dict[str, Any] | None, saved_micros: int | None) -> dict[str, str]:
    if not context:
        return {}
    tags = {"ci-guard/context_saved_usd": _money(saved_micros),
            "ci-guard/context_changes": ",".join(k for k in ("breakpoints_added", "pruned_tokens", "cleared_tokens",
                                                             "cleared_thinking_turns", "route", "thinking_budget_from",
                                                             "reasoning_effort_from") if context.get(k))}
    if context.get("method"):
        tags["ci-guard/context_saving_method"] = str(context["method"])
    return tags


def _money(micros: int | None) -> str:
    """Integer micro-dollars as a 6-decimal string, as ``f"{Decimal(micros) / 10**6:.6f}"``."""
    m = micros or 0
    if m < 0:
        return f"{Decimal(m) / 1_000_000:.6f}"
    return f"{m // 1_000_000}.{m % 1_000_000:06d}"


def _second(at: datetime) -> str:
    """:func:`format_time` of an aware UTC datetime with no microseconds, without strftime."""
    return at.isoformat()[:19] + "Z"
