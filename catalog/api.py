"""``Catalog``: one object for a notebook, a CLI command or a worker to open a catalog, read it, and record runs.

    from discovery import make_config, run
    from catalog import Catalog

    with Catalog("sqlite:///circuits.db") as cat:
        outcome = run(make_config("toy", "digits", "acdc", settings={"threshold": 0.01}), recorder=cat,
                      name="digits-acdc")
        cat.circuit("digits-acdc").kept_edges

It implements the run pipeline's ``Recorder`` protocol (``discovery.pipeline``): ``check_name`` before any work,
``start`` (a run row ``running``), ``finish`` (the circuit and the run ``succeeded``, in one transaction) and
``fail``. Every read or write is one short transaction (``catalog.db.session_scope``); nothing is held open
while a method runs for minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from catalog import queries
from catalog.db import catalog_exists, connect, session_scope
from catalog.errors import AlreadyExists, CatalogError
from catalog.records import CircuitRecord, CircuitSummary, RunRecord
from catalog.validate import check_name
from discovery.config import RunConfig
from discovery.results import DatasetSpec, DiscoveryResult, ModelSpec


class Catalog:
    """An open catalog (SQLite file or PostgreSQL URL); close it, or use it as a context manager. ``mode`` is
    ``catalog.db.connect``'s: ``create`` (the default) makes a new catalog where there is none, ``write`` and
    ``read`` need one to exist, ``read`` never writes."""

    def __init__(self, url: str = "sqlite:///circuits.db", *, mode: str = "create", engine: Optional[Engine] = None):
        self.url, self.mode = url, mode
        self._engine = engine
        if engine is None and not (mode == "create" and not catalog_exists(url)):
            self._engine = connect(url, mode=mode)  # an existing catalog is opened (and checked) at once

    @property
    def engine(self) -> Engine:
        """The database engine; a new SQLite catalog is created only here, when something is first written."""
        if self._engine is None:
            self._engine = connect(self.url, mode=self.mode)
        return self._engine

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        with session_scope(self.engine, read_only=read_only) as session:
            yield session

    # -- reading ---------------------------------------------------------------------------------------------
    def circuit(self, name: str, *, kept_only: bool = False) -> CircuitRecord:
        with self.session(read_only=True) as s:
            return queries.get_circuit(s, name, kept_only=kept_only)

    def circuits(self, model: Optional[str] = None, task: Optional[str] = None) -> list[CircuitSummary]:
        with self.session(read_only=True) as s:
            return queries.list_circuits(s, model=model, task=task)

    def runs(self, status: Optional[str] = None) -> list[RunRecord]:
        with self.session(read_only=True) as s:
            return queries.list_runs(s, status=status)

    # -- the run pipeline's Recorder -------------------------------------------------------------------------
    def check_name(self, name: Optional[str]) -> None:
        if name is None:
            return
        check_name(name)
        if self._engine is None:  # no catalog yet, so no name is taken
            return
        with self.session(read_only=True) as s:
            if queries.find_circuit_id(s, name) is not None:
                raise AlreadyExists(f"a circuit named {name!r} already exists; choose another name")

    def start(self, config: RunConfig, model: ModelSpec, dataset: DatasetSpec) -> int:
        from discovery.run import code_version

        with self.session() as s:
            return queries.start_run(s, config, model, dataset, code_version()).id

    def finish(self, run_id: int, result: DiscoveryResult, name: Optional[str]) -> CircuitRecord:
        name = name or default_name(result, run_id)
        with self.session() as s:
            return queries.save_result(s, run_id, result, name)

    def fail(self, run_id: int, status: str, error: str) -> None:
        """Record how a run ended without masking the exception that ended it."""
        try:
            with self.session() as s:
                queries.fail_run(s, run_id, status, error)
        except CatalogError:
            pass


def default_name(result: DiscoveryResult, run_id: int) -> str:
    """``MODEL-TASK-METHOD-rRUN`` (a path-like model or file task keeps only its last part)."""
    model = result.model.name.rstrip("/").split("/")[-1]
    task = result.config.task.rsplit("/", 1)[-1].removeprefix("file:")
    return check_name(f"{model}-{task}-{result.method}-r{run_id}"[-200:])
