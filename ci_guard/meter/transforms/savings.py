"""What a call would have cost as the agent sent it, next to what it cost as it was served.

The counterfactual usage puts back what the proxy took out: tokens pruned (estimated) and tokens
cleared (as the provider reported, or as the proxy estimated), and -- when the proxy added the
cache breakpoints -- bills the whole input as fresh, because the agent's request asked for no
caching. Tokens taken out of a request that was cached anyway (the agent's own breakpoints, or
OpenAI's automatic caching) are put back as cache reads: the smallest saving they can stand for.
A routed call is priced on the model that was asked for, with the same token counts. A clamped
thinking budget saves an unknown amount and is not counted.

``method`` says how sure the figure is: ``provider-reported`` when every token count in it came
from the provider, ``estimate`` when pruning, proxy-side clearing or routing is in it.
"""

from __future__ import annotations

from decimal import Decimal

from ci_guard.meter.transforms import Changes
from ci_guard.pricing.usage import Usage


def counterfactual(usage: Usage, changes: Changes, provider: str) -> Usage:
    removed = changes.pruned_tokens + changes.cleared_tokens
    if changes.breakpoints_added:
        return Usage(input_tokens=usage.context_tokens + removed, output_tokens=usage.output_tokens,
                     reasoning_tokens=usage.reasoning_tokens)
    if not removed:
        return usage
    cached = provider != "anthropic" or changes.agent_caches or usage.cache_read_tokens > 0
    return Usage(
        input_tokens=usage.input_tokens + (0 if cached else removed),
        cache_write_tokens=usage.cache_write_tokens, cache_write_1h_tokens=usage.cache_write_1h_tokens,
        cache_read_tokens=usage.cache_read_tokens + (removed if cached else 0),
        output_tokens=usage.output_tokens, reasoning_tokens=usage.reasoning_tokens,
    )


def method(changes: Changes) -> str:
    estimated = changes.pruned_tokens or changes.cleared_by == "proxy" or changes.route
    return "estimate" if estimated else "provider-reported"


def saved_usd(as_sent: Decimal | None, as_served: Decimal | None) -> Decimal | None:
    """May be negative (a first cache write costs 1.25x): reported as it is, never hidden."""
    if as_sent is None or as_served is None:
        return None
    return as_sent - as_served
