"""``circuits models``, ``circuits discover``: load a model, run a method, keep the circuit with its provenance.

``discover``'s method flags are generated from the method registry (``discovery.methods``): one flag per option
name, whose help says which methods take it; which method takes what is checked by the registry's resolver.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Optional

import click

from cli.options import db_option, json_option, print_json, print_table, run_options
from discovery.methods import METHODS, all_options
from discovery.settings import BOOL, CHOICE, FLOATS, NODES


class ProgressBar:
    """A method's progress callback drawn as a click progress bar with an ETA, on stderr."""

    def __init__(self, label: str):
        self.label, self.shown = label, 0
        self.bar: Optional[Any] = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_eta=True,
                                         show_percent=True, width=30)
            self.bar.__enter__()
        self.bar.length = max(self.bar.length or 0, total)  # some methods learn their total as they go
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.group("models")
def models_group() -> None:
    """Models discovery can load: the shipped toy model, and hub models already in the local cache.

    Example:

        circuits models list
    """


@models_group.command("list")
@json_option
def models_list(as_json: bool) -> None:
    """List known models and whether each can be loaded here (no network is used).

    Example:

        circuits models list --json
    """
    from discovery.models import known_models

    rows = known_models()
    if as_json:
        print_json(rows)
        return
    print_table(["name", "source", "available"], [[r["name"], r["source"], "yes" if r["available"] else "no"]
                                                  for r in rows])


@models_group.command("path")
@click.argument("name")
def models_path(name: str) -> None:
    """Print the local folder a model loads from (``toy`` is shipped with circuit-catalog).

    Example:

        circuits models path toy
    """
    from discovery.models import check_available

    click.echo(check_available(name))


def method_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One click option per method option name, generated from the registry (values are checked there)."""
    for name, declared in reversed(sorted(all_options().items())):
        option = declared[0][1]
        methods = ", ".join(m for m, _ in declared)
        details = "; ".join(f"{m}: {o.help}" + (f" (default {_show(o.default)})" if o.default is not None else "")
                            for m, o in declared)
        flag = option.cli_flag
        if option.kind == BOOL:
            fn = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=f"[{methods}] {details}")(fn)
            continue
        choices = sorted({c for _, o in declared for c in o.choices})
        metavar = {CHOICE: "|".join(choices), FLOATS: "X,X,...", NODES: "NODE,NODE,..."}.get(option.kind, "X")
        fn = click.option(flag, name, default=None, metavar=metavar, help=f"[{methods}] {details}")(fn)
    return fn


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@click.command("discover")
@click.option("--method", type=click.Choice(list(METHODS)), required=True)
@click.option("--name", default=None, help="Circuit name (default: MODEL-TASK-METHOD-rRUN).")
@run_options(task_required=True)
@method_options
@db_option
@json_option
def discover(method: str, name: Optional[str], db_url: str, as_json: bool, **options: Any) -> None:
    """Find a circuit with one method and keep it in the catalog, with everything that made it.

    Every setting is checked before anything is loaded or recorded. The run is recorded as running when it
    starts, and as succeeded, failed (with its error) or interrupted (Ctrl-C, SIGTERM) when it ends; the circuit
    appears only once complete. The same command and seed give the same circuit. Each method's defaults
    reproduce its paper's setting (see the README's methods table).

    Example:

        circuits discover --model toy --task digits --method acdc --threshold 0.01 --name digits-acdc
    """
    from catalog import Catalog
    from discovery.pipeline import run

    config = make_run_config(method, options)
    with Catalog(db_url) as catalog:
        bar = ProgressBar(f"{method} on {config.task}")
        try:
            outcome = run(config, recorder=catalog, name=name, progress=bar)
        finally:
            bar.close()
    _report(outcome.saved, outcome.result, as_json)


def make_run_config(method: str, options: dict[str, Any]) -> Any:
    """The checked RunConfig from a command's run options and method flags (the rest of ``options``)."""
    from discovery.config import make_config

    run_keys = ("model_name", "task", "metric", "ablation", "corruption", "n_prompts", "seed", "device", "dtype",
                "positions", "correctness_filter")
    run = {k: options.pop(k) for k in run_keys}
    return make_config(run.pop("model_name") or "toy", run.pop("task"), method, settings=options, **run)


def _report(record: Any, result: Any, as_json: bool) -> None:
    kept_nodes = [n.key for n in record.kept_nodes if n.is_component]
    summary = {
        "name": record.name, "run_id": record.run_id, "method": result.method, "metric": result.metric,
        "threshold": result.threshold, "nodes": kept_nodes, "n_edges_kept": len(record.kept_edges),
        "n_edges_scored": len(record.edges), "performance": dict(result.performance),
        "dataset": _dataset_line(result.dataset),
    }
    if as_json:
        print_json(summary)
        return
    click.echo(f"saved circuit {record.name} (run {record.run_id}): {len(kept_nodes)} heads/MLPs, "
               f"{len(record.kept_edges)} of {len(record.edges)} scored edges kept")
    click.echo(f"prompts: {summary['dataset']}")
    click.echo("nodes: " + (" ".join(kept_nodes) or "(none)"))
    perf = result.performance
    click.echo("performance: " + ", ".join(f"{k}={v:.4g}" for k, v in perf.items()))


def _dataset_line(spec: Any) -> str:
    kept = f"kept {spec.size} of {spec.drawn} prompts ({spec.filter} filter)" if spec.filter else f"{spec.size} prompts"
    return f"{spec.task}, {kept}, corruption {spec.corruption}, seed {spec.seed}"

