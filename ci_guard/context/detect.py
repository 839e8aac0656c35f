"""Detect the RunContext of the current job: GitHub Actions, GitLab CI, or a local checkout.

After the platform builder, ``CI_GUARD_*`` variables override single fields (see
:data:`ENV_OVERRIDES`); flags and ``--context`` are applied later by ``build_context``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import ValidationError

from ci_guard.context.model import RunContext
from ci_guard.context.overrides import check_trigger
from ci_guard.errors import ContextError
from ci_guard.secrets import redact, register
from ci_guard.text import clean_any

# CI_GUARD_<NAME> -> RunContext field. Set them in the job to name what the platform cannot tell.
ENV_OVERRIDES = {
    "CI_GUARD_AGENT": "agent",
    "CI_GUARD_TEAM": "team",
    "CI_GUARD_COHORT": "cohort",
    "CI_GUARD_ENVIRONMENT": "environment",
    "CI_GUARD_WORKFLOW": "workflow",
    "CI_GUARD_TRIGGER": "trigger",
    "CI_GUARD_ACTOR": "actor",
    "CI_GUARD_REPO": "repo",
}
GITHUB_TOKEN_VARS = ("CI_GUARD_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")
GITLAB_TOKEN_VARS = ("CI_GUARD_GITLAB_TOKEN", "GITLAB_TOKEN")


def detect_context(env: Mapping[str, str] | None = None, cwd: str | None = None, *,
                   api_token: str | None = None) -> RunContext:
    """Describe the current run from the environment ``env`` (default ``os.environ``) and the git
    checkout at ``cwd`` (default the working directory).

    ``api_token`` is used for forge API look-ups when git cannot give the changed files; when
    ``None`` it is read from ``CI_GUARD_GITHUB_TOKEN``/``GITHUB_TOKEN``/``GH_TOKEN`` (GitHub) or
    ``CI_GUARD_GITLAB_TOKEN``/``GITLAB_TOKEN``, then ``CI_JOB_TOKEN`` (GitLab). Git and API failures
    never raise: they leave fields unknown and add a note. A malformed event payload or
    ``CI_GUARD_*`` value raises :class:`ContextError`.
    """
    env = os.environ if env is None else env
    cwd = cwd or os.getcwd()
    try:
        ctx = _platform_context(env, cwd, api_token)
    except ValidationError as exc:
        raise ContextError(redact(f"the CI environment has an unexpected value: {_first(exc)}")) from exc
    return _apply_env_overrides(ctx, env)


def _platform_context(env: Mapping[str, str], cwd: str, api_token: str | None) -> RunContext:
    if env.get("GITHUB_ACTIONS") == "true":
        from ci_guard.context.github import github_context

        return github_context(env, cwd, _token(api_token, env, GITHUB_TOKEN_VARS))
    if env.get("GITLAB_CI") == "true":
        from ci_guard.context.gitlab import gitlab_context

        job_token = env.get("CI_JOB_TOKEN") or None
        register(job_token)
        return gitlab_context(env, cwd, _token(api_token, env, GITLAB_TOKEN_VARS), job_token)
    from ci_guard.context.local import local_context

    return local_context(cwd)


def _token(explicit: str | None, env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    token = explicit or next((env[n] for n in names if env.get(n)), None)
    register(token)  # whatever happens next, this value must never be printed
    return token


def _apply_env_overrides(ctx: RunContext, env: Mapping[str, str]) -> RunContext:
    update: dict[str, str] = {}
    for var, field in ENV_OVERRIDES.items():
        value = (env.get(var) or "").strip()
        if value:
            update[field] = check_trigger(value, var) if field == "trigger" else value
    if "repo" in update:
        update.setdefault("org", update["repo"].split("/")[0])
    return ctx.model_copy(update=clean_any(update)) if update else ctx  # env values may be non-UTF-8


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg')}"
