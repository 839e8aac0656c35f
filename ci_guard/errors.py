"""Every error ci-guard raises on purpose, as one small hierarchy.

Callers (the CLI, the GitHub Action, a Python user) only ever see these types; errors from the
layers below (yaml, pydantic, psycopg, httpx, PyGithub, ...) are mapped at the boundary and kept
as ``__cause__``. Each error knows its exit code and renders a message meant for a person.

Exit codes used by the CLI:

* 0 -- success / allowed
* 1 -- the policy denied or skipped the run (``check``), or a failed policy test
* 2 -- invalid input: a bad policy, flag, context file, URL or argument
* 3 -- infrastructure: the ledger or a forge could not be reached, a required key is missing
  (`ci-guard run`/`start` exit 82 for these instead, beside 80 denied and 81 stopped)
* 4 -- a budget reservation did not fit
* 70 -- an unexpected internal error (the traceback is saved to a file, never printed)
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_INVALID = 2
EXIT_UNAVAILABLE = 3
EXIT_BUDGET = 4
EXIT_INTERNAL = 70
EXIT_RUN_INFRASTRUCTURE = 82  # `run`/`start`: what is 3 for other commands (80/81 are the agent's policy/caps)


def shown(value: object) -> str:
    """A value as the user wrote it, for messages: ``15.5`` not ``Decimal('15.5')``, ``true`` not ``True``."""
    from decimal import Decimal

    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Decimal | int | float):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return repr(value)


class CiGuardError(Exception):
    """Base class of every error ci-guard raises deliberately."""

    exit_code: int = EXIT_INVALID

    def render(self) -> str:
        """The message shown to a person, without a traceback."""
        return str(self)


@dataclass
class Problem:
    """One problem found in an input file, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def render(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class InvalidInputError(CiGuardError):
    """Input that a person must fix: a file, a flag or an environment variable."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def render(self) -> str:
        if not self.problems:
            return str(self)
        lines = [str(self)] if str(self) else []
        lines += [p.render() for p in self.problems]
        return "\n".join(lines)


class PolicyError(InvalidInputError):
    """The policy file is not valid (syntax, types, unknown keys, references)."""


class ContextError(InvalidInputError):
    """The run context could not be built (bad event payload, flag or context file)."""


class PricingError(InvalidInputError):
    """A model has no price and the policy says that is an error, or a price file is invalid."""


class LedgerError(CiGuardError):
    """The ledger could not be opened, migrated, read or written."""

    exit_code = EXIT_UNAVAILABLE


class LedgerUnavailableError(LedgerError):
    """The ledger could not be reached at all (connection refused, file not writable)."""


class BudgetExceededError(CiGuardError):
    """A reservation would take a budget past its limit."""

    exit_code = EXIT_BUDGET

    def __init__(self, budget: str, limit_usd: object, spent_usd: object, reserved_usd: object,
                 requested_usd: object) -> None:
        self.budget = budget
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.requested_usd = requested_usd
        super().__init__(
            f"budget {budget!r} cannot take ${requested_usd}: limit ${limit_usd}, "
            f"spent ${spent_usd}, reserved by running jobs ${reserved_usd}"
        )


class ProviderError(CiGuardError):
    """The metering proxy or an upstream provider failed in a way the run cannot recover from."""

    exit_code = EXIT_UNAVAILABLE


class ForgeError(CiGuardError):
    """GitHub or GitLab refused or failed a request (comment, API lookup)."""

    exit_code = EXIT_UNAVAILABLE


class LauncherError(CiGuardError):
    """The warm launcher could not be started (infrastructure, like an unreachable ledger)."""

    exit_code = EXIT_UNAVAILABLE


class MissingCredentialError(CiGuardError):
    """A provider key the run needs is not set: fail before the agent starts (never echo a value)."""

    exit_code = EXIT_UNAVAILABLE


class LedgerNotFoundError(InvalidInputError):
    """A read-only command found no ledger: none configured and none on disk (it never creates one)."""
