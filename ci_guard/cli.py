"""The ``ci-guard`` command line: wiring only.

Each command lives in ``ci_guard/commands/<name>.py`` and is imported only when it is invoked,
so ``ci-guard check`` does not pay for aiohttp, psycopg or PyGithub. Commands return an exit code;
:func:`main` is the single error boundary that turns ci-guard's own errors into a short message
and an exit code, and saves the traceback of anything unexpected to a file instead of printing it.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import traceback

import click

from ci_guard import __version__
from ci_guard.startup import GC_PAUSED_COMMANDS, pause_gc, resume_gc, skip_metadata_lookups

# name -> "module:attribute"; the order is the order of `ci-guard --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("ci_guard.commands.demo:demo", "Rehearse the whole loop on the built-in simulator."),
    "check": ("ci_guard.commands.check:check", "Decide whether an agent may run, on which model, with which limits."),
    "explain": ("ci_guard.commands.explain:explain", "Show every rule in order and why it matched or not."),
    "validate": ("ci_guard.commands.validate:validate", "Validate and lint policy files."),
    "test": ("ci_guard.commands.policy_test:policy_test", "Run policy unit tests (cases and expected decisions)."),
    "schema": ("ci_guard.commands.schema:schema", "Print the JSON Schema of the policy language."),
    "run": ("ci_guard.commands.run:run", "Decide, then run an agent command through the metering proxy."),
    "start": ("ci_guard.commands.start:start", "Decide and start a detached metering proxy (for agent actions)."),
    "stop": ("ci_guard.commands.stop:stop", "Stop a proxy started by `start`, settle and summarise the run."),
    "comment": ("ci_guard.commands.comment:comment", "Post or update the cost summary comment on a PR/MR."),
    "prices": ("ci_guard.commands.prices:prices", "Show the price catalog."),
    "cost": ("ci_guard.commands.cost:cost", "Price one call from token counts."),
    "budget": ("ci_guard.commands.budget:budget", "Budget status: limit, spent, reserved, remaining, burn."),
    "outcome": ("ci_guard.commands.outcome:outcome", "Record what became of a run or a PR (merged, closed, tests)."),
    "report": ("ci_guard.commands.report:report", "Spend and outcomes of any period by any dimensions."),
    "baseline": ("ci_guard.commands.baseline:baseline", "Suggest limits and budgets from a pilot's ledger."),
    "dashboard": ("ci_guard.commands.dashboard:dashboard", "A static HTML dashboard of a period."),
    "ledger": ("ci_guard.commands.ledger:ledger", "Ledger: migrate, runs, calls, outcome, report, export, dashboard."),
    "what-if": ("ci_guard.commands.what_if:what_if", "Replay the ledger against a proposed policy: what would change."),
    "simulate": ("ci_guard.commands.simulate:simulate", "Serve the scripted fake provider (Anthropic/OpenAI)."),
    "import": ("ci_guard.commands.import_usage:import_usage", "Import usage of agents that cannot be proxied."),
    "proxy": ("ci_guard.commands.proxy:proxy", "Serve a detached metering proxy (used by `start`)."),
    "warm": ("ci_guard.commands.warm:warm", "Many `run`s on one machine, forked from ci-guard loaded once."),
}

HIDDEN = {"proxy"}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if name not in HIDDEN]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        if cmd_name not in GC_PAUSED_COMMANDS:
            resume_gc()  # only a metered run's start-up runs without the cyclic collector (ci_guard.startup)
        module_name, attr = target[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command not built yet must not break `--help`
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the short help from COMMANDS so `--help` imports nothing.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ci-guard")
def cli() -> None:
    """Spend control for AI coding agents in CI.

    \b
    Quick start:
      ci-guard demo                                  # full rehearsal, nothing to set up
      ci-guard check --policy policies/default.yml   # decide for this CI job
      ci-guard run --policy policies/default.yml --preset claude-code -- claude -p "review"

    \b
    Exit codes:
      0 allowed / done; 1 denied or skipped (check), warnings with --strict (validate)
      2 invalid input (file:line:column: field: what was expected); stop: a state file or run
        summary the agent changed (its MAC does not verify with the stop key)
      3 infrastructure failure (ledger unreachable, forge API down): never a policy decision
      run / start: the agent's own code; 80 denied or skipped by policy or budget;
      81 stopped by a cap; 82 infrastructure failure before or around the agent
      70 internal error (a bug: a traceback file is written)
    """


def _save_traceback() -> str:
    fd, path = tempfile.mkstemp(prefix="ci-guard-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(traceback.format_exc())
    return path


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every outcome to an exit code."""
    pause_gc()  # resumed once the command is chosen, or (run, start, proxy) once start-up is frozen
    skip_metadata_lookups()  # before pydantic and psycopg are imported (ci_guard.startup)
    from ci_guard.errors import EXIT_INTERNAL, CiGuardError
    from ci_guard.secrets import register_from_env

    register_from_env()  # whatever this process prints afterwards, these values are redacted
    try:
        rv = cli.main(args=argv, prog_name="ci-guard", standalone_mode=False)
    except CiGuardError as exc:
        from ci_guard.secrets import redact

        click.echo(f"ci-guard: error: {redact(exc.render())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("ci-guard: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the one place that catches everything: never show a raw traceback
        from ci_guard.secrets import redact

        path = _save_traceback()
        click.echo(
            f"ci-guard: internal error: {redact(type(exc).__name__ + ': ' + str(exc))}\n"
            f"ci-guard: the traceback was saved to {path}; please report it.",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    finally:
        resume_gc()  # an in-process caller (tests) gets its collector back
    sys.exit(rv if isinstance(rv, int) else 0)
