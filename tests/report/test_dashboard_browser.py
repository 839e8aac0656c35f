"""The pilot month's dashboard rendered by a real browser (Debian's `chromium`, headless).

No console errors (the page carries a Content-Security-Policy of ``default-src 'none'``, so any
script, image or fetch would be blocked *and* reported on the console), and a screenshot is taken.
A page with an injected script and image is the control: the same check must catch it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import require

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
POLICY = """version: 1
rules:
  - name: all
    decision: allow
budgets:
  - {name: team-monthly, scope: team, period: month, limit_usd: 400, alert_at: ["50%", "80%"]}
  - {name: repo-daily, scope: repo, period: day, limit_usd: 10}
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    require(found is not None, "chromium is not installed (apt-get install -y chromium)")
    return found  # type: ignore[return-value]


def render(browser: str, page: Path, shot: Path) -> list[str]:
    """Screenshot ``page``; return the browser's console messages."""
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
         "--log-level=0", "--window-size=1280,4200", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def pilot_dashboard(tmp_path_factory) -> Path:
    from ci_guard.demo.pilot import write_pilot
    from ci_guard.ledger import open_ledger

    root = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{root}/pilot.db"
    store = open_ledger(url)
    try:
        write_pilot(store, MARCH, days=31, calls=20_000, seed=3)
    finally:
        store.close()
    (root / "policy.yml").write_text(POLICY)
    page = root / "dashboard.html"
    done = subprocess.run(["ci-guard", "dashboard", "--ledger", url, "--month", "2026-03", "--policy",
                           str(root / "policy.yml"), "-o", str(page)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return page


def test_pilot_month_renders_without_console_errors_and_screenshots(pilot_dashboard, tmp_path):
    browser = chromium()
    shot = tmp_path / "dashboard.png"
    assert render(browser, pilot_dashboard, shot) == []
    width, height = png_size(shot)
    assert (width, height) == (1280, 4200) and shot.stat().st_size > 100_000  # a full page, not a blank one


def test_the_console_check_catches_a_script_or_a_fetch(pilot_dashboard, tmp_path):
    browser = chromium()
    bad = tmp_path / "bad.html"
    bad.write_text(pilot_dashboard.read_text().replace(
        "<body>", '<body><img src="http://127.0.0.1:9/pixel.png"><script>console.error("x")</script>', 1))
    messages = render(browser, bad, tmp_path / "bad.png")
    assert any("Content Security Policy" in m for m in messages) and len(messages) >= 2
