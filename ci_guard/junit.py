"""JUnit XML test reports: which tests a test-repair run fixed.

pytest (``--junitxml``), Jest (jest-junit), Go (gotestsum), Maven Surefire and GitLab's test
reports all write JUnit XML. A test is identified by ``classname`` and ``name``; it *failed*
when its ``<testcase>`` holds ``<failure>`` or ``<error>``, is *skipped* with ``<skipped>``, and
passed otherwise.

The file comes from running repository code, so it is read as untrusted input: at most
:data:`MAX_BYTES`, through the standard library's expat parser (2.4.1+ refuses entity-expansion
bombs; ElementTree resolves no external entities), and a bad file is an InvalidInputError naming it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ci_guard.errors import InvalidInputError, Problem

MAX_BYTES = 64 * 1024 * 1024


def read_results(path: str | Path) -> dict[tuple[str, str], str]:
    """``{(classname, name): "passed" | "failed" | "skipped"}`` for every test case in the report."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InvalidInputError("", [Problem(f"test report larger than {MAX_BYTES // 2**20} MiB", file=str(path))])
        root = ET.parse(path).getroot()  # expat refuses entity bombs: see the module docstring
    except OSError as exc:
        raise InvalidInputError("", [Problem(f"cannot read the test report: {exc.strerror}", file=str(path))]) from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise InvalidInputError("", [Problem(f"not valid JUnit XML: {exc.msg if hasattr(exc, 'msg') else exc}",
                                             file=str(path), line=line, column=column)]) from None
    results: dict[tuple[str, str], str] = {}
    for case in root.iter("testcase"):
        key = (case.get("classname") or "", case.get("name") or "")
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            state = "failed"
        elif "skipped" in tags:
            state = "skipped"
        else:
            state = "passed"
        # a test reported twice (reruns) counts by its last result
        results[key] = state
    return results


def fixed_tests(before: str | Path, after: str | Path) -> list[tuple[str, str]]:
    """The tests that failed in ``before`` and pass in ``after``, sorted."""
    old, new = read_results(before), read_results(after)
    return sorted(key for key, state in old.items() if state == "failed" and new.get(key) == "passed")
