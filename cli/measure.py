"""Measurements that are kept: what ``evaluate``, ``transfer`` and ``dissociation`` share.

Each command lists what it wants measured (``Ask``: a circuit, a kind of measurement, its parameters, and its key,
``catalog.evaluations.evaluation_key``), reads what the catalog already keeps, and loads the model only when
something is missing (``Bench``); then it draws its figure, if asked, and only then keeps the new measurements, so a
figure that cannot be written leaves the catalog as it was. ``--fresh`` measures everything again and replaces what
was kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import click

from cli.options import info

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


@dataclass(frozen=True)
class Identity:
    """What, besides a command's options, decides a measurement: the model's weights and the code's version."""

    weights_hash: str
    code_version: str


def identify(model: str) -> Identity:
    """The weights hash from the model's files (no model is loaded; an unavailable model fails here, in one line)
    and the code version."""
    from discovery.models import check_available, weights_hash
    from discovery.run import code_version

    return Identity(weights_hash(check_available(model)), code_version())


def recipe(common: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset's recipe (``catalog.evaluations``): what decides the prompts, given the weights and the code."""
    return {"task": common["task"], "n_prompts": common["n_prompts"], "seed": common["seed"],
            "corruption": common["corruption"], "filter": common["correctness_filter"], "resample": None}


@dataclass
class Ask:
    """One measurement a command wants: of ``record`` on the experiment ``common``, ``kind`` with ``params``."""

    record: Any
    common: Mapping[str, Any]
    level: str
    kind: str
    params: dict[str, Any]
    key: str = ""
    kept: Any = None  # the EvaluationRecord found in the catalog
    results: Optional[dict[str, Any]] = None
    settings: dict[str, Any] = field(default_factory=dict)
    dataset_hash: Optional[str] = None
    inputs: dict[str, Any] = field(default_factory=dict)  # what computing needs beyond the key (other records)

    @property
    def reused(self) -> bool:
        return self.kept is not None


def make_ask(identity: Identity, record: Any, common: Mapping[str, Any], level: str, kind: str,
             params: Optional[dict[str, Any]] = None, *, circuit: Optional[str] = None) -> Ask:
    """An ``Ask`` with its key; ``circuit`` overrides the digest of what is measured (a lesion's removed set)."""
    from catalog.evaluations import circuit_hash, evaluation_key

    params = dict(params or {})
    digest = circuit or circuit_hash(record, level)
    key = evaluation_key(circuit=digest, weights_hash=identity.weights_hash, dataset=recipe(common),
                         metric=common["metric"], ablation=common["ablation"], positions=common["positions"],
                         level=level, dtype=common["dtype"], code_version=identity.code_version, kind=kind,
                         params=params)
    return Ask(record, common, level, kind, params, key)


def look_up(db_url: str, asks: Sequence[Ask], fresh: bool) -> None:
    """Fill each ask's ``kept`` evaluation from the catalog (none with ``fresh``)."""
    if fresh or not asks:
        return
    from cli.options import catalog_session

    with catalog_session(db_url) as session:
        from catalog.queries import find_evaluation

        for ask in asks:
            ask.kept = find_evaluation(session, ask.key)
            if ask.kept is not None:
                ask.results, ask.settings = dict(ask.kept.results), dict(ask.kept.settings)


class Bench:
    """At most one loaded model, and one patching setup per experiment, made only when first needed."""

    def __init__(self) -> None:
        self.model: Any = None
        self._setups: dict[str, Any] = {}
        self.loads = 0

    def setup(self, common: Mapping[str, Any]) -> Any:
        from discovery.config import canonical_json
        from discovery.patching import prepare
        from discovery.pipeline import load_experiment

        key = canonical_json({k: v for k, v in common.items() if k != "device"})
        if key not in self._setups:
            if self.model is None:
                self.loads += 1
            model, dataset = load_experiment(common, self.model)
            self.model = model
            self._setups[key] = prepare(model, dataset, metric=common["metric"], ablation=common["ablation"],
                                        seed=common["seed"], positions=common["positions"])
        return self._setups[key]


def measure(asks: Sequence[Ask], bench: Bench, compute: Callable[[Any, Ask], dict[str, Any]]) -> list[Ask]:
    """Measure every ask the catalog did not answer, with ``compute(setup, ask)``; returns those measured."""
    todo = [a for a in asks if a.results is None]
    done: dict[str, Ask] = {}  # one measurement asked twice (two pairs sharing a lesion) is made once
    for ask in todo:
        setup = bench.setup(ask.common)
        same = done.get(ask.key)
        ask.results = dict(same.results or {}) if same is not None else compute(setup, ask)
        ask.settings = settings(ask, setup)
        ask.dataset_hash = setup.dataset.spec.content_hash
        done.setdefault(ask.key, ask)
    return todo


def settings(ask: Ask, setup: Any) -> dict[str, Any]:
    """What an evaluation row keeps about how it was measured (beside its columns)."""
    common, spec = ask.common, setup.dataset.spec
    return {"kind": ask.kind, "params": ask.params, "corruption": common["corruption"],
            "positions": common["positions"], "n_prompts": common["n_prompts"], "seed": common["seed"],
            "dtype": common["dtype"], "device": common["device"], "filter": common["correctness_filter"],
            "prompts": prompts_line(spec), "dataset": {"size": spec.size, "drawn": spec.drawn}}


def prompts_line(spec: Any) -> str:
    if spec.filter:
        return f"kept {spec.size} of {spec.drawn} ({spec.filter} filter)"
    return str(spec.size)


def keep(db_url: str, asks: Sequence[Ask], identity: Identity) -> None:
    """Keep the measured asks, all in one transaction. A catalog that cannot take them (read-only, a full disk, a
    user without write rights) loses nothing and keeps nothing: the measurements are still reported, with a note
    on stderr saying they were not kept and why."""
    if not asks:
        return
    from catalog import Catalog
    from catalog.errors import CatalogError
    from catalog.queries import save_evaluation
    from catalog.records import NewEvaluation

    try:
        with Catalog(db_url, mode="write") as catalog, catalog.session() as session:
            for ask in asks:
                assert ask.results is not None
                save_evaluation(session, NewEvaluation(
                    circuit=ask.record.name, eval_key=ask.key, model=ask.common["model"], task=ask.common["task"],
                    metric=ask.common["metric"], ablation=ask.common["ablation"], level=ask.level,
                    settings=ask.settings, results=ask.results, dataset_hash=ask.dataset_hash,
                    code_version=identity.code_version))
    except CatalogError as err:
        info(f"note: {len(asks)} measurements were not kept in the catalog ({err}); the results below stand")


def say_reused(asks: Sequence[Ask]) -> None:
    """One line on stderr: how many measurements were read from the catalog instead of run, and how to rerun."""
    reused = [a for a in asks if a.reused]
    if not reused:
        return
    when = max(a.kept.created_at for a in reused).strftime("%Y-%m-%d %H:%M UTC")
    info(f"reused {len(reused)} of {len(asks)} measurements kept in the catalog (latest {when}); "
         "--fresh measures them again")


def check_plot(path: Optional[Path]) -> None:
    """Refuse a figure file that cannot be drawn before any work: an unknown type or a missing folder."""
    if path is None:
        return
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise click.UsageError(f"--plot: draw to a .png, .pdf or .svg file, not {path.name}")
    if not path.parent.resolve().is_dir():
        raise click.UsageError(f"--plot: the folder {path.parent} does not exist")


def fresh_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--fresh", is_flag=True,
                        help="Measure again even what the catalog keeps (and replace it).")(fn)
