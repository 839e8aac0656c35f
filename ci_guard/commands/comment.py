"""`ci-guard comment`: post or update the cost summary comment on a pull/merge request."""

from __future__ import annotations

import click

from ci_guard.forges.base import BEHAVIORS


@click.command("comment")
@click.option("--summary", "summaries", multiple=True, metavar="FILE",
              help="Run summary JSON written by `ci-guard run --summary` (repeatable).")
@click.option("--policy", metavar="FILE", envvar="CI_GUARD_POLICY",
              help="Policy file; its `comment_template:` overrides the built-in template.")
@click.option("--ledger", metavar="URL", help="Ledger with earlier runs of this PR/MR (default: $CI_GUARD_LEDGER, "
                                              "or the default ledger file when it exists).")
@click.option("--no-ledger", is_flag=True, help="Show only the runs given with --summary.")
@click.option("--platform", type=click.Choice(["github", "gitlab", "auto"]), default="auto", show_default=True)
@click.option("--repo", metavar="R", help="owner/name (GitHub) or project id/path (GitLab); default: the run context.")
@click.option("--pr", type=int, metavar="N", help="Pull request number / merge request IID; default: the run context.")
@click.option("--behavior", type=click.Choice(BEHAVIORS), default="update", show_default=True,
              help="update: edit our comment in place; new: add one; hide-and-new: minimize the old one "
                   "(GitHub); delete-and-new: delete the old one.")
@click.option("--tag", default="ci-guard-comment", show_default=True,
              help="Marker tag; different tags keep independent comments.")
@click.option("--template", metavar="FILE", help="Jinja2 template to render instead of the built-in one.")
@click.option("--dry-run", is_flag=True, help="Print the comment; post nothing.")
@click.option("--output", metavar="FILE", help="Also write the comment's markdown to FILE.")
@click.option("--token-env", metavar="NAME", help="Environment variable holding the forge token "
                                                  "(default: GITHUB_TOKEN / GITLAB_TOKEN).")
@click.option("--body", metavar="FILE", help="Post this markdown (e.g. `what-if --format markdown --output FILE`) "
                                            "instead of rendering run summaries.")
@click.option("--fail-on-error", is_flag=True, help="Exit 3 when the comment cannot be posted (default: warn).")
@click.option("--comment-on", type=click.Choice(["spend", "always", "never"]), default="spend", show_default=True,
              envvar="CI_GUARD_COMMENT_ON",
              help="spend: stay quiet when every run of the PR/MR was denied or skipped (nothing to report); "
                   "always: comment on those too; never: post nothing.")
@click.option("--footer-on", metavar="AUTHOR|marker:TEXT",
              help="Append a one-line cost footer to the agent's own comment (the newest by this login, or "
                   "containing TEXT) instead of posting a cost comment; re-runs update the footer in place. "
                   "Without such a comment the cost comment is posted as usual.")
@click.option("--no-handoff", "handoff", flag_value=False, default=True,
              help="Do not apply the policy's `handoff:` (label, review request, mention) for capped runs.")
def comment(**kwargs: object) -> int:
    """Post or update the cost summary comment on a PR/MR.

    \b
    Examples:
      ci-guard comment --summary summary.json --dry-run
      ci-guard comment --summary summary.json --behavior hide-and-new
      ci-guard comment --summary summary.json --platform gitlab --token-env CI_GUARD_GITLAB_TOKEN
      ci-guard comment --summary summary.json --policy ci-guard.yml --footer-on 'claude[bot]'
    """
    from ci_guard.report.publish import CommentOptions, run_comment

    return run_comment(CommentOptions(**kwargs))  # type: ignore[arg-type]
