"""Fixtures for the catalog store: one database per test, on SQLite always and on PostgreSQL when
``CIRCUITS_TEST_POSTGRES_URL`` names a server (each test then gets a fresh schema via ``search_path``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, inspect, select, table, text
from sqlalchemy.engine import make_url

import catalog.db as db
from catalog.db import VERSION_TABLE, connect, head_revision, to_url
from catalog.records import EdgeRecord, NewCircuit, NodeRecord
from catalog.tables import Base

PG_ENV = "CIRCUITS_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _pg_schema_url(base: str) -> Iterator[str]:
    """A fresh schema, dropped afterwards; the URL's ``options`` puts it first on the search path."""
    schema = f"cc_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)  # has a %3D: exercises Alembic's % escaping
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set")
    yield from _pg_schema_url(base)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """An opened SQLite catalog, for checks that do not depend on the backend."""
    eng = connect(sqlite_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def pg_catalog_url() -> Iterator[str]:
    """One PostgreSQL schema holding the catalog, shared by tests that only add rows (emptied before each)."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set")
    yield from _pg_schema_url(base)


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An opened catalog with no rows, on each backend. On PostgreSQL the schema is shared and emptied,
    since creating one per test costs more than the test; tests that change the schema use ``db_url``."""
    if request.param == "sqlite":
        eng = connect(f"sqlite:///{tmp_path / 'catalog.db'}")
    else:
        eng = connect(request.getfixturevalue("pg_catalog_url"))
        with eng.begin() as conn:  # DELETE: much cheaper than TRUNCATE on a handful of rows
            for t in reversed(Base.metadata.sorted_tables):
                conn.execute(t.delete())
    yield eng
    eng.dispose()


def _fingerprint(url: str) -> tuple[Any, ...]:
    """Everything a failed open or save must leave untouched: tables, version, row counts and, for a SQLite
    file, its bytes."""
    parsed = to_url(url)
    raw = create_engine(parsed)
    try:
        with raw.connect() as conn:
            names = sorted(inspect(conn).get_table_names())
            counts = tuple((n, conn.execute(select(func.count()).select_from(table(n))).scalar()) for n in names)
            version = None
            if VERSION_TABLE in names:
                version = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    finally:
        raw.dispose()
    digest = None
    if parsed.get_backend_name() == "sqlite" and parsed.database and os.path.exists(parsed.database):
        digest = hashlib.sha256(Path(parsed.database).read_bytes()).hexdigest()
    return tuple(names), counts, version, digest


@pytest.fixture
def fingerprint() -> Callable[[str], tuple[Any, ...]]:
    """(tables, row counts, version rows, SQLite file digest): compare before and after to prove no write."""
    return _fingerprint


@pytest.fixture
def make_circuit() -> Callable[..., NewCircuit]:
    """A small valid circuit: embed -> a0.1 -> a1.0 (via q) -> m1 -> logits, one dropped edge, one role."""

    def build(name: str = "tiny", model: str = "gpt2", task: str | None = "ioi", **kw: Any) -> NewCircuit:
        nodes = (
            NodeRecord.from_key("embed"),
            NodeRecord.from_key("0.1", score=0.5),
            NodeRecord.from_key("a1.0", score=-1.25, role="name mover", role_source="paper"),
            NodeRecord.from_key("m1", score=2.0),
            NodeRecord.from_key("logits"),
        )
        edges = (
            EdgeRecord.from_key("embed->a0.1.v", score=0.25),
            EdgeRecord.from_key("a0.1->a1.0.q", score=-0.75),
            EdgeRecord.from_key("a1.0->m1", score=1.5),
            EdgeRecord.from_key("m1->logits", score=3.0),
            EdgeRecord.from_key("embed->m1", score=0.01, kept=False),
        )
        fields: dict[str, Any] = dict(
            name=name,
            model=model,
            task=task,
            source="published",
            nodes=nodes,
            edges=edges,
            edges_known=True,
            citation="Wang et al. 2022",
            method="path patching",
            threshold=0.1,
            performance={"logit_diff_recovered": 0.87},
        )
        fields.update(kw)
        return NewCircuit(**fields)

    return build


_EXTRA_REVISION = '''
"""Test-only revision: recreate the circuit table (batch copy-and-move) to add a column."""
import sqlalchemy as sa
from alembic import op

revision = "0002_test_extra"
down_revision = "{head}"
branch_labels = None
depends_on = None


def _recreate():
    # SQLite: force the copy-and-move that would cascade-delete child rows with foreign keys ON.
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade():
    with op.batch_alter_table("circuit", recreate=_recreate()) as batch:
        batch.add_column(sa.Column("test_extra", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("circuit", recreate=_recreate()) as batch:
        batch.drop_column("test_extra")
'''


@pytest.fixture
def newer_code(tmp_path: Path) -> Path:
    """A copy of the migrations with one more revision: code whose head is ahead of today's databases."""
    folder = tmp_path / "migrations_next"
    shutil.copytree(db.MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "0002_test_extra.py").write_text(_EXTRA_REVISION.format(head=head_revision()))
    return folder
