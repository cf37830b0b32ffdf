"""The catalog's questions and writes, in one import: ``from catalog.queries import save_circuit, ...``.

The caller owns the session (``catalog.db.session_scope``); every function takes it first and never commits.
Verbs: ``get_*`` raises ``NotFound``, ``find_*`` returns None, ``list_*``, ``count_*``, ``save_*``,
``delete_*``. Circuits live in ``catalog.circuits``, runs and ``save_result`` in ``catalog.runs``, sweeps and their
jobs in ``catalog.sweeps``.
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
from catalog.evaluations import find_evaluation, list_evaluations, save_evaluation
from catalog.groups import find_group, list_group, list_groups, set_group
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
from catalog.sweeps import (
    end_running_runs,
    find_sweep,
    get_sweep,
    job_state,
    list_sweep_jobs,
    list_sweeps,
    open_sweep,
    save_sweep_job,
    update_sweep_job,
)

__all__ = [
    "circuits_holding",
    "count_circuits",
    "delete_circuit",
    "end_running_runs",
    "find_circuit",
    "find_circuit_id",
    "find_evaluation",
    "find_group",
    "find_model_shape",
    "find_run",
    "find_succeeded_run",
    "find_sweep",
    "heartbeat",
    "mark_lost",
    "fail_run",
    "finish_run",
    "get_circuit",
    "get_run",
    "get_sweep",
    "job_state",
    "list_circuits",
    "list_evaluations",
    "list_group",
    "list_groups",
    "list_runs",
    "list_sweep_jobs",
    "list_sweeps",
    "open_sweep",
    "recut",
    "save_circuit",
    "save_evaluation",
    "save_result",
    "save_sweep_job",
    "set_circuit_analysis",
    "set_group",
    "set_node_attributes",
    "set_role",
    "start_run",
    "update_sweep_job",
]
