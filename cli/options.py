"""Options and output helpers shared by every ``circuits`` command (like sqlite-utils' output_options)."""

from __future__ import annotations

import json
import math
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "sqlite:///circuits.db"


def db_option(fn: F) -> F:
    """``--db URL``: the catalog, from the flag, else ``$CIRCUITS_DB``, else ./circuits.db."""
    return click.option(
        "--db",
        "db_url",
        envvar="CIRCUITS_DB",
        default=DEFAULT_DB,
        show_default=True,
        metavar="URL",
        help="Catalog database: a SQLAlchemy URL (sqlite:///file.db, postgresql+psycopg://...) or a file path.",
    )(fn)


@contextmanager
def catalog_session(db_url: str, *, read_only: bool = False) -> Iterator[Any]:
    """One session on the catalog at ``db_url`` for one command: committed on success, rolled back on error."""
    from catalog.db import connect, session_scope

    engine = connect(db_url)
    try:
        with session_scope(engine, read_only=read_only) as session:
            yield session
    finally:
        engine.dispose()


def positions_option(fn: F) -> F:
    """``--positions``: ablate only at these sequence positions (negative counts from the end)."""
    return click.option(
        "--positions",
        callback=lambda ctx, param, value: numbers(value, int, "--positions"),
        default=None,
        metavar="P,P,...",
        help="Ablate only at these token positions (e.g. -1 for the answer position); elsewhere nothing is patched.",
    )(fn)


def numbers(text: Optional[str], kind: type, option: str) -> Optional[list[Any]]:
    """``"0.7,0.8"`` -> ``[0.7, 0.8]`` (``kind`` int or float), or a usage error naming the option."""
    if text is None:
        return None
    try:
        return [kind(t) for t in text.split(",") if t.strip()]
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise click.BadParameter(f"expected {what} separated by commas, got {text!r}", param_hint=option) from None


def json_option(fn: F) -> F:
    """``--json``: print machine-readable JSON on stdout instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: nan and infinities become strings, as JSON has no literal for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(_clean(value), indent=2, sort_keys=False, default=str))


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain aligned table: what a researcher pastes into notes."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def info(message: str) -> None:
    """Progress and notes go to stderr, so stdout stays clean for --json."""
    click.echo(message, err=True)


def is_tty() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
