"""Commands over the stored catalog: its schema (``db``), and listing, showing, finding and deleting circuits.

Each command parses its arguments, opens one session, calls one catalog function and formats the answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import click

from catalog import queries
from catalog.db import SchemaState, schema_state, upgrade_schema
from catalog.records import RUN_STATUSES, CircuitRecord, CircuitSummary, NodeRecord, RunRecord
from cli.options import FINITE, catalog_session, db_option, fmt, json_option, print_json, print_table


def _when(value: Optional[dt.datetime]) -> Optional[str]:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else None


def _iso(value: Optional[dt.datetime]) -> Optional[str]:
    return value.isoformat() if value else None


def _pairs(pairs: list[tuple[str, Any]]) -> None:
    """Aligned ``label  value`` lines."""
    width = max(len(label) for label, _ in pairs)
    for label, value in pairs:
        click.echo(f"{label.ljust(width)}  {fmt(value)}".rstrip())


# ---------------------------------------------------------------------------------------------------------
# circuits db ...


@click.group("db")
def db_group() -> None:
    """Create, inspect and upgrade the catalog database's schema.

    Example:

    \b
        circuits db current --db sqlite:///circuits.db
        circuits db upgrade --db sqlite:///circuits.db
    """


def _state_json(state: SchemaState) -> dict[str, Any]:
    return {"database": state.url, "revision": state.revision, "head": state.head, "status": state.status}


@db_group.command("upgrade")
@click.option("--alongside", is_flag=True,
              help="Create the catalog in a database that holds another program's tables, leaving them as they are "
              "(refused otherwise; a separate file or PostgreSQL schema is cleaner).")
@db_option
def db_upgrade(alongside: bool, db_url: str) -> None:
    """Migrate the catalog's schema to this code's version (creating it in an empty database or a new file).

    Back up a SQLite file first if it matters: the upgrade runs in one transaction, but a copy is cheap.

    Example:

    \b
        circuits db upgrade --db sqlite:///circuits.db
    """
    before, after = upgrade_schema(db_url, alongside=alongside)
    if before.revision == after.revision:
        click.echo(f"{after.url} is already at {after.revision} (head)")
    else:
        click.echo(f"upgraded {after.url}: {before.revision or '(empty)'} -> {after.revision}")


@db_group.command("current")
@db_option
@json_option
def db_current(db_url: str, as_json: bool) -> None:
    """Show the schema revision the database holds and the one this code needs; changes nothing.

    Status is current, older (run `circuits db upgrade`), newer (this code is older than the database),
    empty, or unversioned.

    Example:

    \b
        circuits db current --db sqlite:///circuits.db --json
    """
    state = schema_state(db_url)
    if as_json:
        print_json(_state_json(state))
        return
    _pairs([("database", state.url), ("revision", state.revision), ("head", state.head), ("status", state.status)])


# ---------------------------------------------------------------------------------------------------------
# circuits list / show / holds / delete


def _summary_json(summary: CircuitSummary) -> dict[str, Any]:
    return {
        "name": summary.name,
        "model": summary.model,
        "task": summary.task,
        "source": summary.source,
        "method": summary.method,
        "n_nodes": summary.n_nodes,
        "n_edges": summary.n_edges if summary.edges_known else None,
        "edges_known": summary.edges_known,
        "performance": dict(summary.performance),
        "created_at": _iso(summary.created_at),
    }


@click.command("list")
@click.option("--model", default=None, metavar="M", help="Only circuits of this model (e.g. gpt2).")
@click.option("--task", default=None, metavar="T", help="Only circuits of this task (e.g. ioi).")
@db_option
@json_option
def list_cmd(model: Optional[str], task: Optional[str], db_url: str, as_json: bool) -> None:
    """List the catalog's circuits with their kept node and edge counts.

    Example:

    \b
        circuits list --model gpt2 --task ioi
        circuits list --json
    """
    with catalog_session(db_url) as session:
        summaries = queries.list_circuits(session, model=model, task=task)
    if as_json:
        print_json([_summary_json(s) for s in summaries])
        return
    if not summaries:
        click.echo("no circuits in the catalog" if model is None and task is None else "no circuits match")
        return
    rows = [
        (s.name, s.model, s.task, s.source, s.method, s.n_nodes, s.n_edges if s.edges_known else None)
        for s in summaries
    ]
    print_table(["name", "model", "task", "source", "method", "nodes", "edges"], rows)


def _node_json(node: NodeRecord) -> dict[str, Any]:
    return {
        "key": node.key,
        "layer": node.layer,
        "head": node.head,
        "kind": node.kind,
        "score": node.score,
        "role": node.role,
        "role_source": node.role_source,
        "role_score": node.role_score,
        "role_note": node.role_note,
        "attributes": dict(node.attributes),
    }


def _circuit_json(record: CircuitRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "model": record.model,
        "task": record.task,
        "source": record.source,
        "citation": record.citation,
        "description": record.description,
        "method": record.method,
        "threshold": record.threshold,
        "run_id": record.run_id,
        "group": record.group,
        "edges_known": record.edges_known,
        "performance": dict(record.performance),
        "metadata": dict(record.metadata),
        "created_at": _iso(record.created_at),
        "nodes": [_node_json(n) for n in record.kept_nodes],
        "edges": [{"src": e.src, "dst": e.dst, "input": e.input, "score": e.score} for e in record.kept_edges],
    }


def _print_circuit(record: CircuitRecord, recut: bool) -> None:
    scored = sum(1 for e in record.edges if e.score is not None)
    edges = f"{len(record.kept_edges)} kept" + (f" of {scored} scored" if scored else "")
    performance = ", ".join(f"{k}={fmt(v)}" for k, v in record.performance.items()) or None
    _pairs(
        [
            ("name", record.name),
            ("model", record.model),
            ("task", record.task),
            ("source", record.source),
            ("method", record.method),
            ("threshold", f"{fmt(record.threshold)} (re-cut from stored scores)" if recut else record.threshold),
            ("citation", record.citation),
            *([("group", record.group)] if record.group else []),  # only circuits filed in a group
            ("nodes", f"{len(record.kept_nodes)} kept"),
            ("edges", edges if record.edges_known else "not known (the source lists nodes only)"),
            ("performance", performance),
        ]
    )
    if record.description:
        click.echo(f"\n{record.description}")
    click.echo()
    scored_roles = any(n.role_score is not None for n in record.kept_nodes)  # a column only if some role has one
    print_table(
        ["node", "kind", "score", "role", *(["role score"] if scored_roles else []), "role source"],
        [(n.key, n.kind, n.score, n.role, *([n.role_score] if scored_roles else []), n.role_source)
         for n in record.kept_nodes],
    )
    if record.edges_known and record.kept_edges:
        click.echo()
        print_table(["edge", "score"], [(e.key, e.score) for e in record.kept_edges])


@click.command("show")
@click.argument("circuit")
@click.option(
    "--threshold",
    type=FINITE,
    default=None,
    metavar="X",
    help="Re-cut the circuit from its stored edge scores, keeping edges with |score| >= X. This thresholds "
    "the scores already stored; it does not re-run discovery. Not for circuits that list nodes only.",
)
@db_option
@json_option
def show_cmd(circuit: str, threshold: Optional[float], db_url: str, as_json: bool) -> None:
    """Show a circuit: its provenance, kept nodes (with roles) and kept edges (with scores).

    Example:

    \b
        circuits show ioi-wang2022
        circuits show ioi-eap --threshold 0.05 --json
    """
    with catalog_session(db_url) as session:
        record = queries.get_circuit(session, circuit)
    if threshold is not None:
        record = queries.recut(record, threshold)
    if as_json:
        print_json(_circuit_json(record))
    else:
        _print_circuit(record, recut=threshold is not None)


@click.command("holds")
@click.argument("node")
@db_option
@json_option
def holds_cmd(node: str, db_url: str, as_json: bool) -> None:
    """Which circuits hold a node (a head like 9.1 or a9.1, an MLP like m5), and its role in each.

    Example:

    \b
        circuits holds 9.1
        circuits holds m5 --json
    """
    with catalog_session(db_url) as session:
        found = queries.circuits_holding(session, node)
    rows = [
        {"circuit": h.circuit, "model": h.model, "task": h.task, "key": h.key, "role": h.role,
         "role_source": h.role_source, "role_score": h.role_score, "score": h.score}
        for h in found
    ]
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo(f"no circuit holds {node}")
    else:
        scored_roles = any(r["role_score"] is not None for r in rows)  # the column only when some role has one
        extra = ["role score"] if scored_roles else []
        headers = ["circuit", "model", "task", "role", *extra, "role source", "score"]
        keys = ["circuit", "model", "task", "role", *(["role_score"] if scored_roles else []), "role_source", "score"]
        print_table(headers, [[r[k] for k in keys] for r in rows])


@click.command("delete")
@click.argument("circuit")
@db_option
def delete_cmd(circuit: str, db_url: str) -> None:
    """Delete a circuit with its nodes, edges and stored scores (its run record stays).

    Example:

    \b
        circuits delete ioi-eap-draft
    """
    with catalog_session(db_url, mode="write") as session:
        queries.delete_circuit(session, circuit)
    click.echo(f"deleted circuit {circuit}")


# ---------------------------------------------------------------------------------------------------------
# circuits runs


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "method": run.method,
        "metric": run.metric,
        "model": run.model,
        "task": run.task,
        "status": run.status,
        "settings": dict(run.settings),
        "seed": run.seed,
        "device": run.device,
        "dtype": run.dtype,
        "code_version": run.code_version,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "error": run.error,
        "dataset_hash": run.dataset_hash,
        "circuits": list(run.circuit_names),
    }


def _short(text: Optional[str], width: int = 60) -> Optional[str]:
    if not text:
        return None
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= width else line[: width - 3] + "..."


@click.command("runs")
@click.option(
    "--status",
    type=click.Choice(list(RUN_STATUSES)),
    default=None,
    help="Only runs with this status (lost: its worker stopped renewing its heartbeat, killed or its node lost).",
)
@db_option
@json_option
def runs_cmd(status: Optional[str], db_url: str, as_json: bool) -> None:
    """List discovery runs, oldest first, with their status, circuits and error (times are UTC).

    Example:

    \b
        circuits runs --status failed
        circuits runs --json
    """
    with catalog_session(db_url) as session:
        runs = queries.list_runs(session, status=status)
    if as_json:
        print_json([_run_json(r) for r in runs])
        return
    if not runs:
        click.echo("no runs in the catalog" if status is None else f"no {status} runs")
        return
    rows = [
        (r.id, r.method, r.model, r.task, r.status, _when(r.started_at), _when(r.finished_at),
         ", ".join(r.circuit_names) or None, _short(r.error))
        for r in runs
    ]
    print_table(["id", "method", "model", "task", "status", "started", "finished", "circuits", "error"], rows)

