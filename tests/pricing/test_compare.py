"""The catalog compared with LiteLLM's map (a pinned copy of litellm 1.110.2's): no unexplained difference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import run_cli

PINNED = Path(__file__).parent.parent / "fixtures" / "litellm" / "model_prices_pinned.json"


def test_the_maintenance_script_finds_no_unexplained_difference_in_the_pinned_map():
    proc = subprocess.run([sys.executable, "-m", "ci_guard.pricing.compare", "--litellm", str(PINNED)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "unexplained differences: 0" in out
    # the known ones are listed with the source that decides
    assert "claude-sonnet-4-5  tiers: catalog >200000: 6/7.5/12/0.6/22.5 | litellm -" in out
    assert "Anthropic's pricing page" in out
    # current models LiteLLM prices and the catalog cannot are listed by name
    assert "gemini/gemini-3.6-flash" in out


def test_a_changed_price_is_reported_field_by_field_and_fails(tmp_path: Path, capsys):
    data = json.loads(PINNED.read_text())
    data["gpt-5.5"]["input_cost_per_token"] = 6e-06
    data["gpt-5.5"]["output_cost_per_token_priority"] = 9e-05
    del data["claude-opus-4-6"]["provider_specific_entry"]
    changed = tmp_path / "litellm.json"
    changed.write_text(json.dumps(data))
    code, out, _ = run_cli(capsys, "prices", "--compare-litellm", str(changed))
    assert code == 1
    assert "gpt-5.5  input: catalog 5 | litellm 6" in out
    assert "gpt-5.5  priority: catalog 12.5/1.25/75 | litellm 12.5/1.25/90" in out
    assert "claude-opus-4-6  inference_geo: catalog us x1.1 | litellm -" in out


def test_a_missing_map_is_a_clear_error(tmp_path: Path, capsys):
    code, _, err = run_cli(capsys, "prices", "--compare-litellm", str(tmp_path / "nope.json"))
    assert code == 2 and "cannot read LiteLLM map" in err and "Traceback" not in err


def test_a_changed_fast_multiplier_or_regional_uplift_is_reported(tmp_path: Path, capsys):
    data = json.loads(PINNED.read_text())
    data["claude-opus-5"]["provider_specific_entry"]["fast"] = 3
    del data["gpt-5.4-mini"]["regional_processing_uplift_multiplier_eu"]
    changed = tmp_path / "litellm.json"
    changed.write_text(json.dumps(data))
    code, out, _ = run_cli(capsys, "prices", "--compare-litellm", str(changed))
    assert code == 1
    assert "claude-opus-5  service_tiers: catalog fast x2 | litellm fast x3" in out
    # explained (LiteLLM lists eu and us only), but the changed value is still shown
    assert "gpt-5.4-mini  inference_geo: catalog au x1.1, eu x1.1, in x1.1, jp x1.1, us x1.1 | litellm us x1.1" in out
