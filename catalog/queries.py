"""The catalog's questions and writes, in one import: ``from catalog.queries import save_circuit, ...``.

The caller owns the session (``catalog.db.session_scope``); every function takes it first and never commits.
Verbs: ``get_*`` raises ``NotFound``, ``find_*`` returns None, ``list_*``, ``count_*``, ``save_*``,
``delete_*``. Circuits live in ``catalog.circuits``, runs and ``save_result`` in ``catalog.runs``.
"""

from __future__ import annotations

from catalog.circuits import (
    circuits_holding,
    count_circuits,
    delete_circuit,
    find_circuit,
    find_circuit_id,
    find_model_shape,
    get_circuit,
    list_circuits,
    recut,
    save_circuit,
    set_circuit_analysis,
    set_node_attributes,
    set_role,
)
from catalog.runs import (
    fail_run,
    find_run,
    find_succeeded_run,
    finish_run,
    get_run,
    heartbeat,
    list_runs,
    mark_lost,
    save_result,
    start_run,
)

__all__ = [
    "circuits_holding",
    "count_circuits",
    "delete_circuit",
    "find_circuit",
    "find_circuit_id",
    "find_model_shape",
    "find_run",
    "find_succeeded_run",
    "heartbeat",
    "mark_lost",
    "fail_run",
    "finish_run",
    "get_circuit",
    "get_run",
    "list_circuits",
    "list_runs",
    "recut",
    "save_circuit",
    "save_result",
    "set_circuit_analysis",
    "set_node_attributes",
    "set_role",
    "start_run",
]
