"""The compiled parts of ci-guard, both optional.

* ``ci_guard.meter.transforms._jsoncut``: pruning on the agent's JSON bytes (meter/transforms/rawcut.py).
* ``ci_guard._bytescan``: the checks and the top-level split of every large request, and its media
  scan (meter/providers/body.py, tokens/media.py).
* ``ci_guard/warm/ci-guard-shim`` (Linux): the warm launcher's own ``ci-guard``, an executable, not
  a module (ci_guard/warm/_shim.c, docs/warm.md).

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

SHIM_SOURCE = "ci_guard/warm/_shim.c"
SHIM_DIR, SHIM_NAME = "ci_guard/warm", "ci-guard-shim"


class BuildExt(build_ext):
    """The extension modules, then the warm launcher's compiled client: optional like them (the
    launcher then writes its Python client instead)."""

    def run(self) -> None:
        super().run()
        if PURE or not sys.platform.startswith("linux"):
            return
        from setuptools.errors import CCompilerError, CompileError, LinkError

        compiler = self.compiler  # build_ext's own, set up for this platform by super().run()
        try:
            objects = compiler.compile([SHIM_SOURCE], output_dir=self.build_temp, extra_postargs=["-O2"])
            out = SHIM_DIR if self.inplace else os.path.join(self.build_lib, SHIM_DIR)
            compiler.link_executable(objects, SHIM_NAME, output_dir=out)
        except (CCompilerError, CompileError, LinkError, OSError, AttributeError, TypeError) as exc:
            # optional like the modules (and a setuptools that changed its compiler API must not
            # fail the install): the launcher then writes its Python client
            self.warn(f"the warm launcher's compiled client was not built ({exc}); it uses its Python client")


setup(ext_modules=[] if PURE else EXTENSIONS, cmdclass={"build_ext": BuildExt})
