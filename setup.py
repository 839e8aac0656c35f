"""The one compiled part of ci-guard: pruning on the agent's JSON bytes (meter/transforms/rawcut.py).

Optional on purpose: where it cannot be compiled the package installs without it and the proxy
prunes in Python (the same bytes, slower on a conversation's first sight). Everything else is in
pyproject.toml.
"""

import os

from setuptools import Extension, setup

# CI_GUARD_PURE=1 builds the py3-none-any wheel the release publishes for platforms without a compiled one
PURE = os.environ.get("CI_GUARD_PURE") == "1"

setup(ext_modules=[] if PURE else [Extension("ci_guard.meter.transforms._jsoncut",
                                             ["ci_guard/meter/transforms/_jsoncut.c"], optional=True)])
