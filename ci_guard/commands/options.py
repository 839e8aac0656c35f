"""The context flags shared by every deciding command (check, explain, run, start, ...).

Use :func:`context_options` on a click command and hand its keyword arguments to
:func:`build_context`::

    @click.command()
    @click.option("--policy", required=True)
    @context_options
    def check(policy: str, **kwargs) -> int:
        ctx = build_context(**kwargs)   # unrelated keywords are ignored
        ...

Keyword arguments the decorator passes to the command (and the only ones ``build_context`` reads):

* ``repo``, ``actor``, ``team``, ``trigger``, ``base_branch``, ``head_branch``, ``agent``,
  ``workflow``, ``environment``, ``cohort``: ``str | None``
* ``diff_lines``, ``diff_files``, ``pr``: ``str | None`` (validated by ``build_context``, so a bad
  value is a :class:`~ci_guard.errors.ContextError` with the flag name, exit 2)
* ``changed_paths``: ``tuple[str, ...]`` from the repeatable ``--changed-file``
* ``labels``: ``tuple[str, ...]`` from the repeatable ``--label``
* ``draft``, ``fork``: ``bool | None`` (``None`` when neither ``--draft`` nor ``--no-draft`` is given)
* ``context_file``: ``str | None`` from ``--context FILE``

Precedence (lowest first): detection from the CI environment (including ``CI_GUARD_*`` variables),
then the ``--context`` JSON file, then the flags. An omitted flag (``None`` or an empty tuple) keeps
what was detected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ci_guard.context.model import RunContext

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_KEYWORDS = (
    "repo", "actor", "team", "trigger", "base_branch", "head_branch", "diff_lines", "diff_files",
    "changed_paths", "labels", "draft", "fork", "agent", "workflow", "environment", "pr", "cohort",
    "context_file",
)

# In the order they appear in --help. Each entry: (param_decls, click.option keyword arguments).
_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--repo",), {"metavar": "OWNER/NAME",
                   "help": "Repository, e.g. acme/payments (GitLab: group/sub/project)."}),
    (("--actor",), {"metavar": "LOGIN", "help": "Who triggered the run (forge login)."}),
    (("--team",), {"metavar": "NAME", "help": "Team, instead of resolving it from the policy's teams:."}),
    (("--trigger",), {"metavar": "KIND",
                      "help": "pull_request, push, schedule, manual, comment or other."}),
    (("--base-branch", "base_branch"), {"metavar": "BRANCH", "help": "Target branch of the PR/MR."}),
    (("--head-branch", "head_branch"), {"metavar": "BRANCH", "help": "Source branch of the PR/MR."}),
    (("--diff-lines", "diff_lines"), {"metavar": "N", "help": "Lines added + deleted."}),
    (("--diff-files", "diff_files"), {"metavar": "N", "help": "Number of changed files."}),
    (("--changed-file", "changed_paths"), {"metavar": "PATH", "multiple": True,
                                           "help": "A changed file (repeatable); replaces detected paths."}),
    (("--label", "labels"), {"metavar": "LABEL", "multiple": True,
                             "help": "A PR/MR label (repeatable); replaces detected labels."}),
    (("--draft/--no-draft", "draft"), {"default": None, "help": "Whether the PR/MR is a draft."}),
    (("--fork/--no-fork", "fork"), {"default": None, "help": "Whether the PR/MR comes from a fork."}),
    (("--agent",), {"metavar": "KIND", "help": "Agent kind, e.g. pr-review (default: $CI_GUARD_AGENT)."}),
    (("--workflow",), {"metavar": "NAME", "help": "Workflow / pipeline name."}),
    (("--environment",), {"metavar": "NAME", "help": "Deployment environment."}),
    (("--pr",), {"metavar": "N", "help": "Pull request number / merge request IID."}),
    (("--cohort",), {"metavar": "NAME", "help": "Free-form attribution (experiment arm, rollout wave)."}),
    (("--context", "context_file"), {
        "metavar": "FILE", "help": "JSON object with RunContext fields, applied before the flags."}),
]


def context_options(func: F) -> F:
    """Add the shared context flags to a click command (once, even if applied twice).

    Works above or below ``@click.command()``, like ``click.option`` itself.
    """
    existing = getattr(func, "params", None) or getattr(func, "__click_params__", None) or []
    if any(getattr(p, "name", None) == "context_file" for p in existing):
        return func
    for decls, kwargs in reversed(_OPTIONS):  # decorators apply bottom-up; keep --help in order
        func = click.option(*decls, **kwargs)(func)
    return func


def build_context(**options: Any) -> RunContext:
    """Detect the run context, then apply ``--context FILE``, then the flags.

    Accepts the keywords listed in the module docstring and ignores any other keyword, so a
    command can forward all of its ``**kwargs``. Raises :class:`~ci_guard.errors.ContextError` on
    an invalid flag value or context file.
    """
    from ci_guard.context.detect import detect_context
    from ci_guard.context.model import RunContext
    from ci_guard.context.overrides import apply_flags, context_file_fields, merge

    mine = {key: options[key] for key in CONTEXT_KEYWORDS if key in options}
    # Validate the user's input before detection, which may call git or a forge API.
    file_fields = context_file_fields(mine["context_file"]) if mine.get("context_file") else {}
    apply_flags(RunContext(), mine)
    ctx = merge(detect_context(), file_fields)
    return apply_flags(ctx, mine)
