"""The CLI reference, generated from the commands' own help (as sqlite-utils generates its docs): ``docs/cli.md``.

    python -m cli.docs > docs/cli.md

A test keeps the file equal to what this prints, so the reference never drifts from ``--help``.
"""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner


def walk(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every command under ``group`` as ``("tasks show", command)``, in name order, groups before their commands."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None:
            continue
        full = f"{prefix}{name}"
        yield full, command
        if isinstance(command, click.Group):
            yield from walk(command, full + " ")


def render_reference() -> str:
    """Markdown: the root help, then each command's ``--help`` (80 columns, as a terminal shows it)."""
    from cli.main import cli

    runner = CliRunner()
    parts = ["# `circuits` command reference\n",
             "Generated from `--help` by `python -m cli.docs > docs/cli.md`; a test keeps it current.\n"]
    sections: list[tuple[str, list[str]]] = [("circuits", [])]
    sections += [(f"circuits {name}", name.split()) for name, _ in walk(cli)]
    for title, args in sections:
        text = runner.invoke(cli, [*args, "--help"], terminal_width=80).output
        parts.append(f"## `{title}`\n\n```\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    click.echo(render_reference(), nl=False)
