"""Prices calls for the proxy, from the catalog with the policy's `pricing:` section applied."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from ci_guard.errors import PricingError
from ci_guard.pricing.catalog import Catalog, PriceResolution, load_catalog
from ci_guard.pricing.cost import cost, max_output_for_budget, worst_case_cost
from ci_guard.pricing.rates import ModelPrice
from ci_guard.pricing.usage import Usage

# When a request names no output cap, its worst case assumes this many output tokens. A request
# whose assumed worst case does not fit the remaining cost cap gets an explicit cap that fits.
ASSUMED_MAX_OUTPUT = 32_000


class CatalogPricer:
    def __init__(self, catalog: Catalog, default_model: str | None = None) -> None:
        self.catalog = catalog
        self.default_model = default_model
        self._cache: dict[str | None, PriceResolution] = {}

    @classmethod
    def from_policy(cls, policy: Any, policy_path: str | None, decision: Any = None) -> CatalogPricer:
        base = Path(policy_path).parent if policy_path else None
        catalog = load_catalog(getattr(policy, "pricing", None), base)
        return cls(catalog, getattr(decision, "model", None))

    def provider_of(self, model: str | None) -> str | None:
        """The provider whose API serves ``model`` (from the catalog), or None when unknown."""
        found = self.catalog.find(model) if model else None
        return found[0].provider if found else None

    def _resolve(self, model: str | None) -> PriceResolution:
        if model not in self._cache:
            self._cache[model] = self.catalog.resolve(model)
        return self._cache[model]

    def price(self, model: str | None, service_tier: str | None = None,
              inference_geo: str | None = None) -> ModelPrice | None:
        """The price of ``model`` (on ``service_tier``, in ``inference_geo``); a name the catalog does
        not know (a served snapshot, say) falls back to the decided model's price, never to zero."""
        for name in (model, self.default_model):
            try:
                price = self._resolve(name).price
            except PricingError:
                price = None
            if price is not None:
                return price.for_call(service_tier, inference_geo)
        return None

    def not_dearer(self, current: str | None, target: str) -> bool:
        """True when ``target`` is priced and costs no more per input and output token than ``current``
        (a per-call route may make a call cheaper, never dearer: escalation is decided per run)."""
        prices = []
        for name in (current, target):
            try:
                price = self._resolve(name).price if name else None
            except PricingError:
                price = None
            if price is None:
                return False
            prices.append(price.rates)
        now, then = prices
        return then.input <= now.input and then.output <= now.output

    def refusal(self, model: str | None) -> str | None:
        """Why calls to ``model`` must be refused (no price and the policy says deny or error), or None."""
        try:
            res = self._resolve(model)
        except PricingError as exc:  # on_unknown_model: error -> refuse the call, do not crash the request
            return f"ci-guard: {exc.render()}"
        return f"ci-guard: {res.warning}" if res.denied else None

    def cost(self, model: str | None, usage: Usage, *alternatives: str | None,
             service_tier: str | None = None, inference_geo: str | None = None) -> Decimal | None:
        """The exact cost of ``usage`` on the first of ``model`` and ``alternatives`` that has a price.

        The served model is tried first (what was billed), then the requested and the decided one.
        None when none of them is priced: the caller charges the call's held worst case instead,
        because an unpriced call is never free.
        """
        for name in (model, *alternatives):
            price = self.price(name, service_tier, inference_geo)
            if price is not None:
                return cost(usage, price).total_usd
        return None

    def fees(self, provider: str, web_searches: int, model: str | None = None, preview: bool = False) -> Decimal:
        """What a call's billed server-side web searches cost on top of its tokens: the model's own
        fee where it has one (OpenAI's web_search_preview on gpt-4o / gpt-4.1: $25 per 1,000), else
        the provider's."""
        if web_searches <= 0:
            return Decimal(0)
        return self.catalog.web_search_fee(provider, self.price(model), preview) * web_searches

    def searches_every_call(self, model: str | None) -> bool:
        """True for a search model that is billed one web search on every answered call."""
        price = self.price(model)
        return price is not None and price.searches_every_call

    def worst_case(self, model: str | None, input_tokens: int, max_output_tokens: int | None,
                   service_tier: str | None = None, inference_geo: str | None = None,
                   long_writes: bool = True) -> Decimal | None:
        price = self.price(model, service_tier, inference_geo)
        if price is None:
            return None
        return worst_case_cost(price, input_tokens, max_output_tokens or ASSUMED_MAX_OUTPUT, long_writes)

    def max_output_within(self, model: str | None, input_tokens: int, budget_usd: Decimal,
                          service_tier: str | None = None, inference_geo: str | None = None,
                          long_writes: bool = True) -> int | None:
        price = self.price(model, service_tier, inference_geo)
        if price is None:
            return None
        return max_output_for_budget(price, input_tokens, budget_usd, long_writes)
