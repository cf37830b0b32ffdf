"""Circuit discovery: the component graph, models, tasks, metrics, the patching engine and the methods.

A notebook needs two names: ``make_config`` (a checked, frozen run configuration) and ``run`` (the run pipeline:
load, draw the prompts, find the circuit, and record it when given a recorder such as ``catalog.Catalog``)::

    from discovery import make_config, run
    outcome = run(make_config("toy", "digits", "eap", settings={"top_k": 20}))

Importing this package imports nothing heavy: ``make_config`` is torch-free, ``run`` loads torch on first use,
and ``discovery.graph`` and ``discovery.results`` are torch-free so the catalog can use them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_config", "run"]


def __getattr__(name: str) -> Any:
    if name == "make_config":
        from discovery.config import make_config

        return make_config
    if name == "run":
        from discovery.pipeline import run

        return run
    raise AttributeError(name)
