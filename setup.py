"""The compiled parts of ci-guard, both optional.

* ``ci_guard.meter.transforms._jsoncut``: pruning on the agent's JSON bytes (meter/transforms/rawcut.py).
* ``ci_guard._bytescan``: the checks and the top-level split of every large request, and its media
  scan (meter/providers/body.py, tokens/media.py).

Optional on purpose: where they cannot be compiled the package installs without them and the same
work is done in Python (the same answers and bytes, slower on megabyte requests). Everything else
is in pyproject.toml.
"""

import os

from setuptools import Extension, setup

# CI_GUARD_PURE=1 builds the py3-none-any wheel the release publishes for platforms without a compiled one
PURE = os.environ.get("CI_GUARD_PURE") == "1"

EXTENSIONS = [
    Extension("ci_guard.meter.transforms._jsoncut", ["ci_guard/meter/transforms/_jsoncut.c"], optional=True),
    Extension("ci_guard._bytescan", ["ci_guard/_bytescan.c"], optional=True),
]

setup(ext_modules=[] if PURE else EXTENSIONS)
