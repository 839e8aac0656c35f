"""The package builds and passes the checks PyPI applies, under the name and version documented.

`python -m build` (sdist and wheel, in an isolated build environment) from a clean copy of the
checkout, then `twine check --strict`, then the wheel's contents: the data files the code reads at
run time (prices, migrations, templates, the demo policy) must be in it, or an installed ci-guard
fails where the checkout worked. Every place that installs ci-guard from the repository pins this
version, so a release cannot leave one behind.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from ci_guard import __version__
from tests.actions.fresh_install import copy_checkout
from tests.actions.layout import ROOT

pytestmark = pytest.mark.slow

DIST_NAME = "ci-guard-agents"
REPO_URL = "https://github.com/ci-guard/ci-guard"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pkg")
    src = copy_checkout(root / "src")
    out = root / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_build_and_twine_check_are_clean(dist: Path) -> None:
    wheel, sdist = sorted(p.name for p in dist.iterdir())
    # a wheel for this platform: it holds the compiled pruning helper (setup.py, meter/transforms/rawcut.py)
    assert re.fullmatch(rf"ci_guard_agents-{re.escape(__version__)}-cp3\d+-cp3\d+-[\w.]+\.whl", wheel), wheel
    assert sdist == f"ci_guard_agents-{__version__}.tar.gz"
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.count("PASSED") == 2, proc.stdout + proc.stderr


def test_the_wheel_holds_what_the_code_reads(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("ci_guard/pricing/prices.json", "ci_guard/ledger/migrations/sqlite/0001_initial.sql",
                   "ci_guard/ledger/migrations/postgres/0001_initial.sql", "ci_guard/report/templates/comment.md.j2",
                   "ci_guard/demo/policy.yml"):
        assert needed in names, needed
    migrations = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ci_guard/ledger/migrations").rglob("*.sql")}
    assert migrations <= names
    for compiled in (r"ci_guard/meter/transforms/_jsoncut", r"ci_guard/_bytescan"):
        assert any(re.fullmatch(compiled + r"\.[\w.-]+\.(so|pyd)", name) for name in names), compiled
    if sys.platform.startswith("linux"):  # the executables (warm client, agent spawner), executable as installed
        for executable in ("ci_guard/warm/ci-guard-shim", "ci_guard/meter/ci-guard-spawn"):
            mode = zipfile.ZipFile(wheel).getinfo(executable).external_attr >> 16
            assert mode & 0o111, (executable, oct(mode))
    metadata = zipfile.ZipFile(wheel).read(f"ci_guard_agents-{__version__}.dist-info/METADATA").decode()
    assert f"Name: {DIST_NAME}\n" in metadata and f"Version: {__version__}\n" in metadata
    entry = zipfile.ZipFile(wheel).read(f"ci_guard_agents-{__version__}.dist-info/entry_points.txt").decode()
    assert "ci-guard = ci_guard.entry:main" in entry


def test_the_sdist_builds_the_compiled_part(dist: Path) -> None:
    """Installing from the sdist (no wheel for the platform) compiles the C part, or installs without it."""
    import tarfile

    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"setup.py", "ci_guard/meter/transforms/_jsoncut.c", "ci_guard/_bytescan.c",
            "ci_guard/warm/_shim.c", "ci_guard/meter/_spawn.c"} <= names


def test_the_pure_wheel_the_release_publishes_for_other_platforms(tmp_path: Path) -> None:
    """CI_GUARD_PURE=1 (release.yml) builds a py3-none-any wheel without the compiled part."""
    import os

    src = copy_checkout(tmp_path / "src")
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(src)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "CI_GUARD_PURE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == f"ci_guard_agents-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "ci_guard/meter/transforms/rawcut.py" in names
    assert not any(name.endswith((".so", ".pyd", "ci-guard-shim", "ci-guard-spawn")) for name in names)


def test_version_has_one_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DIST_NAME and "version" not in project and "version" in project["dynamic"]


# Every non-Action path installs ci-guard from the repository at this version's tag.
_PIN = re.compile(r"git\+" + re.escape(REPO_URL) + r"(?:\.git)?@(?P<ref>[\w.-]+)")
_UNPUBLISHED = re.compile(r"(pip install\s+|pip-spec:\s+|PIP_SPEC: \{value: )['\"]?ci-guard(?=$|[\s'\"=<>~,}])", re.M)
PINNED_FILES = ["templates/ci-guard/template.yml", "templates/policy-preview/template.yml",
                "gitlab-ci/ci-guard.gitlab-ci.yml", "actions/examples/budget-report.yml",
                "actions/examples/policy-repository.yml", "actions/examples/record-outcome.yml",
                "actions/examples/gitlab-ci.example.yml", "actions/examples/policy-preview.yml", "docs/install.md"]


@pytest.mark.parametrize("rel", PINNED_FILES)
def test_installs_are_pinned_to_this_version(rel: str) -> None:
    text = (ROOT / rel).read_text()
    refs = [m.group("ref") for m in _PIN.finditer(text)]
    assert refs, f"{rel}: no pinned install of {REPO_URL}"
    assert set(refs) == {f"v{__version__}"}, (rel, refs)
    assert not _UNPUBLISHED.search(text), f"{rel}: installs `ci-guard`, a name PyPI will never have"
