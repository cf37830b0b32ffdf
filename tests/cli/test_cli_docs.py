"""Covers: every command of the root group (help with an example, --json where it lists, the catalog's --db), the
lazy root listing's help lines, and that docs/cli.md is what the commands' help says."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.docs import render_reference, walk
from cli.main import COMMANDS, cli, load_command

ROOT = Path(__file__).resolve().parents[2]
# Commands that print a listing or a report: each takes --json.
LISTINGS = {"list", "show", "holds", "runs", "overlap", "diff", "discover", "evaluate", "analyze", "models list",
            "tasks list", "tasks show", "toy eval", "reference list", "role list", "db current"}


@pytest.mark.parametrize("name,command", list(walk(cli)), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_help_with_an_example(name: str, command: click.Command) -> None:
    assert command.help and "Example:" in command.help, name
    if not isinstance(command, click.Group):
        assert f"circuits {name}" in command.help, name  # the example runs this very command
    params = {p.name for p in command.params}
    if name in LISTINGS:
        assert "as_json" in params, name
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_the_root_listing_is_each_commands_first_help_line() -> None:
    for name, (_, first) in COMMANDS.items():
        assert load_command(name).help.strip().splitlines()[0] == first, name


def test_docs_cli_md_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == render_reference(), \
        "docs/cli.md is stale: run `python -m cli.docs > docs/cli.md`"
