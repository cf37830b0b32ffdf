"""Kept evaluations: every measurement of a circuit (``circuits evaluate``, ``transfer``, ``dissociation``) is a row,
found again by the key of what determined it, so a question asked twice is read instead of run again.

The key (``evaluation_key``) is sha256 over the canonical JSON of: the circuit's content at the level measured
(``circuit_hash``: its kept heads and MLPs, or its kept edges; not its name, so a renamed or re-imported copy finds
the same figures), the model's weights hash, the dataset's *recipe* (task, number of prompts, seed, corruption,
correctness filter, bootstrap seed), the metric, the ablation, the positions ablated, the level, the dtype, the code
version, and the measurement (``kind``: the circuit itself, a random baseline, an ablation of shared nodes, ...)
with its parameters. The recipe stands in for the dataset's content hash because the prompts a correctness filter
keeps are only known after running the model on them; given the weights and the code, the recipe determines the
prompts, and the content hash found when the evaluation ran is kept on the row (``dataset_hash``). The device is
left out, as ``RunConfig.key`` leaves it out.

The caller owns the session; verbs as in ``catalog.queries``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.circuits import get_circuit_id
from catalog.compare import component_keys, edge_keys
from catalog.errors import InvalidCircuit
from catalog.records import CircuitLike, EvaluationRecord, NewEvaluation
from catalog.tables import CircuitRow, EvaluationRow, utc_now
from catalog.validate import check_text
from discovery.jsonvalues import to_json

EVALUATION_KINDS: tuple[str, ...] = ("circuit", "random", "ablate-shared", "curve", "lesion")


def _sha256(payload: Any) -> str:
    text = json.dumps(to_json(payload), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def circuit_hash(circuit: CircuitLike, level: str, extra_nodes: Sequence[str] = ()) -> str:
    """What an evaluation at ``level`` sees of a circuit: its kept heads and MLPs (plus ``extra_nodes``, kept
    alongside, e.g. every MLP), or its kept edges."""
    if level not in ("nodes", "edges"):
        raise InvalidCircuit(f"unknown level {level!r}: use nodes or edges")
    keys = edge_keys(circuit) if level == "edges" else component_keys(circuit) | set(extra_nodes)
    return keys_hash(keys, level)


def keys_hash(keys: Iterable[str], level: str) -> str:
    """The digest of a set of canonical node or edge keys (what ``circuit_hash`` hashes; also a lesion's set)."""
    return _sha256({"level": level, "keys": sorted(set(keys))})


def evaluation_key(*, circuit: str, weights_hash: Optional[str], dataset: Mapping[str, Any], metric: str,
                   ablation: str, positions: Optional[Sequence[int]], level: str, dtype: str, code_version: str,
                   kind: str = "circuit", params: Optional[Mapping[str, Any]] = None) -> str:
    """The key of one measurement (see the module docstring); ``circuit`` is ``circuit_hash``'s digest."""
    if kind not in EVALUATION_KINDS:
        raise InvalidCircuit(f"unknown evaluation kind {kind!r}: one of {', '.join(EVALUATION_KINDS)}")
    recipe = {k: dataset.get(k) for k in ("task", "n_prompts", "seed", "corruption", "filter", "resample")}
    return _sha256({
        "circuit": circuit, "weights": weights_hash, "dataset": recipe, "metric": metric, "ablation": ablation,
        "positions": list(positions) if positions is not None else None, "level": level, "dtype": dtype,
        "code": code_version, "kind": kind, "params": dict(params or {}),
    })


def save_evaluation(session: Session, new: NewEvaluation) -> EvaluationRecord:
    """Keep an evaluation; one already kept under the same key is replaced (``--fresh`` measured it again)."""
    for value, what in ((new.model, "a model name"), (new.task, "a task name"), (new.metric, "a metric"),
                        (new.ablation, "an ablation"), (new.level, "a level")):
        check_text(value, what)
    circuit_id = get_circuit_id(session, new.circuit)
    row = session.scalars(select(EvaluationRow).where(EvaluationRow.eval_key == new.eval_key)).one_or_none()
    if row is None:
        row = EvaluationRow(eval_key=new.eval_key)
        session.add(row)
    row.circuit_id = circuit_id
    row.model_name, row.task_name, row.dataset_hash = new.model, new.task, new.dataset_hash
    row.metric, row.ablation, row.level = new.metric, new.ablation, new.level
    row.settings, row.results = dict(new.settings), dict(new.results)
    row.code_version, row.created_at = new.code_version, utc_now()
    session.flush()
    return _record(row, new.circuit)


def find_evaluation(session: Session, eval_key: str) -> Optional[EvaluationRecord]:
    """The evaluation kept under ``eval_key``, or None."""
    query = (select(EvaluationRow, CircuitRow.name).join(CircuitRow, EvaluationRow.circuit_id == CircuitRow.id)
             .where(EvaluationRow.eval_key == eval_key))
    found = session.execute(query).one_or_none()
    return None if found is None else _record(found[0], found[1])


def list_evaluations(session: Session, circuit: Optional[str] = None) -> list[EvaluationRecord]:
    """Kept evaluations, of one circuit or of all, by circuit name then oldest first."""
    query = (select(EvaluationRow, CircuitRow.name).join(CircuitRow, EvaluationRow.circuit_id == CircuitRow.id)
             .order_by(CircuitRow.name, EvaluationRow.created_at, EvaluationRow.id))
    if circuit is not None:
        query = query.where(EvaluationRow.circuit_id == get_circuit_id(session, circuit))
    return [_record(row, name) for row, name in session.execute(query)]


def _record(row: EvaluationRow, circuit: str) -> EvaluationRecord:
    return EvaluationRecord(
        id=row.id, circuit=circuit, eval_key=row.eval_key, model=row.model_name, task=row.task_name,
        dataset_hash=row.dataset_hash, metric=row.metric, ablation=row.ablation, level=row.level,
        settings=row.settings or {}, results=row.results or {}, code_version=row.code_version,
        created_at=row.created_at,
    )
