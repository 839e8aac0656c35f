"""The compiled parts of ci-guard, both optional.

* ``ci_guard.meter.transforms._jsoncut``: pruning on the agent's JSON bytes (meter/transforms/rawcut.py).
* ``ci_guard._bytescan``: the checks and the top-level split of every large request, and its media
  scan (meter/providers/body.py, tokens/media.py).
* ``ci_guard/warm/ci-guard-shim`` and ``ci_guard/meter/ci-guard-spawn`` (Linux), executables: the
  warm launcher's own ``ci-guard`` (docs/warm.md) and the agent's start without a fork (meter/spawn.py).

Optional on purpose: where they cannot be compiled the package installs without them and the same
work is done in Python (the same answers and bytes, slower on megabyte requests). Everything else
is in pyproject.toml.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# CI_GUARD_PURE=1 builds the py3-none-any wheel the release publishes for platforms without a compiled one
PURE = os.environ.get("CI_GUARD_PURE") == "1"

EXTENSIONS = [
    Extension("ci_guard.meter.transforms._jsoncut", ["ci_guard/meter/transforms/_jsoncut.c"], optional=True),
    Extension("ci_guard._bytescan", ["ci_guard/_bytescan.c"], optional=True),
]

# Executables, not modules (Linux): (source, directory in the package, name)
EXECUTABLES = [
    ("ci_guard/warm/_shim.c", "ci_guard/warm", "ci-guard-shim"),  # the warm launcher's own ci-guard
    ("ci_guard/meter/_spawn.c", "ci_guard/meter", "ci-guard-spawn"),  # starts the agent without a fork
]


class BuildExt(build_ext):
    """The extension modules, then the executables: optional like them (ci-guard then does the same
    in Python: the warm launcher writes its Python client, the agent is started with a fork)."""

    def run(self) -> None:
        super().run()
        if PURE or not sys.platform.startswith("linux"):
            return
        from setuptools.errors import CCompilerError, CompileError, LinkError

        compiler = self.compiler  # build_ext's own, set up for this platform by super().run()
        for source, directory, name in EXECUTABLES:
            try:
                objects = compiler.compile([source], output_dir=self.build_temp, extra_postargs=["-O2"])
                out = directory if self.inplace else os.path.join(self.build_lib, directory)
                compiler.link_executable(objects, name, output_dir=out)
            except (CCompilerError, CompileError, LinkError, OSError, AttributeError, TypeError) as exc:
                # (a setuptools that changed its compiler API must not fail the install either)
                self.warn(f"{name} was not built ({exc}); ci-guard does its work in Python")


setup(ext_modules=[] if PURE else EXTENSIONS, cmdclass={"build_ext": BuildExt})
