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


def _populate_0001(url: str) -> None:
    """Rows as a 0001 catalog holds them, written with plain SQL (today's models have columns 0001 lacks)."""
    from sqlalchemy import text

    raw = create_engine(to_url(url))
    with raw.begin() as conn:
        conn.execute(text("INSERT INTO model (id, name, versions, flags) VALUES (1, 'toy', '{}', '{}')"))
        conn.execute(text("INSERT INTO task (id, name) VALUES (1, 'digits')"))
        conn.execute(text("INSERT INTO run (id, method, settings, started_at, status, model_snapshot, model_id, "
                          "task_id) VALUES (1, 'acdc', '{\"threshold\": 0.01}', '2026-11-26 10:00:00', 'failed', "
                          "'{}', 1, 1)"))
        conn.execute(text("INSERT INTO circuit (id, name, model_id, task_id, source, performance, metadata, "
                          "edges_known, n_nodes, n_edges, created_at, run_id) VALUES (1, 'old', 1, 1, 'discovered', "
                          "'{}', '{}', true, 3, 2, '2026-11-26 10:00:00', 1)"))
        for i, (key, kind) in enumerate([("embed", "embed"), ("a0.1", "head"), ("logits", "logits")]):
            conn.execute(text("INSERT INTO node (id, circuit_id, key, kind, kept, attributes) VALUES "
                              f"({i + 1}, 1, '{key}', '{kind}', true, '{{}}')"))
        for i, (src, dst, inp, kept) in enumerate([("embed", "a0.1", "q", True), ("a0.1", "logits", "", True),
                                                   ("embed", "logits", "", False)]):
            conn.execute(text("INSERT INTO edge (id, circuit_id, src, dst, input, score, score_kind, kept) VALUES "
                              f"({i + 1}, 1, '{src}', '{dst}', '{inp}', 0.5, 0, {str(kept).lower()})"))
        conn.execute(text("INSERT INTO circuit (id, name, model_id, source, performance, metadata, edges_known, "
                          "n_nodes, n_edges, created_at) VALUES (2, 'nodes-only', 1, 'published', '{}', '{}', false, "
                          "2, 0, '2026-11-26 10:00:00')"))
        for i, (key, kind, score) in enumerate([("a0.0", "head", -2.0), ("m0", "mlp", 1.0), ("m1", "mlp", 9.0)]):
            conn.execute(text("INSERT INTO node (id, circuit_id, key, kind, score, kept, attributes) VALUES "
                              f"({i + 4}, 2, '{key}', '{kind}', {score}, {'false' if key == 'm1' else 'true'}, '{{}}')"))
    raw.dispose()


def test_upgrading_a_populated_0001_catalog_keeps_its_data(db_url: str) -> None:
    from sqlalchemy import text

    upgrade_schema(db_url, "0001_initial")
    _populate_0001(db_url)
    before, after = upgrade_schema(db_url)
    assert (before.revision, after.revision) == ("0001_initial", head_revision())
    assert _diff(db_url) == []
    engine = connect(db_url, mode="read")
    with session_scope(engine, read_only=True) as s:
        old = queries.get_circuit(s, "old")
        [run] = queries.list_runs(s)
    engine.dispose()
    assert [e.key for e in old.kept_edges] == ["embed->a0.1.q", "a0.1->logits"] and len(old.edges) == 3
    assert (run.status, run.settings) == ("failed", {"threshold": 0.01})
    raw = create_engine(to_url(db_url))
    with raw.begin() as conn:
        conn.execute(text("UPDATE run SET status = 'lost', heartbeat_at = '2026-11-29 10:00:00' WHERE id = 1"))
        conn.execute(text("INSERT INTO sweep (id, name, spec, created_at) VALUES (1, 's', '{}', '2026-11-29')"))
        conn.execute(text("INSERT INTO evaluation (circuit_id, eval_key, model_name, task_name, metric, ablation, "
                          "level, settings, results, created_at) VALUES (1, 'k', 'toy', 'digits', 'logit-diff', "
                          "'mean', 'edges', '{}', '{}', '2026-11-29')"))
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("edge")}
    raw.dispose()
    assert "ix_edge_kept_src_dst_input" in indexes
    with raw.connect() as conn:  # the similarity summaries are filled in, as save_circuit writes them
        summaries = conn.execute(text("SELECT name, n_components, node_mass, edge_mass FROM circuit ORDER BY id"))
        assert [tuple(r) for r in summaries] == [("old", 1, None, 1.0), ("nodes-only", 2, 3.0, None)]
        node_shares = conn.execute(text("SELECT key, share FROM node ORDER BY id"))
        assert [tuple(r) for r in node_shares] == [("embed", None), ("a0.1", 1.0), ("logits", None),
                                                   ("a0.0", 2 / 3), ("m0", 1 / 3), ("m1", None)]
        edge_shares = conn.execute(text("SELECT share FROM edge ORDER BY id")).scalars().all()
        assert edge_shares == [0.5, 0.5, None]  # two kept edges of 0.5; the dropped one has no share
    downgrade_schema(db_url, "0001_initial")  # and back: a lost run becomes interrupted, the rest stays
    raw = create_engine(to_url(db_url))
    with raw.connect() as conn:
        assert conn.execute(text("SELECT status FROM run")).scalars().all() == ["interrupted"]
        assert conn.execute(text("SELECT count(*) FROM edge")).scalar() == 3
        assert not {"sweep", "sweep_job", "evaluation"} & set(inspect(conn).get_table_names())
    raw.dispose()


def test_0003_swaps_the_node_key_index_for_the_kept_node_index_on_a_populated_catalog(db_url: str, make_circuit) -> None:
    from catalog.search import similar

    def node_indexes() -> set[str]:
        raw = create_engine(to_url(db_url))
        with raw.connect() as conn:
            names = {ix["name"] for ix in inspect(conn).get_indexes("node")}
        raw.dispose()
        return names

    engine = connect(db_url)
    with session_scope(engine) as s:
        queries.save_circuit(s, make_circuit("first"))
        queries.save_circuit(s, make_circuit("second"))
    engine.dispose()
    assert {"ix_node_kept_key"} <= node_indexes() and "ix_node_key" not in node_indexes()
    downgrade_schema(db_url, "0002_sweeps_evaluations_graph")  # the plain index on key comes back
    assert "ix_node_kept_key" not in node_indexes() and "ix_node_key" in node_indexes()
    upgrade_schema(db_url)
    assert "ix_node_kept_key" in node_indexes() and "ix_node_key" not in node_indexes() and _diff(db_url) == []
    engine = connect(db_url, mode="read")
    with session_scope(engine, read_only=True) as s:
        [found] = similar(s, "first", level="nodes").circuits
    engine.dispose()
    assert (found.name, found.shared, found.jaccard) == ("second", 3, 1.0)  # a0.1, a1.0, m1
