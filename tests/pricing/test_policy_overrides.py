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
