"""Price overrides written in a policy file load through the policy model into the catalog."""

from decimal import Decimal

from ci_guard.policy.decide import load_policy
from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost
from ci_guard.pricing.usage import Usage

POLICY = """version: 1
pricing:
  overrides:
    acme-sonnet: {same_as: claude-sonnet-4-5, discount_pct: 10}
    acme-coder:
      provider: internal
      input: 0.40
      output: 1.20
      cache_write: 0.50
      cache_read: 0.04
      tiers: [{above_input_tokens: 100000, input: 0.80, output: 2.40}]
      note: self-hosted
rules:
  - {name: all, decision: allow}
"""


def test_every_documented_override_key_loads_from_a_policy(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    catalog = load_catalog(load_policy(path).pricing, tmp_path)
    coder = catalog.lookup("acme-coder")
    # 200k input is above the 100k tier: every token at the tier's rates
    assert cost(Usage(input_tokens=200_000, output_tokens=1_000), coder).total_usd == Decimal("0.162400")
    # below the tier, cache writes at the one `cache_write` rate for both TTLs
    small = Usage(input_tokens=1_000, cache_write_tokens=2_000, cache_write_1h_tokens=1_000, cache_read_tokens=10_000)
    assert cost(small, coder).total_usd == Decimal("0.001800")  # 0.0004 + 0.001 + 0.0004
    sonnet = catalog.lookup("acme-sonnet")
    # same_as Sonnet 4.5 ($3 in), 10% off
    assert cost(Usage(input_tokens=100_000), sonnet).total_usd == Decimal("0.270000")


def test_priority_geography_and_service_tier_overrides_load_from_a_policy(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text("""version: 1
pricing:
  overrides:
    claude-opus-5: {service_tiers: {fast: 3}, inference_geo: {us: 1.2}}
    gpt-5.5: {priority: {input: 10, output: 60, cache_read: 1}}
rules:
  - {name: all, decision: allow}
""")
    catalog = load_catalog(load_policy(path).pricing, tmp_path)
    usage = Usage(input_tokens=1_000, output_tokens=100)
    # Opus 5 ($5 / $25): (5,000 + 2,500) / 1M = $0.0075; fast x3, US x1.2
    assert cost(usage, catalog.lookup("claude-opus-5").for_call("fast", "us")).total_usd == Decimal("0.027")
    # gpt-5.5 priority overridden to $10 / $60: 10,000 + 6,000 per million
    assert cost(usage, catalog.lookup("gpt-5.5").for_call("priority")).total_usd == Decimal("0.016")
