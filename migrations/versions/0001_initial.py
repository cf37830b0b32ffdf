"""Initial schema: models, tasks, datasets, runs, circuits, nodes, edges.

JSON columns are ``catalog.tables.SafeJSON`` in the models (nan-safe on write); in the database they are plain
JSON, so the migration declares ``sa.JSON``.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26

A migration that moves data defines its own frozen copies of the tables it touches; never import
catalog.tables here, which changes after this file is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = '0001_initial'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('model',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=1000), nullable=True),
    sa.Column('weights_hash', sa.String(length=128), nullable=True),
    sa.Column('architecture', sa.String(length=200), nullable=True),
    sa.Column('n_layers', sa.Integer(), nullable=True),
    sa.Column('n_heads', sa.Integer(), nullable=True),
    sa.Column('d_model', sa.Integer(), nullable=True),
    sa.Column('d_head', sa.Integer(), nullable=True),
    sa.Column('d_mlp', sa.Integer(), nullable=True),
    sa.Column('n_ctx', sa.Integer(), nullable=True),
    sa.Column('d_vocab', sa.Integer(), nullable=True),
    sa.Column('versions', sa.JSON(), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model')),
    sa.UniqueConstraint('name', name=op.f('uq_model_name'))
    )
    op.create_table('task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task')),
    sa.UniqueConstraint('name', name=op.f('uq_task_name'))
    )
    op.create_table('dataset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=128), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('corruption', sa.String(length=200), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('seq_len', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_dataset_task_id_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset')),
    sa.UniqueConstraint('task_id', 'content_hash', name=op.f('uq_dataset_task_id_content_hash'))
    )
    op.create_table('run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=200), nullable=False),
    sa.Column('metric', sa.String(length=200), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('device', sa.String(length=64), nullable=True),
    sa.Column('dtype', sa.String(length=32), nullable=True),
    sa.Column('code_version', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('model_snapshot', sa.JSON(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('dataset_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'interrupted')", name=op.f('ck_run_status')),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], name=op.f('fk_run_dataset_id_dataset'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], name=op.f('fk_run_model_id_model'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_run_task_id_task'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run'))
    )
    op.create_index(op.f('ix_run_model_id'), 'run', ['model_id'], unique=False)
    op.create_index(op.f('ix_run_status'), 'run', ['status'], unique=False)

    op.create_table('circuit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('citation', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('method', sa.String(length=200), nullable=True),
    sa.Column('threshold', sa.Double(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('performance', sa.JSON(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('edges_known', sa.Boolean(), nullable=False),
    sa.Column('n_nodes', sa.Integer(), nullable=False),
    sa.Column('n_edges', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("source IN ('discovered', 'published', 'imported')", name=op.f('ck_circuit_source')),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], name=op.f('fk_circuit_model_id_model'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_circuit_run_id_run'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_circuit_task_id_task'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_circuit')),
    sa.UniqueConstraint('name', name=op.f('uq_circuit_name'))
    )
    op.create_index(op.f('ix_circuit_model_id'), 'circuit', ['model_id'], unique=False)
    op.create_index(op.f('ix_circuit_run_id'), 'circuit', ['run_id'], unique=False)
    op.create_index(op.f('ix_circuit_task_id'), 'circuit', ['task_id'], unique=False)

    op.create_table('edge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('circuit_id', sa.Integer(), nullable=False),
    sa.Column('src', sa.String(length=32), nullable=False),
    sa.Column('dst', sa.String(length=32), nullable=False),
    sa.Column('input', sa.String(length=1), nullable=False),
    sa.Column('score', sa.Double(), nullable=True),
    sa.Column('score_kind', sa.SmallInteger(), nullable=True),
    sa.Column('kept', sa.Boolean(), nullable=False),
    sa.CheckConstraint("input IN ('', 'q', 'k', 'v')", name=op.f('ck_edge_input')),
    sa.ForeignKeyConstraint(['circuit_id'], ['circuit.id'], name=op.f('fk_edge_circuit_id_circuit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_edge')),
    sa.UniqueConstraint('circuit_id', 'src', 'dst', 'input', name=op.f('uq_edge_circuit_id_src_dst_input'))
    )
    op.create_index('ix_edge_circuit_id_dst_src', 'edge', ['circuit_id', 'dst', 'src'], unique=False)
    op.create_index('ix_edge_circuit_id_kept', 'edge', ['circuit_id'], unique=False,
                    sqlite_where=sa.text('kept = 1'), postgresql_where=sa.text('kept = true'))

    op.create_table('node',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('circuit_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('layer', sa.Integer(), nullable=True),
    sa.Column('head', sa.Integer(), nullable=True),
    sa.Column('score', sa.Double(), nullable=True),
    sa.Column('score_kind', sa.SmallInteger(), nullable=True),
    sa.Column('kept', sa.Boolean(), nullable=False),
    sa.Column('role', sa.String(length=200), nullable=True),
    sa.Column('role_score', sa.Double(), nullable=True),
    sa.Column('role_score_kind', sa.SmallInteger(), nullable=True),
    sa.Column('role_source', sa.String(length=200), nullable=True),
    sa.Column('role_note', sa.Text(), nullable=True),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['circuit_id'], ['circuit.id'], name=op.f('fk_node_circuit_id_circuit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_node')),
    sa.UniqueConstraint('circuit_id', 'key', name=op.f('uq_node_circuit_id_key'))
    )
    op.create_index(op.f('ix_node_key'), 'node', ['key'], unique=False)



def downgrade() -> None:
    op.drop_index(op.f('ix_node_key'), table_name='node')

    op.drop_table('node')
    op.drop_index('ix_edge_circuit_id_kept', table_name='edge')
    op.drop_index('ix_edge_circuit_id_dst_src', table_name='edge')

    op.drop_table('edge')
    op.drop_index(op.f('ix_circuit_task_id'), table_name='circuit')
    op.drop_index(op.f('ix_circuit_run_id'), table_name='circuit')
    op.drop_index(op.f('ix_circuit_model_id'), table_name='circuit')

    op.drop_table('circuit')
    op.drop_index(op.f('ix_run_status'), table_name='run')
    op.drop_index(op.f('ix_run_model_id'), table_name='run')

    op.drop_table('run')
    op.drop_table('dataset')
    op.drop_table('task')
    op.drop_table('model')
