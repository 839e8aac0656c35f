"""`ci-guard import` as a command: output, summary file, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ENV = {**os.environ, "GITHUB_ACTIONS": "", "GITLAB_CI": ""}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ci-guard", "import", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=60)


def test_import_prints_the_run_and_writes_a_summary(tmp_path: Path) -> None:
    (tmp_path / "u.csv").write_text("model,input_tokens,output_tokens\nclaude-sonnet-4-5,1000,100\n")
    proc = _run("--format", "csv", "u.csv", "--ledger", f"sqlite:///{tmp_path}/l.db", "--repo", "acme/app",
                "--pr", "3", "--summary", "s.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(not enforced)" in proc.stdout and "$0.0045" in proc.stdout  # 1000 x 3 + 100 x 15 per million
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["enforced"] is False and summary["cost_usd"] == "0.004500"
    assert summary["decision"]["context"]["pr"] == 3


def test_bad_file_exits_2_with_a_located_message(tmp_path: Path) -> None:
    (tmp_path / "u.csv").write_text("model,input_tokens,output_tokens\nm,ten,1\n")
    proc = _run("--format", "csv", "u.csv", "--ledger", f"sqlite:///{tmp_path}/l.db", cwd=tmp_path)
    assert proc.returncode == 2
    assert "u.csv:2:" in proc.stderr and "Traceback" not in proc.stderr


def test_unpriced_usage_exits_2_and_records_nothing(tmp_path: Path) -> None:
    (tmp_path / "u.csv").write_text("model,input_tokens,output_tokens\nmystery-model,10,1\n")
    proc = _run("--format", "csv", "u.csv", "--ledger", f"sqlite:///{tmp_path}/l.db", cwd=tmp_path)
    assert proc.returncode == 2 and "--price-as" in proc.stderr
    runs = subprocess.run(["ci-guard", "ledger", "runs", "--ledger", f"sqlite:///{tmp_path}/l.db", "--format",
                           "json"], env=ENV, capture_output=True, text=True, timeout=60)
    assert json.loads(runs.stdout or "[]") == []
