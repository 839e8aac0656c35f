"""JUnit XML reports -> tests fixed by a test-repair run (`ci-guard outcome --junit-before/--junit-after`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ci_guard.cli import cli
from ci_guard.errors import InvalidInputError
from ci_guard.junit import fixed_tests, read_results

BEFORE = """<?xml version="1.0"?>
<testsuites><testsuite name="s">
  <testcase classname="t.calc" name="test_add"><failure message="1 != 2"/></testcase>
  <testcase classname="t.calc" name="test_sub"><error message="boom"/></testcase>
  <testcase classname="t.calc" name="test_mul"><failure/></testcase>
  <testcase classname="t.calc" name="test_div"><skipped/></testcase>
  <testcase classname="t.calc" name="test_ok"/>
</testsuite></testsuites>
"""
AFTER = """<testsuite name="s">
  <testcase classname="t.calc" name="test_add"/>
  <testcase classname="t.calc" name="test_sub"/>
  <testcase classname="t.calc" name="test_mul"><failure/></testcase>
  <testcase classname="t.calc" name="test_div"/>
  <testcase classname="t.calc" name="test_ok"/>
</testsuite>
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_fixed_are_failed_or_errored_before_and_passed_after(tmp_path: Path) -> None:
    before, after = write(tmp_path, "b.xml", BEFORE), write(tmp_path, "a.xml", AFTER)
    assert read_results(before)[("t.calc", "test_div")] == "skipped"
    assert fixed_tests(before, after) == [("t.calc", "test_add"), ("t.calc", "test_sub")]


def test_bad_xml_names_the_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.xml", "<testsuite>\n<testcase name='x'>\n</testsuite>")
    with pytest.raises(InvalidInputError) as info:
        read_results(bad)
    assert "bad.xml" in info.value.render() and ":3:" in info.value.render()


def test_entity_expansion_bomb_is_refused(tmp_path: Path) -> None:
    lol = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    bomb = write(tmp_path, "bomb.xml", f'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY l0 "lol">{lol}]>'
                                       "<testsuite><testcase name='&l9;'/></testsuite>")
    with pytest.raises(InvalidInputError):
        read_results(bomb)


def test_outcome_command_records_the_count(tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path}/l.db"
    usage = write(tmp_path, "u.csv", "model,input_tokens,output_tokens\nclaude-sonnet-4-5,1000,100\n")
    subprocess.run(["ci-guard", "import", "--format", "csv", usage, "--ledger", ledger, "--repo", "acme/app",
                    "--agent", "test-repair"], capture_output=True, text=True, check=True)
    from ci_guard.ledger import open_ledger

    store = open_ledger(ledger)
    try:
        (run,) = store.list_runs(repo="acme/app")
    finally:
        store.close()
    before, after = write(tmp_path, "b.xml", BEFORE), write(tmp_path, "a.xml", AFTER)
    result = CliRunner().invoke(cli, ["outcome", run.run_id, "--ledger", ledger, "--junit-before", before,
                                      "--junit-after", after])
    assert result.exit_code == 0, result.output
    assert f"run {run.run_id}: 2 tests fixed" in result.output
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    store = open_ledger(ledger)
    try:
        (facts,) = store.period_runs(now - timedelta(days=1), now + timedelta(days=1))
    finally:
        store.close()
    assert facts.tests_fixed == 2


def test_outcome_junit_flags_go_together(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["outcome", "r1", "--junit-before", "x.xml"])
    assert result.exit_code == 2 and "go together" in result.output
    result = CliRunner().invoke(cli, ["outcome", "r1", "--tests-fixed", "1", "--junit-before", "x",
                                      "--junit-after", "y"])
    assert result.exit_code == 2 and "not both" in result.output
