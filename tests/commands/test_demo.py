"""The quick start's main command: `ci-guard demo` as a user runs it, in a fresh process."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path


def test_the_demo_rehearses_everything_and_its_figures_agree(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "GITLAB_", "CI_GUARD_", "ANTHROPIC_", "OPENAI_"))}
    proc = subprocess.run([sys.executable, "-m", "ci_guard", "demo", "--dir", str(tmp_path), "--quiet-calls"],
                          capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "All steps behaved as expected." in proc.stdout and "✗" not in proc.stdout
    # the files the demo says it left behind, and that they agree with each other
    assert (tmp_path / "ledger.db").is_file() and (tmp_path / "comment.md").is_file()
    with open(tmp_path / "focus.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    billed = sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0))
    html = (tmp_path / "dashboard.html").read_text(encoding="utf-8")
    assert len(rows) > 10 and f"${billed}" in proc.stdout
    assert "<script" not in html and f'<b id="calls">{len(rows)}</b>' in html
    _assert_readme_transcript_matches(proc.stdout)


def _assert_readme_transcript_matches(stdout: str) -> None:
    """The README's demo transcript is this output: every step and check line, word for word."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What the demo shows", 1)[1]
    transcript = section.split("```\n", 2)[1]

    def key_lines(text: str) -> list[str]:
        keep = re.compile(r"^(\d\. |  ✓ |All steps)")
        varying = re.compile(r"/\S+|valid-at=[^)]*|[\d,]+ characters")  # paths, times and runtimes vary
        return [varying.sub("…", line) for line in text.splitlines() if keep.match(line)]

    assert key_lines(transcript) == key_lines(stdout), "paste the output of `ci-guard demo` into README.md"
