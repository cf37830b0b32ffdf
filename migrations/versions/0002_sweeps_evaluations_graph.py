"""Sweeps and their jobs, kept evaluations, circuit groups, run heartbeats and job keys, the kept-edge index.

- ``sweep`` and ``sweep_job``: a research grid launched as one command, each configuration by its job key.
- ``run``: ``job_key`` (what a sweep deduplicates by), ``heartbeat_at`` (a run whose worker stopped renewing it is
  marked ``lost``, a new status) and ``sweep_id``.
- ``evaluation``: every ``circuits evaluate`` result, by the key of what determines it.
- ``circuit.group_name``: circuits found together to be compared as one (a stability study's resamples).
- ``circuit.n_components``, ``node_mass``, ``edge_mass`` and ``node.share``, ``edge.share``: what catalog-wide
  similarity needs of each circuit and each kept key (``catalog.similarity``), computed here for the circuits
  already stored.
- ``ix_edge_kept_src_dst_input``: kept edges by their endpoints across circuits, with their shares (which circuits
  contain these edges, which are most like this one).

Existing runs keep their statuses and get no key or heartbeat; existing circuits get no group, and their summary
columns from their own kept nodes and edges.

Revision ID: 0002_sweeps_evaluations_graph
Revises: 0001_initial
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002_sweeps_evaluations_graph"
down_revision: Union[str, None] = "0001_initial"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD_STATUSES = "status IN ('running', 'succeeded', 'failed', 'interrupted')"
NEW_STATUSES = "status IN ('running', 'succeeded', 'failed', 'interrupted', 'lost')"


def upgrade() -> None:
    op.create_table(
        "sweep",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep")),
        sa.UniqueConstraint("name", name=op.f("uq_sweep_name")),
    )
    op.create_table(
        "sweep_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("job_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')",
                           name=op.f("ck_sweep_job_status")),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_sweep_job_run_id_run"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["sweep_id"], ["sweep.id"], name=op.f("fk_sweep_job_sweep_id_sweep"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep_job")),
        sa.UniqueConstraint("sweep_id", "job_key", name=op.f("uq_sweep_job_sweep_id_job_key")),
    )
    op.create_index(op.f("ix_sweep_job_job_key"), "sweep_job", ["job_key"], unique=False)
    op.create_table(
        "evaluation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("circuit_id", sa.Integer(), nullable=False),
        sa.Column("eval_key", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("task_name", sa.String(length=200), nullable=False),
        sa.Column("dataset_hash", sa.String(length=128), nullable=True),
        sa.Column("metric", sa.String(length=200), nullable=False),
        sa.Column("ablation", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["circuit_id"], ["circuit.id"], name=op.f("fk_evaluation_circuit_id_circuit"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation")),
        sa.UniqueConstraint("eval_key", name=op.f("uq_evaluation_eval_key")),
    )
    op.create_index(op.f("ix_evaluation_circuit_id"), "evaluation", ["circuit_id"], unique=False)
    with op.batch_alter_table("circuit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("n_components", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("node_mass", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("edge_mass", sa.Double(), nullable=True))
        batch_op.create_index(batch_op.f("ix_circuit_group_name"), ["group_name"], unique=False)
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.add_column(sa.Column("share", sa.Double(), nullable=True))
    with op.batch_alter_table("edge", schema=None) as batch_op:
        batch_op.add_column(sa.Column("share", sa.Double(), nullable=True))
    fill_summaries()
    op.create_index("ix_edge_kept_src_dst_input", "edge", ["src", "dst", "input", "circuit_id", "share"],
                    unique=False, sqlite_where=sa.text("kept = 1"), postgresql_where=sa.text("kept = true"))
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("sweep_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_run_job_key"), ["job_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_run_sweep_id"), ["sweep_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_run_sweep_id_sweep"), "sweep", ["sweep_id"], ["id"],
                                    ondelete="SET NULL")
        batch_op.drop_constraint(batch_op.f("ck_run_status"), type_="check")
        batch_op.create_check_constraint("status", NEW_STATUSES)


def fill_summaries() -> None:
    """The summary columns of the circuits already stored, as ``catalog.circuits.save_circuit`` computes them for
    new ones: kept heads and MLPs, and the total |score| of the kept components and edges, NULL where one of them
    has no finite score (a NULL score: unscored or non-finite)."""
    kept = "kept = true" if op.get_bind().dialect.name == "postgresql" else "kept = 1"
    components = f"{kept} AND kind IN ('head', 'mlp')"
    op.execute(f"""
        UPDATE circuit SET
          n_components = (SELECT count(*) FROM node WHERE node.circuit_id = circuit.id AND {components}),
          node_mass = CASE WHEN EXISTS (SELECT 1 FROM node WHERE node.circuit_id = circuit.id AND {components}
                                        AND score IS NULL) THEN NULL
                      ELSE (SELECT sum(abs(score)) FROM node WHERE node.circuit_id = circuit.id AND {components}) END,
          edge_mass = CASE WHEN EXISTS (SELECT 1 FROM edge WHERE edge.circuit_id = circuit.id AND {kept}
                                        AND score IS NULL) THEN NULL
                      ELSE (SELECT sum(abs(score)) FROM edge WHERE edge.circuit_id = circuit.id AND {kept}) END
    """)
    # Each kept key's share: |score| / its circuit's mass, or 1/n where the mass is NULL or 0 (catalog.similarity).
    for table, total, count, where in (("node", "node_mass", "n_components", components),
                                       ("edge", "edge_mass", "n_edges", kept)):
        op.execute(f"""
            UPDATE {table} SET share = (
              SELECT CASE WHEN c.{total} IS NULL OR c.{total} <= 0 OR {table}.score IS NULL THEN 1.0 / c.{count}
                          ELSE abs({table}.score) / c.{total} END
              FROM circuit c WHERE c.id = {table}.circuit_id)
            WHERE {where}
        """)


def downgrade() -> None:
    op.execute("UPDATE run SET status = 'interrupted' WHERE status = 'lost'")
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_run_status"), type_="check")
        batch_op.create_check_constraint("status", OLD_STATUSES)
        batch_op.drop_constraint(batch_op.f("fk_run_sweep_id_sweep"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_run_sweep_id"))
        batch_op.drop_index(batch_op.f("ix_run_job_key"))
        batch_op.drop_column("sweep_id")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("job_key")
    op.drop_index("ix_edge_kept_src_dst_input", table_name="edge",
                  sqlite_where=sa.text("kept = 1"), postgresql_where=sa.text("kept = true"))
    for table in ("edge", "node"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("share")
    with op.batch_alter_table("circuit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_circuit_group_name"))
        batch_op.drop_column("edge_mass")
        batch_op.drop_column("node_mass")
        batch_op.drop_column("n_components")
        batch_op.drop_column("group_name")
    op.drop_index(op.f("ix_evaluation_circuit_id"), table_name="evaluation")
    op.drop_table("evaluation")
    op.drop_index(op.f("ix_sweep_job_job_key"), table_name="sweep_job")
    op.drop_table("sweep_job")
    op.drop_table("sweep")
