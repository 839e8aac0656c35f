"""The ``ci-guard`` executable: hand ``run`` to a warm launcher when one is named, else the CLI.

Kept apart from ci_guard.cli, which imports click: a warm ``ci-guard run`` loads nothing but the
standard library (ci_guard/warm/client.py).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if os.environ.get("CI_GUARD_WARM"):
        from ci_guard.warm.client import delegate

        delegate(sys.argv[1:])  # returns only when the command is to start cold
    from ci_guard.startup import pause_gc, skip_metadata_lookups

    pause_gc()  # before click and the CLI are imported; cli.main resumes it (ci_guard.startup)
    skip_metadata_lookups()
    from ci_guard.cli import main as cli_main

    cli_main()
