"""Commands: placeholder until this concern lands."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
