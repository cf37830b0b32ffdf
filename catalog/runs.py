"""Discovery runs, from ``running`` to ``succeeded``/``failed``/``interrupted``, and the one place a
``DiscoveryResult`` becomes rows (``save_result``).

Lifecycle, with the caller owning each session::

    with session_scope(engine) as s:
        run = start_run(s, config, model_spec, dataset_spec, code_version)
    result = discover(...)                       # minutes or hours, no transaction open
    with session_scope(engine) as s:
        save_result(s, run.id, result, "ioi-eap")   # circuit + every scored edge + run succeeded, atomically
    # on an error instead: finish_run(s, run.id, "failed", error=one_line)

``catalog.Catalog`` does exactly this bookkeeping for the run pipeline (``discovery.pipeline``). A circuit is
visible to readers only once its transaction commits, so nobody sees a half-written one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from catalog.circuits import get_or_create, model_row, save_circuit, task_row
from catalog.errors import CatalogError, InvalidCircuit, NotFound
from catalog.records import RUN_STATUSES, CircuitRecord, EdgeRecord, NewCircuit, NodeRecord, RunRecord
from catalog.tables import CircuitRow, DatasetRow, ModelRow, RunRow, utc_now
from discovery.config import RunConfig
from discovery.graph import EMBED, Granularity, logits
from discovery.methods import get_method
from discovery.results import DatasetSpec, DiscoveryResult, ModelSpec

FINAL_STATUSES = tuple(s for s in RUN_STATUSES if s != "running")
_SIZES = ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "n_ctx", "d_vocab", "weights_hash")


def start_run(
    session: Session,
    config: RunConfig,
    model: ModelSpec,
    dataset: Optional[DatasetSpec] = None,
    code_version: Optional[str] = None,
    *,
    job_key: Optional[str] = None,
    sweep_id: Optional[int] = None,
) -> RunRecord:
    """Record a run as ``running`` with its whole configuration and a first heartbeat. The model is matched by
    name; its sizes and weights hash must agree with what the catalog already holds under that name (else
    ``CatalogError``: a different model needs another name). The spec's library versions and flags are kept with
    the run, as they were for it; so is what the dataset's correctness filter kept. ``job_key``
    (``discovery.config.job_key``) is what sweeps deduplicate by."""
    if dataset is not None and dataset.task != config.task:
        raise CatalogError(f"run's task {config.task!r} differs from its dataset's task {dataset.task!r}")
    settings = config.as_dict()
    if dataset is not None and dataset.filter is not None:
        settings["filter_kept"] = {"kept": dataset.size, "of": dataset.drawn}
    if dataset is not None and dataset.resample is not None:
        settings["resample"] = dataset.resample  # the bootstrap seed of a stability study's run
    run = RunRow(
        method=config.method,
        metric=config.metric,
        settings=settings,
        seed=config.seed,
        device=config.device,
        dtype=config.dtype,
        code_version=code_version,
        started_at=utc_now(),
        heartbeat_at=utc_now(),
        status="running",
        job_key=job_key,
        sweep_id=sweep_id,
        model_snapshot={"source": model.source, "versions": dict(model.versions), "flags": dict(model.flags)},
        model=_model_from_spec(session, model),
        task=task_row(session, config.task),
        dataset=_dataset_row(session, dataset) if dataset else None,
    )
    session.add(run)
    session.flush()
    return _run_record(run, ())


def finish_run(session: Session, run_id: int, status: str, error: Optional[str] = None) -> RunRecord:
    """End a running run. Finishing it again with the same status is a no-op; with another, an error."""
    if status not in FINAL_STATUSES:
        raise CatalogError(f"a run finishes as one of {', '.join(FINAL_STATUSES)}, not {status!r}")
    run = _run_row(session, run_id)
    if run.status != "running" and run.status != status:
        raise CatalogError(f"run {run_id} already finished as {run.status}")
    if run.status == "running":
        run.status, run.error, run.finished_at = status, error, utc_now()
        session.flush()
    return get_run(session, run_id)


def save_result(session: Session, run_id: int, result: DiscoveryResult, name: str) -> CircuitRecord:
    """Store what a run found as the circuit ``name`` and mark the run succeeded, in the caller's transaction.

    Edge-level results keep every scored edge (kept or not, so other thresholds can be cut later); their
    nodes are those the kept edges touch plus embed and logits (kept), and any other node the method scored
    (not kept). Node-level results store their scored nodes with kept flags, and ``edges_known`` False.
    """
    run = _run_row(session, run_id)
    if run.status != "running":
        raise CatalogError(f"run {run_id} already finished as {run.status}; start a new run to save a result")
    if result.model.name != run.model.name or result.method != run.method:
        raise InvalidCircuit(
            f"result of {result.method} on {result.model.name} does not belong to run {run_id} "
            f"({run.method} on {run.model.name})"
        )
    record = save_circuit(session, _new_circuit(result, name, run.task.name if run.task else None), run_id)
    if run.dataset is None and result.dataset is not None:
        run.dataset = _dataset_row(session, result.dataset)
    run.status, run.finished_at = "succeeded", utc_now()
    session.flush()
    return record


def _new_circuit(result: DiscoveryResult, name: str, task: Optional[str]) -> NewCircuit:
    edge_level = result.granularity is not Granularity.NODES
    scored = {s.node.key: s for s in result.nodes}
    if edge_level:
        kept = {EMBED.key, logits(result.model.n_layers).key}
        kept |= {n.key for e in result.edges if e.kept for n in (e.edge.src, e.edge.dst)}
        nodes = [_node(key, scored.get(key), True) for key in kept]
        nodes += [_node(key, s, False) for key, s in scored.items() if key not in kept]
        edges = tuple(EdgeRecord.from_edge(e.edge, e.score, e.kept) for e in result.edges)
    else:
        nodes = [_node(key, s, s.kept) for key, s in scored.items()]
        edges = ()
    return NewCircuit(
        name=name,
        model=result.model.name,
        task=task or result.dataset.task,
        source="discovered",
        nodes=tuple(nodes),
        edges=edges,
        edges_known=edge_level,
        method=result.method,
        threshold=result.threshold,
        performance=dict(result.performance),
        metadata={
            "metric": result.metric,
            "granularity": result.granularity.value,
            "config": result.config.as_dict(),
            "config_key": result.config.key,
            "score_sign": get_method(result.method).score_sign,
            "params": dict(result.params),
            "dataset_hash": result.dataset.content_hash,
            "extras": dict(result.extras),
            # The shape travels with the circuit, so exports (EAP-IG's cfg) work for any model, toy included.
            "model_shape": {"n_layers": result.model.n_layers, "n_heads": result.model.n_heads,
                            "d_model": result.model.d_model},
            **({"resample": result.dataset.resample} if result.dataset.resample is not None else {}),
        },
    )


def _node(key: str, scored: Any, kept: bool) -> NodeRecord:
    if scored is None:
        return NodeRecord.from_key(key, kept=kept)
    return NodeRecord.from_key(key, score=scored.score, kept=kept, attributes=dict(scored.attributes))


def heartbeat(session: Session, run_id: int) -> None:
    """Renew a running run's heartbeat (its worker is alive); a run that finished is left as it is."""
    session.execute(update(RunRow).where(RunRow.id == run_id, RunRow.status == "running")
                    .values(heartbeat_at=utc_now()))


def mark_lost(session: Session, silent_for: dt.timedelta) -> list[int]:
    """Mark ``lost`` every running run whose heartbeat (or start, for runs from before heartbeats) is older than
    ``silent_for``: its worker was killed or its node lost without saying how the run ended. Returns their ids."""
    cutoff = utc_now() - silent_for
    stale = select(RunRow.id).where(RunRow.status == "running",
                                    func.coalesce(RunRow.heartbeat_at, RunRow.started_at) < cutoff)
    ids = list(session.scalars(stale))
    if ids:
        session.execute(update(RunRow).where(RunRow.id.in_(ids), RunRow.status == "running").values(
            status="lost", finished_at=utc_now(), error=f"no heartbeat for {silent_for.total_seconds():.0f} s"))
    return ids


def find_succeeded_run(session: Session, job_key: str) -> Optional[RunRecord]:
    """The latest run with this job key that succeeded (and so saved its circuit), or None."""
    run = session.scalars(select(RunRow).where(RunRow.job_key == job_key, RunRow.status == "succeeded")
                          .order_by(RunRow.id.desc())).first()
    return None if run is None else _run_record(run, circuit_names_by_run(session, [run.id]).get(run.id, ()))


def fail_run(session: Session, run_id: int, status: str, error: str) -> None:
    """Mark a still-running run failed or interrupted (a run that already finished is left as it is)."""
    if _run_row(session, run_id).status == "running":
        finish_run(session, run_id, status, error)


# ---------------------------------------------------------------------------------------------------------
# Reading


def find_run(session: Session, run_id: int) -> Optional[RunRecord]:
    run = session.get(RunRow, run_id)
    return None if run is None else _run_record(run, circuit_names_by_run(session, [run.id]).get(run.id, ()))


def get_run(session: Session, run_id: int) -> RunRecord:
    record = find_run(session, run_id)
    if record is None:
        raise NotFound(f"no run {run_id} in the catalog (see `circuits runs`)")
    return record


def list_runs(session: Session, status: Optional[str] = None) -> list[RunRecord]:
    """Runs, oldest first, optionally only those with one status."""
    query = select(RunRow).order_by(RunRow.id)
    if status is not None:
        query = query.where(RunRow.status == status)
    runs = session.scalars(query).all()
    names = circuit_names_by_run(session, [r.id for r in runs])
    return [_run_record(r, names.get(r.id, ())) for r in runs]


def circuit_names_by_run(session: Session, run_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """The names of the circuits each of ``run_ids`` kept, in name order (runs that kept none are absent)."""
    names: dict[int, tuple[str, ...]] = {}
    if run_ids:
        query = select(CircuitRow.run_id, CircuitRow.name).where(CircuitRow.run_id.in_(run_ids)).order_by(CircuitRow.name)
        for run_id, name in session.execute(query):
            if run_id is not None:
                names[run_id] = names.get(run_id, ()) + (name,)
    return names


def _run_row(session: Session, run_id: int) -> RunRow:
    run = session.get(RunRow, run_id)
    if run is None:
        raise NotFound(f"no run {run_id} in the catalog (see `circuits runs`)")
    return run


def _run_record(run: RunRow, circuit_names: tuple[str, ...]) -> RunRecord:
    return RunRecord(
        id=run.id,
        method=run.method,
        metric=run.metric,
        model=run.model.name,
        task=run.task.name if run.task else None,
        status=run.status,
        settings=run.settings or {},
        seed=run.seed,
        device=run.device,
        dtype=run.dtype,
        code_version=run.code_version,
        started_at=run.started_at,
        finished_at=run.finished_at,
        error=run.error,
        dataset_hash=run.dataset.content_hash if run.dataset else None,
        circuit_names=circuit_names,
        job_key=run.job_key,
        heartbeat_at=run.heartbeat_at,
        sweep_id=run.sweep_id,
    )


# ---------------------------------------------------------------------------------------------------------
# Models and datasets from specs


def _model_from_spec(session: Session, spec: ModelSpec) -> ModelRow:
    """The model row for a spec: created, or filled in where the catalog knew only the name."""
    model = model_row(session, spec.name)
    for field in _SIZES:
        known, given = getattr(model, field), getattr(spec, field)
        if known is not None and given is not None and known != given:
            raise CatalogError(
                f"model {spec.name!r} is in the catalog with {field}={known}, this run has {given}: "
                "a different model needs another name"
            )
    for field in (*_SIZES, "source", "architecture"):
        if getattr(model, field) is None and getattr(spec, field) is not None:
            setattr(model, field, getattr(spec, field))
    if not model.versions:
        model.versions = dict(spec.versions)
    if not model.flags:
        model.flags = dict(spec.flags)
    session.flush()
    return model


def _dataset_row(session: Session, spec: DatasetSpec) -> DatasetRow:
    task = task_row(session, spec.task)
    values = {"size": spec.size, "corruption": spec.corruption, "seed": spec.seed, "seq_len": spec.seq_len}
    return get_or_create(session, DatasetRow, {"task_id": task.id, "content_hash": spec.content_hash}, values)
