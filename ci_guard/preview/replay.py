"""Replay recorded runs against a policy: what would it have decided, and what would it have cost?

One :class:`Replayer` per policy walks the runs of a period in the order they started:

1. **Decide** each run again with the policy engine (:func:`ci_guard.policy.decide.evaluate`). The
   context is the one stored with the run (``RunRecord.inputs``, schema version 9); older runs get
   one rebuilt from the ledger's columns and count as *approximated* (labels, paths, diff size,
   draft and fork were not recorded). Budget statuses are those the live decision read (stored with
   the run) plus how much the replay has changed each bucket's spend so far; a budget the live
   decision did not read starts from the recorded spend of the runs before it in the same bucket.
2. **Reserve** as `ci-guard run` does (:mod:`ci_guard.meter.lifecycle`): the worst case
   (``max_cost_usd``) must fit what is left of every budget, or is clamped to it under
   ``on_budget_exceeded: clamp``; what does not fit is a deny by ``budget:<name>[<key>]``.
3. **Spend**: a run decided exactly as it was recorded (same decision, model and limits) costs what
   it cost. Otherwise its recorded calls are held, in order, against the new limits with the rules of
   :class:`ci_guard.meter.caps.CapGuard` (``max_turns``, ``max_context_tokens``,
   ``max_identical_retries`` on request fingerprints and on repeated upstream errors,
   ``max_tool_calls``, ``max_cost_usd``); what comes after the stop is the saving. Where the model
   changes, recorded tokens are re-priced at the new model's price (an *estimate*: another model
   would have produced other tokens). A run the history stopped by a cap the policy no longer
   imposes is marked *continued*: what it would have spent after is unknown, so it counts what it
   did spend. A run the history refused and the policy now allows never ran: its spend is unknown
   and reported as its worst case (``max_cost_usd``) beside the figures, never inside them.

What is not replayed: ``max_runtime`` (call timings are not replayed), concurrency between runs
(reservations of other runs in flight), and a model's different behaviour.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ci_guard.context.model import RunContext
from ci_guard.ledger.budgets import budget_spec, empty_status
from ci_guard.ledger.records import RunRecord
from ci_guard.ledger.sqlstore import MICROS, REPLAY_CALL_COLS, TOKEN_COLS, from_micros, to_micros
from ci_guard.policy.decision import BudgetStatus, Decision, Limits
from ci_guard.policy.inputs import budgets_from_inputs, context_from_inputs, status_key
from ci_guard.policy.models import Policy
from ci_guard.pricing.catalog import Catalog
from ci_guard.pricing.cost import cost
from ci_guard.pricing.usage import Usage

_NO_LIMIT = 1 << 62  # stands for an absent limit in the replay loop
# positions in a REPLAY_CALL_COLS row
_C = {name: i for i, name in enumerate(REPLAY_CALL_COLS)}
_SEQ, _TURN, _STATUS, _COST = _C["seq"], _C["is_turn"], _C["status"], _C["cost_micros"]
_CTX, _FP, _HTTP, _ERR = _C["context_tokens"], _C["fingerprint"], _C["http_status"], _C["error"]
_TOOLS = _C["tool_calls"]
_MODEL, _PROVIDER, _TIER, _SEARCHES = _C["model_served"], _C["provider"], _C["service_tier"], _C["web_searches"]
_TOKENS = _C[TOKEN_COLS[0]]

BucketKey = tuple[str, str | None, str | None]  # (budget, scope key, period start ISO)
Snapshot = dict[BucketKey, tuple[int, int]]  # bucket -> (spent, reserved) micros the live decision read


def snapshot_micros(run: RunRecord) -> Snapshot:
    """The budget statuses stored with ``run``, in micro-dollars (empty for older runs)."""
    if not run.inputs:
        return {}
    read = budgets_from_inputs(run.inputs)
    return {key: (to_micros(spent), to_micros(reserved)) for key, (spent, reserved) in read.items()}


@dataclass
class Outcome:
    """What one run did (recorded) or would have done (replayed) under one policy."""

    decision: str  # allow | deny | skip
    rule: str | None
    model: str | None
    cost_micros: int  # known spend
    calls: int  # calls made (refused calls not counted)
    stop_reason: str | None = None  # the cap that stopped it
    stopped_after: int | None = None  # calls made before the replayed stop
    continued: bool = False  # a recorded stop this policy does not make: the rest is unknown
    unknown_micros: int = 0  # never ran in history: its worst case (max_cost_usd), not in cost_micros
    repriced: bool = False  # cost re-priced at another model's price (estimate)
    limits: dict[str, Any] | None = None

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


def made_calls(run: RunRecord, calls: Sequence[tuple[Any, ...]] | None) -> int:
    """Calls the run made (refusals left out); its turns when its calls were not read."""
    if calls is None:
        return run.turns
    return sum(1 for c in calls if c[_STATUS] != "refused")


def recorded_outcome(run: RunRecord, calls: Sequence[tuple[Any, ...]] | None) -> Outcome:
    """What the history says the run did."""
    return Outcome(run.decision, run.rule, run.model, to_micros(run.cost_usd), made_calls(run, calls),
                   run.stop_reason, limits=run.limits)


def run_context(run: RunRecord) -> tuple[RunContext, bool]:
    """The context to decide ``run`` with, and whether it is exactly what the live decision saw."""
    ctx = context_from_inputs(run.inputs) if run.inputs else None
    if ctx is not None:
        return ctx, not (run.inputs or {}).get("truncated")
    platform = run.platform if run.platform in ("github", "gitlab", "local") else "local"
    return RunContext(platform=platform, repo=run.repo, org=run.org, pr=run.pr, trigger=run.trigger,  # type: ignore[arg-type]
                      head_branch=run.branch, actor=run.user, team=run.team, agent=run.agent,
                      workflow=run.workflow, environment=run.environment, cohort=run.cohort), False


class _ReplaySource:
    """The budget statuses a replayed decision reads (see the module docstring)."""

    def __init__(self, replayer: Replayer) -> None:
        self.r = replayer
        self.snapshot: Snapshot = {}

    def budget_status(self, budgets: Sequence[Any], ctx: RunContext, now: datetime) -> list[BudgetStatus]:
        out = []
        for spec in map(budget_spec, budgets):
            status = empty_status(spec, ctx.scope_key(spec.scope), now)
            if status.scope_key is not None:
                spent, reserved = self.r.spent(status_key(status), self.snapshot)
                status.spent_usd, status.reserved_usd = from_micros(spent), from_micros(reserved)
            out.append(status)
        return out


@dataclass(frozen=True)
class Decided:
    """The parts of a Decision a replay uses (the same for every run with the same deciding facts)."""

    decision: str
    rule: str | None
    model: str | None
    limits: Limits
    limits_json: dict[str, Any]
    on_cost_cap: str
    on_budget_exceeded: str

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


def _decided(d: Decision) -> Decided:
    return Decided(d.decision, d.rule, d.model, d.limits, d.as_json()["limits"], d.enforcement.on_cost_cap,
                   d.enforcement.on_budget_exceeded)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class Replayer:
    """Replays one policy over runs in start order; see the module docstring.

    Speed: a month can hold tens of thousands of runs. When no rule reads ``budget_remaining``, a
    decision depends only on the context fields the rules read (plus labels, team, PR and trigger),
    so it is computed once per distinct combination of them and reused; budget buckets reuse the
    period bounds of the previous run while it is inside them.
    """

    def __init__(self, policy: Policy, catalog: Catalog) -> None:
        from ci_guard.policy.engine import compiled

        cp = compiled(policy)
        self.policy = policy
        self.catalog = catalog
        self.recorded_spend: Counter[BucketKey] = Counter()  # recorded micros per bucket so far
        self.delta: Counter[BucketKey] = Counter()  # replayed minus recorded micros per bucket so far
        self.bucket_spend: Counter[BucketKey] = Counter()  # replayed micros per bucket (the projection)
        self.bucket_limits: dict[BucketKey, tuple[str, Decimal, list[Decimal]]] = {}
        self._alerts = {b.name: b.alert_thresholds_usd() for b in policy.budgets}
        self._specs = [(spec, to_micros(spec.limit_usd)) for spec in map(budget_spec, policy.budgets)]
        self._bounds: dict[str, tuple[datetime, datetime, str]] = {}
        self._source = _ReplaySource(self)
        self._prices: dict[tuple[str, str | None], Any] = {}
        self._same_price: dict[tuple[str | None, str | None], bool] = {}
        self._cacheable = not cp.budget_refs
        self._fields = sorted(f for f in cp.refs if f not in ("all", "any", "not"))
        self._cache: dict[tuple[Any, ...], Decided] = {}
        self._by_run: dict[str, Decided] = {}  # decided by needs_calls, used by replay
        self.reprices = False  # some run is decided onto another model: calls need their tokens

    # -- the walk ------------------------------------------------------------------------------
    def before_window(self, run: RunRecord, ctx: RunContext) -> None:
        """A run of the same budget periods that started before the window: counted as recorded."""
        micros = to_micros(run.cost_usd)
        for key, _ in self._keys(self._resolved(ctx), run.started_at):
            self.recorded_spend[key] += micros
            self.bucket_spend[key] += micros

    def needs_calls(self, run: RunRecord, ctx: RunContext) -> bool:
        """Whether replaying ``run`` will (very likely) read its calls: decided otherwise than recorded.

        Budgets are left out here (they can only lower the cost cap); a run that turns out to need
        its calls anyway has them read on its own.
        """
        if run.decision != "allow":
            return False
        if not self._cacheable:
            self.reprices = True
            return True
        d = self._by_run[run.run_id] = self.decide(ctx, run.started_at, {})
        if d.allowed and d.model != run.model:
            self.reprices = True
        return d.allowed and not (d.model == run.model and _same_limits(d.limits_json, run.limits))

    def decide(self, ctx: RunContext, now: datetime, snapshot: Snapshot) -> Decided:
        from ci_guard.policy.compiled import Facts
        from ci_guard.policy.decide import evaluate
        from ci_guard.policy.engine import settle_no_pr

        if not self._cacheable:
            self._source.snapshot = snapshot
            return _decided(evaluate(self.policy, ctx, budget_source=self._source, now=now))
        settled = settle_no_pr(self._resolved(ctx))
        facts = Facts(settled, {})
        key = (settled.team, settled.pr is None, settled.trigger, settled.draft, settled.fork, tuple(settled.labels),
               tuple(_freeze(settled.changed_paths if f in ("paths", "paths_only") else facts.value(f))
                     for f in self._fields))
        found = self._cache.get(key)
        if found is None:
            from ci_guard.policy.engine import decide

            found = self._cache[key] = _decided(decide(self.policy, ctx, [], now))
        return found

    def replay(self, run: RunRecord, ctx: RunContext, snapshot: Snapshot, calls: Sequence[tuple[Any, ...]] | None,
               fetch: Callable[[str], Sequence[tuple[Any, ...]]]) -> Outcome:
        """Replay one run; ``calls`` None means not read yet (``fetch`` reads them when needed).

        ``snapshot`` is :func:`snapshot_micros` of the run (read once for both sides).
        """
        decided = self._by_run.pop(run.run_id, None) if self._cacheable else None
        if decided is None:
            decided = self.decide(ctx, run.started_at, snapshot)
        keys = self._keys(self._resolved(ctx), run.started_at)
        outcome = self._outcome(run, decided, keys, snapshot, calls, fetch)
        recorded = to_micros(run.cost_usd)
        for key, _ in keys:
            self.recorded_spend[key] += recorded
            self.delta[key] += outcome.cost_micros - recorded
            self.bucket_spend[key] += outcome.cost_micros
        return outcome

    def spent(self, key: BucketKey, snapshot: Snapshot) -> tuple[int, int]:
        """(spent, reserved) micros of a bucket as this replay's decision of a run sees it."""
        if key in snapshot:
            base, held = snapshot[key]
        else:
            base, held = self.recorded_spend.get(key, 0), 0
        return base + self.delta.get(key, 0), held

    def _resolved(self, ctx: RunContext) -> RunContext:
        from ci_guard.policy.engine import resolve_team

        return resolve_team(self.policy, ctx)

    def _keys(self, ctx: RunContext, at: datetime) -> list[tuple[BucketKey, int]]:
        """The run's budget buckets and each one's limit in micros."""
        from ci_guard.ledger.periods import period_bounds

        out = []
        for spec, limit_micros in self._specs:
            scope_key = ctx.scope_key(spec.scope)
            if scope_key is None:
                continue
            bounds = self._bounds.get(spec.name)
            if bounds is None or not bounds[0] <= at < bounds[1]:
                start, end = period_bounds(spec.period, spec.timezone, at)
                bounds = self._bounds[spec.name] = (start, end, start.isoformat())
            key = (spec.name, scope_key, bounds[2])
            if key not in self.bucket_limits:
                self.bucket_limits[key] = (bounds[1].isoformat(), spec.limit_usd, self._alerts.get(spec.name, []))
            out.append((key, limit_micros))
        return out

    # -- one run -------------------------------------------------------------------------------
    def _outcome(self, run: RunRecord, d: Decided, keys: list[tuple[BucketKey, int]],
                 snapshot: Snapshot, calls: Sequence[tuple[Any, ...]] | None,
                 fetch: Callable[[str], Sequence[tuple[Any, ...]]]) -> Outcome:
        if not d.allowed:
            return Outcome(d.decision, d.rule, d.model, 0, 0)
        cap, refusal = self._reserve(d, keys, snapshot)
        if refusal is not None:
            return Outcome("deny", refusal, d.model, 0, 0)
        limits = dict(d.limits_json)
        if cap is not None:
            limits["max_cost_usd"] = str(from_micros(cap))
        if run.decision != "allow":  # never ran: nothing recorded to replay
            worst = cap if cap is not None else 0
            return Outcome("allow", d.rule, d.model, 0, 0, unknown_micros=worst, limits=limits)
        if d.model == run.model and _same_limits(limits, run.limits):
            return Outcome("allow", d.rule, d.model, to_micros(run.cost_usd), made_calls(run, calls),
                           run.stop_reason, limits=limits)
        if calls is None:
            calls = fetch(run.run_id)
        reprice = None
        if d.model and run.model and d.model != run.model:
            reprice = self._repricer(run.model, d.model)
        out = replay_calls(calls, d, cap, reprice, run.stop_reason)
        out.rule, out.model, out.limits = d.rule, d.model, limits
        if out.stop_reason is None and run.stop_reason is not None:
            out.continued, out.stop_reason = True, None
        return out

    def _reserve(self, d: Decided, keys: list[tuple[BucketKey, int]],
                 snapshot: Snapshot) -> tuple[int | None, str | None]:
        """(cost cap in micros, deny rule): the reservation `ci-guard run` makes (meter/lifecycle.py).

        The cap is the smaller of ``max_cost_usd`` and what the tightest budget has left; without a
        ``max_cost_usd`` it is what is left. A budget with nothing left denies, and so does one that
        cannot hold ``max_cost_usd`` unless ``on_budget_exceeded: clamp``.
        """
        cap = to_micros(d.limits.max_cost_usd) if d.limits.max_cost_usd is not None else None
        if not keys:
            return cap, None
        rooms = []
        for key, limit in keys:
            spent, reserved = self.spent(key, snapshot)
            rooms.append((limit - spent - reserved, key))
        room, tight = min(rooms)
        amount = cap if cap is not None else max(limit for _, limit in keys)
        if amount <= room:
            return amount, None
        clamp = cap is None or d.on_budget_exceeded == "clamp"
        if not clamp or room <= 0:
            return None, f"budget:{tight[0]}[{tight[1]}]"
        return room, None

    def _repricer(self, old_model: str, new_model: str) -> Callable[[tuple[Any, ...]], int] | None:
        """Re-prices a call served by ``old_model`` at ``new_model``; other calls keep their cost."""
        new = self.catalog.lookup(new_model)
        if new is None:
            return None

        def price(call: tuple[Any, ...]) -> int:
            served = call[_MODEL]
            same = self._same_price.get((served, old_model))
            if same is None:
                mine, old = self.catalog.lookup(served), self.catalog.lookup(old_model)
                same = served is None or (mine is not None and old is not None and mine.model == old.model)
                self._same_price[(served, old_model)] = same
            if not same:
                return int(call[_COST])
            tier = call[_TIER]
            rate = self._prices.get((new_model, tier))
            if rate is None:
                rate = self._prices[(new_model, tier)] = _IntegerPrice(new.for_call(tier, None))
            tokens = call[_TOKENS:_TOKENS + len(TOKEN_COLS)]
            micros = rate.micros(*tokens)
            if micros is None:  # outside what the integer path is exact for: the catalog's own arithmetic
                usage = Usage(*(int(v) for v in tokens))
                searches = int(call[_SEARCHES] or 0)
                fees = self.catalog.web_search_usd.get(call[_PROVIDER], Decimal(0)) * searches
                return to_micros(cost(usage, rate.price).total_usd + fees)
            searches = int(call[_SEARCHES] or 0)
            if searches:  # the call's cost is whole micros, so the fee rounds on its own
                micros += to_micros(self.catalog.web_search_usd.get(call[_PROVIDER], Decimal(0)) * searches)
            return micros

        return price

    def buckets(self) -> list[dict[str, Any]]:
        out = []
        for key, (end, limit, alerts) in sorted(self.bucket_limits.items(), key=lambda kv: kv[0]):
            out.append({"budget": key[0], "scope_key": key[1], "period_start": key[2], "period_end": end,
                        "limit_usd": limit, "spent_micros": self.bucket_spend.get(key, 0), "alerts": alerts})
        return out


class _IntegerPrice:
    """One model's price for one service tier as integer micro-dollar arithmetic.

    Re-pricing runs once per recorded call of a month (~20 µs a call through Decimal). A rate in USD
    per million tokens is micro-dollars per token; with every rate of a tier over one common
    denominator, a call's cost is an integer sum, rounded half up to whole micros exactly as
    :func:`ci_guard.pricing.cost.cost` quantizes ``exact_usd`` (same tier choice, same parts).
    """

    def __init__(self, price: Any) -> None:
        self.price = price
        self.tiers = [(t.above_input_tokens, self._scaled(t.rates)) for t in price.tiers]
        self.base = self._scaled(price.rates)

    @staticmethod
    def _scaled(rates: Any) -> tuple[int, tuple[int, ...]] | None:
        from fractions import Fraction
        from math import lcm

        try:
            parts = [Fraction(getattr(rates, f)) for f in ("input", "cache_write_5m", "cache_write_1h",
                                                           "cache_read", "output")]
        except (ValueError, OverflowError):  # NaN or infinite rate: let the Decimal path decide
            return None
        if any(p < 0 for p in parts):
            return None
        # a power of ten, so the integer total has the digits of the Decimal sum (see micros)
        common, denominator = lcm(*(p.denominator for p in parts)), 1
        for _ in range(40):
            if denominator % common == 0:
                return denominator, tuple(int(p * denominator) for p in parts)
            denominator *= 10
        return None

    def micros(self, input_tokens: Any, cache_write: Any, cache_write_1h: Any, cache_read: Any, output: Any,
               _reasoning: Any = 0) -> int | None:
        """The call's cost in whole micro-dollars, or None where only the Decimal path is exact."""
        fresh, write, write_1h, read, out = (int(input_tokens), int(cache_write), int(cache_write_1h),
                                             int(cache_read), int(output))
        write_5m = write - write_1h
        if fresh < 0 or write_5m < 0 or write_1h < 0 or read < 0 or out < 0:
            return None
        context = fresh + write + read
        scaled = self.base
        for above, tier_scaled in self.tiers:  # sorted ascending: the highest threshold exceeded wins
            if context > above:
                scaled = tier_scaled
        if scaled is None:
            return None
        denominator, (r_in, r_w5, r_w1, r_read, r_out) = scaled
        total = fresh * r_in + write_5m * r_w5 + write_1h * r_w1 + read * r_read + out * r_out
        if total >= 10 ** 27:  # past Decimal's 28 digits the catalog's arithmetic rounds: use it
            return None
        return (2 * total + denominator) // (2 * denominator)  # half up, like ROUND_HALF_UP on >= 0


def replay_calls(calls: Sequence[tuple[Any, ...]], decision: Decided, cap: int | None,
                 reprice: Callable[[tuple[Any, ...]], int] | None, recorded_stop: str | None = None) -> Outcome:
    """Hold recorded calls, in order, against the decision's limits (CapGuard's rules).

    ``recorded_stop`` is the cap that stopped the run in history: a replayed stop after its last
    call then still stands (the agent wanted to go on), while for a run that finished on its own it
    changes nothing.
    """
    lim = decision.limits
    clamp = decision.on_cost_cap == "clamp"
    # absent limits become unreachable ones: the loop runs once per recorded call of a month
    max_turns = _NO_LIMIT if lim.max_turns is None else lim.max_turns
    max_context = _NO_LIMIT if lim.max_context_tokens is None else lim.max_context_tokens
    max_retries = _NO_LIMIT if lim.max_identical_retries is None else lim.max_identical_retries
    max_tools = _NO_LIMIT if lim.max_tool_calls is None else lim.max_tool_calls
    max_cost = _NO_LIMIT if cap is None else cap
    turns = tools = spent = made = 0
    seen: dict[Any, int] = {}
    last_error: str | None = None
    same_errors = 0
    stop: str | None = None
    repriced = clamped = False
    for call in calls:
        status = call[_STATUS]
        if status == "refused":
            continue  # refused by ci-guard in history: never reached the provider
        turn = call[_TURN]
        if turn:
            if turns >= max_turns:
                stop = "max_turns"
                break
            if call[_CTX] > max_context:
                stop = "max_context"
                break
            fingerprint = call[_FP]
            if seen.get(fingerprint, 0) > max_retries:
                stop = "retry_storm"
                break
        if spent >= max_cost:
            stop = "max_cost"
            break
        price = call[_COST]
        if reprice is not None:
            new_price = reprice(call)
            repriced = repriced or new_price != price
            price = new_price
        if spent + price > max_cost:
            # CapGuard clamps the call's output so its worst case fits (or refuses it): count what is left
            if not clamp:
                stop = "max_cost"
                break
            price, clamped = max_cost - spent, True
        if turn:
            seen[fingerprint] = seen.get(fingerprint, 0) + 1
            turns += 1
        spent += price
        made += 1
        tools += call[_TOOLS] or 0
        if spent >= max_cost:
            stop = "max_cost"
            break
        if tools > max_tools:
            stop = "max_tool_calls"
            break
        if status == "error":
            signature = f"{call[_HTTP]} {call[_ERR] or ''}"[:200]
            if signature == last_error:
                same_errors += 1
            else:
                last_error, same_errors = signature, 1
            if same_errors > max_retries:
                stop = "retry_storm"
                break
        elif last_error is not None:
            last_error, same_errors = None, 0
    total = sum(1 for c in calls if c[_STATUS] != "refused")
    if made == total and not clamped and recorded_stop is None:
        stop = None  # a cap reached by the last call changes nothing: the agent had finished anyway
    return Outcome("allow", None, None, spent, made, stop, made if stop else None, repriced=repriced)


def _same_limits(a: dict[str, Any], b: dict[str, Any] | None) -> bool:
    if not b:
        return False
    try:
        return _same_items(tuple(sorted(a.items())), tuple(sorted(b.items())))
    except TypeError:  # an unhashable value in a stored limits object: compare it the slow way
        return _compare(a, b)


@lru_cache(maxsize=4096)
def _same_items(a: tuple[tuple[str, Any], ...], b: tuple[tuple[str, Any], ...]) -> bool:
    return _compare(dict(a), dict(b))


def _compare(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(_norm(a.get(k)) == _norm(b.get(k)) for k in set(a) | set(b))


def _norm(value: Any) -> Any:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return value


__all__ = ["MICROS", "Outcome", "Replayer", "recorded_outcome", "replay_calls", "run_context"]
