"""Alembic environment: the catalog's metadata, its own version table, batch mode for SQLite.

``catalog.db`` passes an open connection (in ``config.attributes``) already inside the transaction and lock
it wants, with SQLite's foreign keys OFF; run from the command line, the URL is ``-x db=URL`` or the
``sqlalchemy.url`` of ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from catalog.db import VERSION_TABLE, make_engine, to_url
from catalog.tables import Base, SafeJSON

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj: object, autogen_context: object) -> object:
    """Write SafeJSON columns as plain ``sa.JSON()``: a migration must not import the live models."""
    if type_ == "type" and isinstance(obj, SafeJSON):
        return "sa.JSON()"
    return False


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies and moves the table
        compare_type=True,
        render_item=_render_item,
        **kwargs,
    )


def _url() -> str:
    return context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option("sqlalchemy.url") or ""


def run_offline() -> None:
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = make_engine(to_url(_url()), foreign_keys=False)
    try:
        with engine.begin() as conn:
            _run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
