"""The catalog's tables, as SQLAlchemy 2 typed models (``...Row`` classes). Rows never leave ``catalog/``: callers
get records (``catalog.records``).

Conventions kept by every table:

* Timestamps are naive UTC (``utc_now``), as Optuna stores them; the database's own clock and zone are unused.
* Scores may be nan or +-inf (attribution and patching produce them). SQLite turns a bound NaN into NULL, so a
  score is stored Optuna-style as a pair: ``<name>`` (the finite value, else NULL) and ``<name>_kind``
  (``ScoreKind``; NULL when there is no score at all). ``encode_score``/``decode_score`` are the only
  translation, and they round-trip on SQLite and PostgreSQL alike.
* JSON columns use ``SafeJSON``, which writes non-finite floats as ``{"$float": "nan"}`` (JSON has no literal
  for them, and PostgreSQL rejects the bare ``NaN`` Python's json module emits) and reads them back as floats.
* An edge's head input is ``''`` when the destination takes no q/k/v input, not NULL: SQL treats NULLs as
  distinct, so ``UNIQUE(circuit_id, src, dst, input)`` would not stop a duplicate ``a0.1->m3`` if it were NULL.
  Records show ``None``.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from discovery.jsonvalues import from_json, to_json

# Deterministic constraint names, so autogenerate and batch migrations on SQLite can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_LEN = 200
KEY_LEN = 32
KEY_HASH_LEN = 64  # a sha256 in hex


def utc_now() -> dt.datetime:
    """Naive UTC, the one timestamp convention of the catalog."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class ScoreKind(enum.IntEnum):
    FINITE = 0
    NAN = 1
    POS_INF = 2
    NEG_INF = 3


def encode_score(value: Optional[float]) -> tuple[Optional[float], Optional[int]]:
    """A score as (finite value or None, kind or None); None means no score. Kinds are plain ints for drivers."""
    if value is None:
        return None, None
    value = float(value)
    if math.isnan(value):
        return None, int(ScoreKind.NAN)
    if math.isinf(value):
        return None, int(ScoreKind.POS_INF if value > 0 else ScoreKind.NEG_INF)
    return value, int(ScoreKind.FINITE)


def decode_score(value: Optional[float], kind: Optional[int]) -> Optional[float]:
    if kind is None:
        return None
    if kind == ScoreKind.NAN:
        return math.nan
    if kind == ScoreKind.POS_INF:
        return math.inf
    if kind == ScoreKind.NEG_INF:
        return -math.inf
    return float(value) if value is not None else None


class SafeJSON(TypeDecorator[Any]):
    """JSON that round-trips nan and +-inf (see the module docstring)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else to_json(value, style="marker")

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else from_json(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ModelRow(Base):
    """A model as the catalog knows it. Published circuits may name a model with nothing else known yet;
    a run fills in the rest. ``name`` is what users type (``gpt2``), ``source`` the hub id or folder."""

    __tablename__ = "model"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    source: Mapped[Optional[str]] = mapped_column(String(1000))
    weights_hash: Mapped[Optional[str]] = mapped_column(String(128))
    architecture: Mapped[Optional[str]] = mapped_column(String(NAME_LEN))
    n_layers: Mapped[Optional[int]] = mapped_column(Integer)
    n_heads: Mapped[Optional[int]] = mapped_column(Integer)
    d_model: Mapped[Optional[int]] = mapped_column(Integer)
    d_head: Mapped[Optional[int]] = mapped_column(Integer)
    d_mlp: Mapped[Optional[int]] = mapped_column(Integer)
    n_ctx: Mapped[Optional[int]] = mapped_column(Integer)
    d_vocab: Mapped[Optional[int]] = mapped_column(Integer)
    versions: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    flags: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)


class TaskRow(Base):
    __tablename__ = "task"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    description: Mapped[Optional[str]] = mapped_column(Text)


class DatasetRow(Base):
    """A task's prompts, identified by the sha256 of their token ids (never Python's ``hash()``)."""

    __tablename__ = "dataset"
    __table_args__ = (UniqueConstraint("task_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(Integer)
    corruption: Mapped[str] = mapped_column(String(NAME_LEN))
    seed: Mapped[int] = mapped_column(Integer)
    seq_len: Mapped[Optional[int]] = mapped_column(Integer)

    task: Mapped[TaskRow] = relationship()


RUN_STATUS_CHECK = "status IN ('running', 'succeeded', 'failed', 'interrupted', 'lost')"


class RunRow(Base):
    """One discovery run. ``model_snapshot`` keeps the ModelSpec's library versions and flags as they were
    for this run, since the model row holds only the first-seen ones and they change what the scores mean."""

    __tablename__ = "run"
    __table_args__ = (CheckConstraint(RUN_STATUS_CHECK, name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    method: Mapped[str] = mapped_column(String(NAME_LEN))
    metric: Mapped[Optional[str]] = mapped_column(String(NAME_LEN))
    settings: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    seed: Mapped[Optional[int]] = mapped_column(Integer)
    device: Mapped[Optional[str]] = mapped_column(String(64))
    dtype: Mapped[Optional[str]] = mapped_column(String(32))
    code_version: Mapped[Optional[str]] = mapped_column(String(NAME_LEN))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)  # naive UTC
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)  # naive UTC
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    error: Mapped[Optional[str]] = mapped_column(Text)
    model_snapshot: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="RESTRICT"), index=True)
    task_id: Mapped[Optional[int]] = mapped_column(ForeignKey("task.id", ondelete="SET NULL"))
    dataset_id: Mapped[Optional[int]] = mapped_column(ForeignKey("dataset.id", ondelete="SET NULL"))
    # The job key: sha256 over the resolved configuration, the model's weights hash, the dataset's content hash
    # and the code version; a sweep skips a job whose key already succeeded (``catalog.sweeps``).
    job_key: Mapped[Optional[str]] = mapped_column(String(KEY_HASH_LEN), index=True)
    # Naive UTC; a running run's worker renews it, and a run whose heartbeat stopped is marked lost.
    heartbeat_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    sweep_id: Mapped[Optional[int]] = mapped_column(ForeignKey("sweep.id", ondelete="SET NULL"), index=True)

    model: Mapped[ModelRow] = relationship()
    task: Mapped[Optional[TaskRow]] = relationship()
    dataset: Mapped[Optional[DatasetRow]] = relationship()


CIRCUIT_SOURCE_CHECK = "source IN ('discovered', 'published', 'imported')"


class CircuitRow(Base):
    """A circuit. ``n_nodes``/``n_edges`` count its kept nodes and edges, stored at save time (circuits never
    change membership after) so listing a thousand circuits never scans millions of edge rows."""

    __tablename__ = "circuit"
    __table_args__ = (CheckConstraint(CIRCUIT_SOURCE_CHECK, name="source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="RESTRICT"), index=True)
    task_id: Mapped[Optional[int]] = mapped_column(ForeignKey("task.id", ondelete="SET NULL"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    citation: Mapped[Optional[str]] = mapped_column(Text)
    description: Mapped[Optional[str]] = mapped_column(Text)
    method: Mapped[Optional[str]] = mapped_column(String(NAME_LEN))
    threshold: Mapped[Optional[float]] = mapped_column(Double)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"), index=True)
    performance: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", SafeJSON, default=dict)
    edges_known: Mapped[bool] = mapped_column(Boolean)
    n_nodes: Mapped[int] = mapped_column(Integer, default=0)
    n_edges: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)  # naive UTC
    # Circuits found together to be compared as one (a stability study's resamples): the group's name.
    group_name: Mapped[Optional[str]] = mapped_column(String(NAME_LEN), index=True)
    # What catalog-wide similarity needs of every other circuit without reading its nodes or edges
    # (``catalog.similarity``): its kept heads and MLPs, and the total |score| of its kept components and edges
    # (NULL where one of them has no finite score: its items then weigh alike).
    n_components: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # as migration 0002 adds it
    node_mass: Mapped[Optional[float]] = mapped_column(Double)
    edge_mass: Mapped[Optional[float]] = mapped_column(Double)

    model: Mapped[ModelRow] = relationship()
    task: Mapped[Optional[TaskRow]] = relationship()


class NodeRow(Base):
    """A component of a circuit, by canonical key (``a9.1``); layer/head are NULL for embed and logits."""

    __tablename__ = "node"
    __table_args__ = (UniqueConstraint("circuit_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuit.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(KEY_LEN))  # found across circuits by KEPT_NODE_INDEX (below)
    kind: Mapped[str] = mapped_column(String(16))
    layer: Mapped[Optional[int]] = mapped_column(Integer)
    head: Mapped[Optional[int]] = mapped_column(Integer)
    score: Mapped[Optional[float]] = mapped_column(Double)
    score_kind: Mapped[Optional[int]] = mapped_column(SmallInteger)
    kept: Mapped[bool] = mapped_column(Boolean, default=True)
    role: Mapped[Optional[str]] = mapped_column(String(NAME_LEN))
    role_score: Mapped[Optional[float]] = mapped_column(Double)
    role_score_kind: Mapped[Optional[int]] = mapped_column(SmallInteger)
    role_source: Mapped[Optional[str]] = mapped_column(String(NAME_LEN))
    role_note: Mapped[Optional[str]] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    share: Mapped[Optional[float]] = mapped_column(Double)  # a kept head's or MLP's weight (catalog.similarity)


EDGE_INPUT_CHECK = "input IN ('', 'q', 'k', 'v')"


class EdgeRow(Base):
    """An edge of a circuit, kept or only scored. ``input`` is '' (no head input) or q/k/v: see the module doc."""

    __tablename__ = "edge"
    __table_args__ = (
        UniqueConstraint("circuit_id", "src", "dst", "input"),
        Index("ix_edge_circuit_id_dst_src", "circuit_id", "dst", "src"),
        # A discovered circuit keeps ~1% of its scored edges, and comparisons and `show` read only those: a
        # partial index over the kept ones finds them without scanning 30k rows, and costs little to maintain.
        Index("ix_edge_circuit_id_kept", "circuit_id", sqlite_where=text("kept = 1"),
              postgresql_where=text("kept = true")),
        CheckConstraint(EDGE_INPUT_CHECK, name="input"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuit.id", ondelete="CASCADE"))
    src: Mapped[str] = mapped_column(String(KEY_LEN))
    dst: Mapped[str] = mapped_column(String(KEY_LEN))
    input: Mapped[str] = mapped_column(String(1), default="")
    score: Mapped[Optional[float]] = mapped_column(Double)
    score_kind: Mapped[Optional[int]] = mapped_column(SmallInteger)
    kept: Mapped[bool] = mapped_column(Boolean)
    share: Mapped[Optional[float]] = mapped_column(Double)  # a kept edge's weight (catalog.similarity)


SWEEP_JOB_STATUS_CHECK = "status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')"


class SweepRow(Base):
    """A grid of discovery runs launched as one (``circuits sweep run SPEC``): its name and the spec it expands."""

    __tablename__ = "sweep"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)  # naive UTC


class SweepJobRow(Base):
    """One configuration of a sweep, by its job key; ``run_id`` is the run that did it (the last attempt)."""

    __tablename__ = "sweep_job"
    __table_args__ = (UniqueConstraint("sweep_id", "job_key"), CheckConstraint(SWEEP_JOB_STATUS_CHECK, name="status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweep.id", ondelete="CASCADE"))
    job_key: Mapped[str] = mapped_column(String(KEY_HASH_LEN), index=True)
    name: Mapped[Optional[str]] = mapped_column(String(NAME_LEN))  # the circuit's name
    config: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[Optional[str]] = mapped_column(Text)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)  # naive UTC


class EvaluationRow(Base):
    """One measurement of a circuit on a model and task (``circuits evaluate``), kept so that a question asked
    twice reads instead of rerunning. ``eval_key`` is sha256 over everything that determines the values (the
    circuit's content, model weights, dataset hash, metric, ablation, positions, level, code version)."""

    __tablename__ = "evaluation"

    id: Mapped[int] = mapped_column(primary_key=True)
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuit.id", ondelete="CASCADE"), index=True)
    eval_key: Mapped[str] = mapped_column(String(KEY_HASH_LEN), unique=True)
    model_name: Mapped[str] = mapped_column(String(NAME_LEN))
    task_name: Mapped[str] = mapped_column(String(NAME_LEN))
    dataset_hash: Mapped[Optional[str]] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(NAME_LEN))
    ablation: Mapped[str] = mapped_column(String(NAME_LEN))
    level: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)  # corruption, positions, n, seed, ...
    results: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)  # value, kept_fraction, faithfulness, ...
    code_version: Mapped[Optional[str]] = mapped_column(String(NAME_LEN))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)  # naive UTC


# Catalog-scale questions (which circuits hold these edges, which are most like this one) look kept edges up by
# their endpoints across every circuit: an index over exactly the kept ones, covering each edge's share so that
# weighted similarity never reads the table (migration 0002).
KEPT_EDGE_INDEX = Index("ix_edge_kept_src_dst_input", EdgeRow.src, EdgeRow.dst, EdgeRow.input, EdgeRow.circuit_id,
                        EdgeRow.share,
                        sqlite_where=text("kept = 1"), postgresql_where=text("kept = true"))

# The same for kept nodes (which circuits hold a9.1, which are most like this one at node level): by key, covering
# the circuit and the share, so that node-level similarity reads the index alone. It replaces a plain index on
# node.key (migration 0003), which SQLite's planner preferred, reading the table for every match.
KEPT_NODE_INDEX = Index("ix_node_kept_key", NodeRow.key, NodeRow.circuit_id, NodeRow.share,
                        sqlite_where=text("kept = 1"), postgresql_where=text("kept = true"))

CATALOG_TABLES = tuple(Base.metadata.tables)
