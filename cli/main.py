"""The ``circuits`` command: a thin layer over ``catalog`` and ``discovery``.

Every expected failure (a ``CatalogError``, a ``DiscoveryError``, a bad key) becomes one line on stderr and a
non-zero exit; only a bug shows a traceback. Command modules each export ``COMMANDS``.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from catalog.errors import CatalogError
from discovery.errors import DiscoveryError
from discovery.graph import InvalidKey

# Each module holds the commands of one concern and exports COMMANDS: a list of click commands or groups.
COMMAND_MODULES = (
    "cli.catalog_cmds",
    "cli.compare_cmds",
    "cli.task_cmds",
    "cli.discover_cmds",
    "cli.analyze_cmds",
    "cli.demo_cmds",
    "cli.evaluate_cmds",
)


class CircuitsGroup(click.Group):
    """A group that turns expected errors into one clean line (exit 1) and Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CatalogError, DiscoveryError, InvalidKey) as err:
            raise click.ClickException(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=CircuitsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="circuit-catalog")
def cli() -> None:
    """Find, keep, compare and draw the circuits inside transformer language models.

    Example:

        circuits reference import && circuits overlap digits-lan2023 months-lan2023
    """


for _name in COMMAND_MODULES:
    for _command in importlib.import_module(_name).COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="circuits")


if __name__ == "__main__":
    main()
