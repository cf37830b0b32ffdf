"""The kept-node index: kept heads and MLPs by key across circuits, covering the circuit and the share.

Node-level ``similar`` joins the compared circuit's kept keys with every circuit's kept nodes. Through the plain
index on ``node.key`` each match cost a read of the table row (for ``kept`` and ``share``); over 10,000 circuits
that share most of GPT-2's heads this took 3.3 s on SQLite against 0.7 s with this index
(``benchmarks/catalog_bench.py``). Every query that looks nodes up by key across circuits asks for kept ones, so
this index replaces the plain one (with both, SQLite's planner chose the plain one).

Revision ID: 0003_kept_node_index
Revises: 0002_sweeps_evaluations_graph
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003_kept_node_index"
down_revision: Union[str, None] = "0002_sweeps_evaluations_graph"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.drop_index("ix_node_key", table_name="node")
    op.create_index("ix_node_kept_key", "node", ["key", "circuit_id", "share"], unique=False,
                    sqlite_where=sa.text("kept = 1"), postgresql_where=sa.text("kept = true"))


def downgrade() -> None:
    op.drop_index("ix_node_kept_key", table_name="node", sqlite_where=sa.text("kept = 1"),
                  postgresql_where=sa.text("kept = true"))
    op.create_index("ix_node_key", "node", ["key"], unique=False)
