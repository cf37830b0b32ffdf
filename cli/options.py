"""Options and output helpers shared by every ``circuits`` command (like sqlite-utils' output_options)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Optional, TypeVar

import click

from discovery.jsonvalues import to_json
from discovery.names import ABLATIONS, METRICS

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "sqlite:///circuits.db"


class FiniteFloat(click.ParamType):
    """A number that is not nan or infinite (what both backends keep, and what a score or threshold means)."""

    name = "number"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"expected a number, got {value!r}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"expected a finite number, got {value!r}", param, ctx)
        return number


FINITE = FiniteFloat()


class CommaList(click.ParamType):
    """``a,b,c`` as a tuple of texts, optionally each one of ``choices``: the CLI's one comma-list reader (it calls
    ``discovery.settings.comma_list``, which method options use too)."""

    name = "list"

    def __init__(self, choices: Sequence[str] = ()):
        self.choices = tuple(choices)

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> tuple[str, ...]:
        from discovery.errors import SettingsError
        from discovery.settings import comma_list

        if isinstance(value, tuple):
            return value
        try:
            items = tuple(str(v) for v in comma_list(value))
        except SettingsError as err:
            self.fail(str(err), param, ctx)
        unknown = [v for v in items if self.choices and v not in self.choices]
        if unknown:
            self.fail(f"choose from {', '.join(self.choices)} (comma-separated), got {', '.join(unknown)}", param, ctx)
        return items


def _lasting_db(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse a catalog that would vanish when the command ends (in-memory SQLite): its saves would be lies."""
    text = (value or "").strip()
    if text in ("sqlite://", "sqlite:///", ":memory:") or ":memory:" in text or "mode=memory" in text:
        raise click.BadParameter("an in-memory catalog vanishes when the command ends: give a file "
                                 "(sqlite:///circuits.db) or a PostgreSQL URL")
    return value


def db_option(fn: F) -> F:
    """``--db URL``: the catalog, from the flag, else ``$CIRCUITS_DB``, else ./circuits.db."""
    return click.option(
        "--db",
        "db_url",
        envvar="CIRCUITS_DB",
        default=DEFAULT_DB,
        show_default=True,
        metavar="URL",
        callback=_lasting_db,
        help="Catalog database: a SQLAlchemy URL (sqlite:///file.db, postgresql+psycopg://...) or a file path.",
    )(fn)


@contextmanager
def catalog_session(db_url: str, *, mode: str = "read") -> Iterator[Any]:
    """One session on the catalog at ``db_url`` for one command: committed on success, rolled back on error,
    and the engine disposed whatever happens. ``mode`` is ``catalog.db.connect``'s: ``read`` (read-only),
    ``write`` (an existing catalog) or ``create``."""
    from catalog import Catalog

    with Catalog(db_url, mode=mode) as catalog, catalog.session(read_only=mode == "read") as session:
        yield session


RUN_OPTION_NAMES = ("model", "task", "metric", "ablation", "corruption", "n_prompts", "seed", "device", "dtype",
                    "positions", "filter")


def _run_option(name: str, task_required: bool, follows: str) -> Callable[[F], F]:
    if name == "model":
        return click.option("--model", "model_name", default=None,
                            help="toy, a hub id in the local Hugging Face cache, or a model folder.")
    if name == "task":
        return click.option("--task", required=task_required, default=None,
                            help="A built-in task (see `circuits tasks list`) or file:PROMPTS.jsonl.")
    if name == "metric":
        return click.option("--metric", default=None, metavar="|".join(METRICS),
                            help=f"The metric (default: {follows}).")
    if name == "ablation":
        return click.option("--ablation", default=None, metavar="|".join(ABLATIONS),
                            help=f"What an ablated edge reads (default: {follows}).")
    if name == "corruption":
        return click.option("--corruption", default=None, help="Which corrupted prompts (default: the task's).")
    if name == "n_prompts":
        return click.option("--n-prompts", type=int, default=None,
                            help="Prompts drawn (default: the task's own size, e.g. 1,536 for Lan et al.'s tasks).")
    if name == "seed":
        return click.option("--seed", type=int, default=0, show_default=True, help="Seed for prompts and methods.")
    if name == "device":
        return click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps.")
    if name == "dtype":
        return click.option("--dtype", default="float32", show_default=True, metavar="float32|bfloat16")
    if name == "positions":
        return click.option("--positions", default=None, metavar="P,P,...",
                            help="Ablate only at these token positions (-1: the answer position); elsewhere "
                            "nothing is patched.")
    if name == "filter":
        return click.option("--filter/--no-filter", "correctness_filter", default=True, show_default=True,
                            help="Apply the task's correctness filter (Lan et al.'s tasks: keep only the prompts "
                            "the model gets right).")
    raise ValueError(name)


def run_options(*names: str, task_required: bool = False, follows: str = "the method's, else the task's"
                ) -> Callable[[F], F]:
    """The options that say what a run is on, each declared once here and picked by ``discover``, ``evaluate``,
    ``analyze``, ``tasks`` (all of ``RUN_OPTION_NAMES`` when none is named). Their values are checked by
    ``discovery.config`` (one place), not by click. ``follows`` says what an unset metric/ablation defaults to."""

    def decorate(fn: F) -> F:
        for name in reversed(names or RUN_OPTION_NAMES):
            fn = _run_option(name, task_required, follows)(fn)
        return fn

    return decorate


def json_option(fn: F) -> F:
    """``--json``: print machine-readable JSON on stdout instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def print_json(value: Any) -> None:
    click.echo(json.dumps(to_json(value), indent=2, sort_keys=False, default=str))


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
