"""Opening the catalog: engines, the one session scope, and the schema version check and migrations.

``connect`` never upgrades an existing database behind the user's back (Optuna and MLflow do not either): a
fresh database gets the current schema and a stamp at head; an existing one must already be at head, else
``SchemaMismatch`` names the command to run, and nothing is written to it. The catalog keeps its revision in
its own table, ``circuit_catalog_alembic_version``, so it can share a database with Optuna or MLflow (which
both use ``alembic_version`` and overwrite each other's: mlflow#2923, optuna#2866).

SQLite is made safe for several writing processes: WAL, a busy timeout, and every write transaction opened
with ``BEGIN IMMEDIATE`` so it takes the write lock up front. With SQLite's default deferred BEGIN a
read-then-write transaction fails at once with "database is locked" when another writer got in first,
whatever the timeout (72 of 90 concurrent read-then-write transactions on 2 cores; 0 of 90 with IMMEDIATE).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

import migrations
from catalog.errors import BadDatabase, CatalogError, SchemaMismatch
from catalog.tables import CATALOG_TABLES, Base

VERSION_TABLE = "circuit_catalog_alembic_version"
# Inside the installed package, so `circuits db upgrade` works from a wheel, not only from the repo.
MIGRATIONS_DIR = os.path.dirname(os.path.abspath(migrations.__file__))
BUSY_TIMEOUT_S = 60
# pg_advisory_xact_lock key serialising first-time init and upgrades (any constant; "circ" in ASCII).
PG_LOCK_KEY = 0x63697263
_READONLY = "catalog_readonly"
_SCHEME_ONLY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


# ---------------------------------------------------------------------------------------------------------
# URLs and engines


def to_url(url_or_path: str) -> URL:
    """Parse a SQLAlchemy URL; a bare path (no ``://``) is a SQLite file."""
    text_ = url_or_path.strip()
    if not text_:
        raise BadDatabase("no database given: pass --db URL (sqlite:///circuits.db or a file path)")
    if "://" not in text_:
        if _SCHEME_ONLY.match(text_):  # "sqlite:" or "postgresql:host" is a mistyped URL, not a file name
            raise BadDatabase(f"not a database URL: {text_!r} (a URL needs ://, e.g. sqlite:///circuits.db)")
        return URL.create("sqlite", database=os.path.abspath(os.path.expanduser(text_)))
    try:
        return make_url(text_)
    except ArgumentError:
        raise BadDatabase(
            f"not a database URL: {text_!r} (expected sqlite:///file.db, postgresql+psycopg://user@host/db "
            "or a file path)"
        ) from None


def display(url: URL) -> str:
    """The URL as shown to users, password hidden."""
    return url.render_as_string(hide_password=True)


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _is_sqlite_file(url: URL) -> bool:
    return _is_sqlite(url) and url.database not in (None, "", ":memory:") and "mode=memory" not in str(url)


def make_engine(url: URL, *, foreign_keys: bool = True) -> Engine:
    """An engine with the catalog's connection settings; checks nothing and creates nothing."""
    kwargs: dict[str, Any] = {}
    if _is_sqlite(url):
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S}
    elif url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as err:
        raise BadDatabase(f"cannot use database URL {display(url)}: {_first_line(err)}") from None
    if _is_sqlite(url):
        _install_sqlite_hooks(engine, foreign_keys=foreign_keys)
    return engine


def _install_sqlite_hooks(engine: Engine, *, foreign_keys: bool) -> None:
    """Per connection: foreign keys (off only for migrations), no automatic indexes, and our own BEGIN,
    IMMEDIATE unless read-only."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # pysqlite must not BEGIN on its own; _on_begin does
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        # SQLite otherwise builds a throwaway index for a join against a list of keys (8 s over 10k circuits)
        # instead of using the kept-edge index that exists for it (0.4 s): benchmarks/catalog_bench.py.
        cursor.execute("PRAGMA automatic_index = OFF")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "DEFERRED" if conn.get_execution_options().get(_READONLY) else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")


def readonly(engine: Engine) -> Engine:
    """The same engine, with transactions that do not take SQLite's write lock (reads never block writers)."""
    return engine.execution_options(**{_READONLY: True})


# ---------------------------------------------------------------------------------------------------------
# Sessions


@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any exception, and turns database errors into
    one-line ``CatalogError``s. ``read_only`` skips SQLite's up-front write lock for pure reads."""
    session = Session(bind=readonly(engine) if read_only else engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except SQLAlchemyError as err:
        session.rollback()
        raise translate(err) from err
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def translate(err: SQLAlchemyError) -> CatalogError:
    """A database error as one line a user can act on."""
    detail = _first_line(getattr(err, "orig", None) or err)
    if isinstance(err, OperationalError) and "locked" in detail:
        return CatalogError(f"the catalog is locked by another writer (waited {BUSY_TIMEOUT_S} s); try again")
    if isinstance(err, IntegrityError):
        return CatalogError(f"the catalog refused a write that breaks its rules: {detail}")
    if isinstance(err, OperationalError) or "not a database" in detail:
        return BadDatabase(f"lost or cannot use the catalog database: {detail}")
    return CatalogError(f"catalog database error: {detail}")


def _first_line(err: object) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


# ---------------------------------------------------------------------------------------------------------
# Opening with a version check


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: its recorded revision, the code's head, whether catalog tables exist, and the
    tables some other program made (``foreign``)."""

    url: str
    revision: Optional[str]
    head: str
    has_tables: bool
    foreign: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``empty`` | ``current`` | ``older`` | ``newer`` | ``unversioned`` | ``foreign``.

        ``foreign``: no catalog here, but tables another program made; a catalog created beside them with
        ``circuits db upgrade --alongside`` has its version table, and opens as any other."""
        if self.revision is None:
            if self.has_tables:
                return "unversioned"
            return "foreign" if self.foreign else "empty"
        if self.revision == self.head:
            return "current"
        return "older" if _is_known(self.revision) else "newer"


MODES = ("create", "write", "read")


def catalog_exists(url: str) -> bool:
    """False only for a SQLite file that is not there yet (a server's database is assumed to exist)."""
    parsed = to_url(url)
    return not (_is_sqlite_file(parsed) and not os.path.exists(parsed.database or ""))


def connect(url: str, *, mode: str = "create") -> Engine:
    """Open the catalog at ``url`` (a SQLAlchemy URL or a SQLite file path).

    ``mode``: ``create`` makes the schema in an empty database or a new SQLite file (what saving commands and a
    notebook do); ``write`` and ``read`` need a catalog to be there already (a typo in a path must not conjure an
    empty catalog); ``read`` opens a SQLite file read-only, immutable when its filesystem is (a catalog in WAL mode
    otherwise needs to write its shared-memory file even to be read). A database some other program made is never
    written to. Raises ``BadDatabase`` when it cannot be opened and ``SchemaMismatch`` when its schema is not this
    code's.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    parsed = to_url(url)
    if mode != "create" and _is_sqlite_file(parsed) and not os.path.exists(parsed.database or ""):
        raise BadDatabase(f"no catalog at {display(parsed)}: `circuits db upgrade --db {display(parsed)}` creates one")
    engine, state = _open(parsed, mode)
    try:
        if state.status == "empty":
            if mode != "create":
                raise BadDatabase(f"{display(parsed)} holds no catalog: `circuits db upgrade --db {display(parsed)}` "
                                  "creates one")
            state = _initialise(engine, parsed)
        check(state)
        if _is_sqlite_file(parsed) and mode != "read":
            _ensure_wal(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _open(url: URL, mode: str) -> tuple[Engine, SchemaState]:
    """An engine and what the database holds; for reading a SQLite file, read-only, then immutable."""
    if mode != "read" or not _is_sqlite_file(url):
        engine = make_engine(url)
        try:
            return engine, _read_state(engine, url)
        except BaseException:
            engine.dispose()
            raise
    first: Optional[BadDatabase] = None
    for flags in ("mode=ro", "immutable=1"):
        engine = make_engine(URL.create("sqlite", database=f"file:{url.database}?{flags}", query={"uri": "true"}))
        try:
            return engine, _read_state(engine, url)
        except BadDatabase as err:
            engine.dispose()
            first = first or err
    assert first is not None
    raise first


def check(state: SchemaState) -> None:
    """Raise ``SchemaMismatch`` (one line, naming what to do) unless the schema is this code's."""
    where, rev, head = state.url, state.revision, state.head
    status = state.status
    if status in ("current", "empty"):
        return
    if status == "older":
        raise SchemaMismatch(
            f"the catalog at {where} has schema {rev}, older than this code's {head}: "
            f"run `circuits db upgrade --db {where}`"
        )
    if status == "newer":
        raise SchemaMismatch(
            f"the catalog at {where} has schema {rev}, which this code ({head}) does not know: the code is "
            "older than the database; upgrade circuit-catalog"
        )
    if status == "foreign":
        shown = ", ".join(state.foreign[:5]) + (f" and {len(state.foreign) - 5} more" if len(state.foreign) > 5 else "")
        raise BadDatabase(
            f"{where} is not a circuit catalog: it holds tables another program made ({shown}); nothing was "
            "written. Use another file or schema, or `circuits db upgrade --alongside` to add a catalog beside them"
        )
    raise SchemaMismatch(
        f"the database at {where} has catalog tables but no catalog schema version ({VERSION_TABLE}); "
        "it was not made by circuit-catalog's migrations and cannot be opened or upgraded in place"
    )


def schema_state(url: str) -> SchemaState:
    """Read a database's schema state without changing it (a missing SQLite file is reported, not created)."""
    parsed = to_url(url)
    if _is_sqlite_file(parsed) and not os.path.exists(parsed.database or ""):
        return SchemaState(display(parsed), None, head_revision(), False)
    engine, state = _open(parsed, "read")
    engine.dispose()
    return state


def _read_state(engine: Engine, url: URL) -> SchemaState:
    try:
        with readonly(engine).connect() as conn:
            return _state_on(conn, url)
    except SQLAlchemyError as err:
        detail = _first_line(getattr(err, "orig", None) or err)
        raise BadDatabase(f"cannot open the catalog at {display(url)}: {detail}") from None


def _state_on(conn: Connection, url: URL) -> SchemaState:
    tables = set(inspect(conn).get_table_names())
    revision = None
    if VERSION_TABLE in tables:
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        revision = ",".join(sorted(rows)) or None
    foreign = tuple(sorted(tables - set(CATALOG_TABLES) - {VERSION_TABLE}))
    return SchemaState(display(url), revision, head_revision(), bool(tables & set(CATALOG_TABLES)), foreign)


def _initialise(engine: Engine, url: URL) -> SchemaState:
    """Create the schema and stamp it at head, under a lock, so concurrent first opens do not race."""
    try:
        with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE is the lock
            _lock(conn)
            state = _state_on(conn, url)
            if state.status != "empty":
                return state  # another process got here first
            Base.metadata.create_all(conn)
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            context.stamp(_script(), "head")
            return _state_on(conn, url)
    except SQLAlchemyError as err:
        raise translate(err) from err


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def _ensure_wal(engine: Engine) -> None:
    """WAL lets readers run beside the one writer; it persists in the file, so this writes only once.

    Switching needs a moment alone with the file and SQLite answers "locked" at once rather than waiting,
    so several processes opening a new catalog together retry here until it is done (by any of them).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        while dbapi.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                dbapi.execute("PRAGMA journal_mode = WAL")
                return  # switched, or WAL is unsupported here (it then answers the old mode): carry on
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise CatalogError(f"could not switch the catalog to WAL mode: {_first_line(err)}") from None
                time.sleep(0.02)


# ---------------------------------------------------------------------------------------------------------
# Migrations, with the Alembic config built in code


def alembic_config(url: URL, connection: Optional[Connection] = None) -> Config:
    """An Alembic config pointing at the packaged migrations; ``%`` is doubled for ConfigParser."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["version_table"] = VERSION_TABLE
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory(MIGRATIONS_DIR)


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS_DIR}"
    return head


def _is_known(revision: str) -> bool:
    script = _script()
    try:
        return all(script.get_revision(r) is not None for r in revision.split(","))
    except CommandError:
        return False


def upgrade_schema(url: str, revision: str = "head", *, alongside: bool = False) -> tuple[SchemaState, SchemaState]:
    """Migrate the database to ``revision`` (head by default); returns the states before and after.

    Runs in one transaction under the init lock; on SQLite with foreign keys OFF, because batch mode's
    copy-and-move of a parent table with them ON silently cascades deletes into child rows. A database holding
    another program's tables and no catalog is refused unless ``alongside`` (its tables are then left as they are,
    and the catalog's, none of whose names they take, are created beside them).
    """
    return _migrate(url, revision, command.upgrade, alongside=alongside)


def downgrade_schema(url: str, revision: str) -> tuple[SchemaState, SchemaState]:
    """Migrate the database down to ``revision`` (``base`` drops every catalog table)."""
    return _migrate(url, revision, command.downgrade)


def _migrate(url: str, revision: str, step: Any, *, alongside: bool = False) -> tuple[SchemaState, SchemaState]:
    parsed = to_url(url)
    engine = make_engine(parsed, foreign_keys=False)
    try:
        with engine.begin() as conn:
            _lock(conn)
            before = _state_on(conn, parsed)
            if before.status in ("newer", "unversioned") or (before.status == "foreign" and not alongside):
                check(before)
            step(alembic_config(parsed, conn), revision)
            after = _state_on(conn, parsed)
        if _is_sqlite_file(parsed):
            _ensure_wal(engine)
        return before, after
    except SQLAlchemyError as err:
        raise translate(err) from err
    except CommandError as err:
        raise CatalogError(f"migration failed: {_first_line(err)}") from None
    finally:
        engine.dispose()
