from __future__ import annotations

from collections.abc import Iterator

import pytest

from ci_guard.simulator import Simulator, run_simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with run_simulator("tool-loop") as running:
        yield running
