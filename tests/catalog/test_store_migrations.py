"""Covers: migrations match the models (no autogenerate diff), round trips, in-code config and alembic.ini."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from catalog import queries
from catalog.db import (
    VERSION_TABLE,
    connect,
    downgrade_schema,
    head_revision,
    schema_state,
    session_scope,
    to_url,
    upgrade_schema,
)
from catalog.tables import CATALOG_TABLES, Base

REPO = Path(__file__).resolve().parents[2]


def _diff(url: str) -> list:
    raw = create_engine(to_url(url))
    try:
        with raw.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        raw.dispose()


def _tables(url: str) -> set[str]:
    raw = create_engine(to_url(url))
    try:
        with raw.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        raw.dispose()


def test_upgrade_head_on_an_empty_database_then_autogenerate_finds_no_diff(db_url: str) -> None:
    before, after = upgrade_schema(db_url)
    assert (before.status, after.revision) == ("empty", head_revision())
    assert _diff(db_url) == []
    connect(db_url).dispose()  # a migrated database opens without complaint


def test_the_schema_connect_creates_also_matches_the_models(db_url: str) -> None:
    connect(db_url).dispose()
    assert _diff(db_url) == []


def test_downgrade_to_base_and_upgrade_again_round_trips(db_url: str, make_circuit) -> None:
    upgrade_schema(db_url)
    engine = connect(db_url)
    with session_scope(engine) as s:
        queries.save_circuit(s, make_circuit())
    engine.dispose()
    downgrade_schema(db_url, "base")
    assert not _tables(db_url) & set(CATALOG_TABLES)
    assert schema_state(db_url).status == "empty"
    upgrade_schema(db_url)
    assert _diff(db_url) == []
    engine = connect(db_url)
    with session_scope(engine) as s:
        assert queries.list_circuits(s) == []
    engine.dispose()


def test_migrations_run_from_any_directory_and_with_percent_in_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no alembic.ini, no migrations/ folder here
    url = f"sqlite:///{tmp_path / '100%_done.db'}"
    _, after = upgrade_schema(url)
    assert after.status == "current"
    assert _diff(url) == []


def test_the_developers_alembic_ini_points_at_the_same_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    config = Config(str(REPO / "alembic.ini"), cmd_opts=argparse.Namespace(x=[f"db={url}"]))
    command.upgrade(config, "head")
    state = schema_state(url)
    assert (state.revision, state.status) == (head_revision(), "current")
    assert VERSION_TABLE in _tables(url) and "alembic_version" not in _tables(url)
