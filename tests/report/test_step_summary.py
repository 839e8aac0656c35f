from pathlib import Path

from ci_guard.report.step_summary import STEP_SUMMARY_LIMIT, fit_bytes, write_step_summary


def test_appends_without_marker(tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    target.write_text("# earlier step output\n")
    env = {"GITHUB_STEP_SUMMARY": str(target)}
    write_step_summary("[//]: <> (ci-guard-comment, valid-at=2026-01-01T00:00:00Z)\n\n### cost\n", env)
    assert target.read_text() == "# earlier step output\n### cost\n\n"


def test_not_on_github_does_nothing() -> None:
    assert write_step_summary("x", {}) is None


def test_respects_one_mebibyte_per_step(tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    target.write_bytes(b"a" * (STEP_SUMMARY_LIMIT - 1000))
    write_step_summary("é" * 5000, {"GITHUB_STEP_SUMMARY": str(target)})
    assert target.stat().st_size <= STEP_SUMMARY_LIMIT
    assert "1 MiB" in target.read_text(encoding="utf-8")[-200:]


def test_fit_bytes_cuts_on_character_boundaries() -> None:
    out = fit_bytes("€" * 100, 150)
    assert len(out.encode()) <= 150
    out.encode("utf-8")  # still valid text
