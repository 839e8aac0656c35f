"""Issue 12 #12 and #17: agent- and author-chosen strings in a cost comment.

A model name that is a lone surrogate must not make `ci-guard comment` crash (exit 70); bidi
overrides and zero-width characters must not survive escaping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ci_guard.report.escape import code, md
from tests.report import builders as b

CI_GUARD = str(Path(sys.executable).parent / "ci-guard")


def test_a_lone_surrogate_model_name_still_renders_the_comment(tmp_path: Path) -> None:
    data = b.normal().to_json()
    data["calls"][0]["model"] = "\udfff"  # the agent asked for "\udfff"; json.dumps writes the escape
    data["calls"][0]["model_requested"] = "claude\ud800"
    data["decision"]["context"]["head_branch"] = "feat\udcff"
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    proc = subprocess.run([CI_GUARD, "comment", "--summary", str(path), "--no-ledger",
                           "--dry-run", "--output", str(tmp_path / "comment.md")],
                          capture_output=True, text=True, env={**os.environ, "CI": ""}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "comment.md").read_text(encoding="utf-8")
    assert "feat\ufffd" in text and "\ufffd" in proc.stdout


def test_a_non_utf8_summary_is_invalid_input_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_bytes(b'{"run_id": "\xff"}')
    proc = subprocess.run([CI_GUARD, "comment", "--summary", str(path), "--no-ledger",
                           "--dry-run"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "UTF-8" in proc.stderr


def test_bidi_overrides_and_zero_width_characters_are_dropped() -> None:
    hostile = "fix\u202egpj.exe \u2066x\u2069 @\u200badmin a\u200cb\ufeff\u2060c \u200e\u200f\u061c"
    for out in (md(hostile), code(hostile)):
        for ch in "\u202e\u2066\u2069\u200b\u200c\ufeff\u2060\u200e\u200f\u061c":
            assert ch not in out
    # the zero-width space no longer hides the mention from the escaper: it is broken with our ZWJ
    assert "@\u200dadmin" in md("@\u200badmin")
