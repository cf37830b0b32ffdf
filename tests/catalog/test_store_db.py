"""Covers: connect (fresh init, paths, bad DBs, schema too old/new, real upgrade), SQLite settings, session_scope."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text

import catalog.db as db
from catalog import queries
from catalog.db import connect, head_revision, schema_state, session_scope, to_url
from catalog.errors import BadDatabase, CatalogError, NotFound, SchemaMismatch
from catalog.tables import Base, CircuitRow


def test_fresh_database_gets_the_schema_stamped_at_head(db_url: str) -> None:
    assert schema_state(db_url).status == "empty"
    connect(db_url).dispose()
    state = schema_state(db_url)
    assert (state.revision, state.status, state.has_tables) == (head_revision(), "current", True)
    connect(db_url).dispose()  # and opens again without change
    assert schema_state(db_url).revision == head_revision()


def test_a_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "sub dir" / "my catalog.db"
    path.parent.mkdir()
    engine = connect(str(path))
    engine.dispose()
    assert path.exists()
    assert to_url(str(path)).get_backend_name() == "sqlite"
    assert schema_state(f"sqlite:///{path}").status == "current"


def test_schema_state_of_a_missing_file_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    assert schema_state(str(path)).status == "empty"
    assert not path.exists()


def test_sqlite_connections_have_foreign_keys_wal_and_a_busy_timeout(sqlite_url: str) -> None:
    engine = connect(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_S * 1000
    engine.dispose()


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("foo://somewhere/db", "cannot use database URL foo://somewhere/db"),
        ("sqlite:", "not a database URL: 'sqlite:'"),
        ("   ", "no database given"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/nothing", "Connection refused"),
    ],
)
def test_bad_urls_raise_one_line_bad_database(url: str, fragment: str) -> None:
    with pytest.raises(BadDatabase) as err:
        connect(url)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(BadDatabase, match="unable to open database file"):
        connect(str(tmp_path))


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(BadDatabase, match="file is not a database") as err:
        connect(str(path))
    assert "\n" not in str(err.value)
    assert path.read_bytes() == before


def test_catalog_tables_without_a_version_are_refused_and_left_alone(db_url: str, fingerprint) -> None:
    raw = create_engine(to_url(db_url))
    Base.metadata.create_all(raw)
    raw.dispose()
    before = fingerprint(db_url)
    with pytest.raises(SchemaMismatch, match="no catalog schema version") as err:
        connect(db_url)
    assert "\n" not in str(err.value)
    assert fingerprint(db_url) == before


def _stamp(url: str, revision: str) -> None:
    raw = create_engine(to_url(url))
    with raw.begin() as conn:
        conn.execute(text(f"UPDATE {db.VERSION_TABLE} SET version_num = :r"), {"r": revision})
    raw.dispose()


def test_a_schema_newer_than_the_code_is_refused_and_left_alone(db_url: str, fingerprint) -> None:
    connect(db_url).dispose()
    _stamp(db_url, "9999_from_the_future")
    before = fingerprint(db_url)
    with pytest.raises(SchemaMismatch) as err:
        connect(db_url)
    message = str(err.value)
    assert "9999_from_the_future" in message and "the code is older than the database" in message
    assert "\n" not in message
    assert fingerprint(db_url) == before
    with pytest.raises(SchemaMismatch):
        db.upgrade_schema(db_url)  # an upgrade cannot go forward from an unknown revision either
    assert fingerprint(db_url) == before


def test_an_older_schema_names_the_upgrade_and_the_upgrade_keeps_every_row(
    db_url: str, newer_code: Path, make_circuit, fingerprint, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = connect(db_url)
    with session_scope(engine) as s:
        queries.save_circuit(s, make_circuit())
    engine.dispose()
    monkeypatch.setattr(db, "MIGRATIONS_DIR", str(newer_code))
    before = fingerprint(db_url)
    with pytest.raises(SchemaMismatch) as err:
        connect(db_url)
    shown = db.display(to_url(db_url))
    assert str(err.value) == (
        f"the catalog at {shown} has schema {before[2][0]}, older than this code's 0002_test_extra: "
        f"run `circuits db upgrade --db {shown}`"
    )
    assert fingerprint(db_url) == before

    old, new = db.upgrade_schema(db_url)
    assert (old.status, new.revision, new.status) == ("older", "0002_test_extra", "current")
    # The circuit table was copied and moved with foreign keys OFF: its nodes and edges survived.
    assert dict(fingerprint(db_url)[1]) == dict(before[1])
    engine = connect(db_url)
    with session_scope(engine) as s:
        assert len(queries.get_circuit(s, "tiny").edges) == 5
    engine.dispose()

    monkeypatch.undo()  # today's code, tomorrow's database
    with pytest.raises(SchemaMismatch, match="0002_test_extra, which this code"):
        connect(db_url)


def test_session_scope_commits_on_success(engine: Engine, make_circuit) -> None:
    with session_scope(engine) as s:
        queries.save_circuit(s, make_circuit())
    with session_scope(engine, read_only=True) as s:
        assert queries.count_circuits(s) == 1


def test_session_scope_rolls_back_on_any_exception(engine: Engine, make_circuit) -> None:
    def save_then_fail() -> None:
        with session_scope(engine) as s:
            queries.save_circuit(s, make_circuit())
            raise KeyError("boom")

    def save_then_delete_unknown() -> None:
        with session_scope(engine) as s:
            queries.save_circuit(s, make_circuit("other"))
            queries.delete_circuit(s, "no such circuit")

    with pytest.raises(KeyError):
        save_then_fail()
    with pytest.raises(NotFound):
        save_then_delete_unknown()
    with session_scope(engine, read_only=True) as s:
        assert queries.count_circuits(s) == 0


def test_session_scope_turns_database_errors_into_one_line(engine: Engine, make_circuit) -> None:
    with session_scope(engine) as s:
        queries.save_circuit(s, make_circuit())
    with session_scope(engine) as s:
        model_id = s.scalar(select(CircuitRow.model_id).where(CircuitRow.name == "tiny"))
    with pytest.raises(CatalogError) as err:
        with session_scope(engine) as s:
            s.add(CircuitRow(name="tiny", model_id=model_id, source="published", edges_known=False))
    message = str(err.value)
    assert message.startswith("the catalog refused a write that breaks its rules:") and "\n" not in message
    assert type(err.value.__cause__).__name__ == "IntegrityError"
