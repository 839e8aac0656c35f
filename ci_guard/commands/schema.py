"""`ci-guard schema`: print (or write) the JSON Schema of policy files."""

from __future__ import annotations

import click

EPILOG = """\b
Examples:
  ci-guard schema > policies/schema.json
  ci-guard schema --output policies/schema.json

\b
Editors validate policy files against it, e.g. with the YAML language server:
  # yaml-language-server: $schema=./schema.json
"""


@click.command(epilog=EPILOG)
@click.option("--output", "-o", metavar="FILE", help="Write to FILE (atomically) instead of stdout.")
def schema(output: str | None) -> int:
    """Print the JSON Schema of the policy language, generated from its models."""
    from ci_guard.policy.schema import schema_text

    text = schema_text()
    if output:
        from ci_guard.files import write_text_atomic

        write_text_atomic(output, text)
    else:
        click.echo(text, nl=False)
    return 0
