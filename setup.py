"""The one compiled part of ci-guard: pruning on the agent's JSON bytes (meter/transforms/rawcut.py).

Optional on purpose: where it cannot be compiled the package installs without it and the proxy
prunes in Python (same bytes, slower on a conversation's first sight). Everything else is in
pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ci_guard.meter.transforms._jsoncut", ["ci_guard/meter/transforms/_jsoncut.c"],
                             optional=True)])
