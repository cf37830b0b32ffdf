"""``circuits models``, ``circuits discover``: load a model, run a method, keep the circuit with its provenance."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import click

from catalog.errors import CatalogError
from cli.options import db_option, json_option, numbers, positions_option, print_json, print_table
from discovery.errors import DiscoveryError
from discovery.methods import METHODS
from discovery.names import ABLATIONS, METRICS


class ProgressBar:
    """A method's progress callback drawn as a click progress bar with an ETA, on stderr."""

    def __init__(self, label: str):
        self.label, self.bar, self.shown = label, None, 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_eta=True,
                                         show_percent=True, width=30)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.group("models")
def models_group() -> None:
    """Models discovery can load: the shipped toy model, and hub models already in the local cache."""


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


def _method_params(**options: Any) -> dict[str, Any]:
    """The method-specific settings the user actually gave (None means: the method's default)."""
    return {k: v for k, v in options.items() if v is not None and v != ()}


@click.command("discover")
@click.option("--model", "model_name", default="toy", show_default=True, help="toy, a hub id in the local cache, or a model folder.")
@click.option("--task", required=True, help="A built-in task (see `circuits tasks list`) or file:PROMPTS.jsonl.")
@click.option("--method", type=click.Choice(list(METHODS)), required=True)
@click.option("--metric", type=click.Choice(list(METRICS)), default=None, help="Default: kl for ACDC, else the task's metric.")
@click.option("--threshold", type=float, default=None, help="What it means depends on the method (see below).")
@click.option("--corruption", default=None, help="Which corrupted prompts to patch from (default: the task's).")
@click.option("--ablation", type=click.Choice(list(ABLATIONS)), default=None,
              help="What a removed edge reads: the corrupted activation, its mean, zero, or a resampled one.")
@click.option("--n-prompts", type=click.IntRange(1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True)
@click.option("--name", default=None, help="Circuit name (default: MODEL-TASK-METHOD-rRUN).")
@click.option("--thresholds", default=None, help="node-pruning: several levels at once, e.g. 0.7,0.8,0.9.")
@click.option("--order", type=click.Choice(["backward", "forward", "random"]), default=None, help="node-pruning: removal order.")
@click.option("--orders", type=click.IntRange(0), default=None, help="node-pruning: also N random orders (survival counts).")
@click.option("--include-mlps", is_flag=True, default=None, help="node-pruning: prune MLPs too.")
@click.option("--top-k", type=click.IntRange(1), default=None, help="eap/eap-ig: keep the K highest-scoring edges.")
@click.option("--target", type=float, default=None, help="eap/eap-ig: smallest top-k circuit keeping this share.")
@click.option("--ig-steps", type=click.IntRange(1), default=None, help="eap-ig: integration steps (default 5).")
@click.option("--seed-nodes", default=None, help="path-patching: comma-separated start nodes (default: logits).")
@click.option("--mode", type=click.Choice(["nodes", "edges"]), default=None, help="path-patching: add nodes, or only edges.")
@click.option("--batch", type=click.IntRange(1), default=None, help="acdc: most candidate edges per forward.")
@positions_option
@db_option
@json_option
def discover(model_name: str, task: str, method: str, metric: Optional[str], threshold: Optional[float],
             corruption: Optional[str], ablation: Optional[str], n_prompts: int, seed: int, device: str, dtype: str,
             name: Optional[str], positions: Optional[list[int]], db_url: str, as_json: bool,
             **method_options: Any) -> None:
    """Find a circuit with one method and keep it in the catalog, with everything that made it.

    Thresholds: node-pruning keeps the share of performance given (0.8); acdc removes an edge when the loss
    rises by less than tau (0.01); path-patching adds senders whose path effect passes the given share of the
    model's metric (0.05); eap/eap-ig keep edges with |score| above it, or use --top-k, or --target (the
    default: the smallest top-k circuit keeping 80 % of the model's performance).

    The run is recorded as running when it starts, and as succeeded, failed (with its error) or interrupted
    when it ends; the circuit appears only once complete. The same command and seed give the same circuit.

    Example:

        circuits discover --model toy --task digits --method acdc --threshold 0.01 --name digits-acdc
    """
    from catalog.db import connect, session_scope
    from catalog.queries import find_circuit
    from discovery.models import load_model
    from discovery.tasks import build_dataset

    params = _method_params(
        thresholds=numbers(method_options.pop("thresholds"), float, "--thresholds"),
        order=method_options.pop("order"),
        orders=method_options.pop("orders"),
        include_mlps=method_options.pop("include_mlps"),
        top_k=method_options.pop("top_k"),
        target=method_options.pop("target"),
        steps=method_options.pop("ig_steps"),
        seed_nodes=_nodes(method_options.pop("seed_nodes")),
        mode=method_options.pop("mode"),
        max_batch=method_options.pop("batch"),
    )
    engine = connect(db_url)
    if name is not None:
        with session_scope(engine) as s:
            if find_circuit(s, name) is not None:
                raise click.ClickException(f"a circuit named {name!r} already exists; choose another --name")
    model = load_model(model_name, device=device, dtype=dtype)
    dataset = build_dataset(task, model.tokenizer, n=n_prompts, seed=seed, corruption=corruption)
    record, result = discover_and_save(engine, model, dataset, method, name=name, metric=metric, ablation=ablation,
                                       threshold=threshold, params=params, seed=seed, positions=positions)
    _report(record, result, as_json)


def discover_and_save(engine: Any, model: Any, dataset: Any, method: str, *, name: Optional[str] = None,
                      metric: Optional[str] = None, ablation: Optional[str] = None,
                      threshold: Optional[float] = None, params: Optional[dict[str, Any]] = None,
                      seed: int = 0, positions: Optional[list[int]] = None) -> tuple[Any, Any]:
    """Record a run, discover, and save the circuit, so a run is never left `running` and a circuit never half."""
    from catalog.db import session_scope
    from catalog.runs import save_result, tracked_run
    from discovery.run import choose_metric, code_version, discover as run_discover, with_defaults

    spec = METHODS[method]
    threshold, params = with_defaults(method, threshold, params)
    metric_used = choose_metric(spec, dataset.metric, metric)
    settings = {"threshold": threshold, "ablation": ablation or spec.default_ablation,
                "corruption": dataset.corruption, "n_prompts": len(dataset.clean), "positions": positions,
                **{k: _jsonable(v) for k, v in params.items()}}
    bar = ProgressBar(f"{method} on {dataset.task}")
    try:
        with tracked_run(engine, method, metric_used, model.spec, dataset.task, dataset=dataset.spec,
                         settings=settings, seed=seed, device=str(model.device),
                         dtype=str(model.dtype).replace("torch.", ""), code_version=code_version()) as run:
            try:
                result = run_discover(model, dataset, method, metric=metric_used, ablation=ablation,
                                      threshold=threshold, params=params, seed=seed, positions=positions,
                                      progress=bar)
            finally:
                bar.close()
            with session_scope(engine) as s:
                record = save_result(s, run.id, result,
                                     name or f"{model.spec.name}-{dataset.task}-{method}-r{run.id}")
    except (CatalogError, DiscoveryError):
        raise
    except Exception as err:  # a crash half-way: the run is already recorded as failed, nothing else was written
        if os.environ.get("CIRCUITS_DEBUG"):
            raise
        text = str(err).splitlines()[0] if str(err) else ""
        raise click.ClickException(f"the {method} run crashed and is recorded as failed ({type(err).__name__}: "
                                   f"{text}); nothing else was saved. CIRCUITS_DEBUG=1 shows the traceback") from None
    return record, result


def _nodes(text: Optional[str]) -> Optional[list[Any]]:
    from discovery.graph import parse_node

    return None if text is None else [parse_node(t) for t in text.split(",") if t.strip()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return getattr(value, "key", value)


def _report(record: Any, result: Any, as_json: bool) -> None:
    kept_nodes = [n.key for n in record.kept_nodes if n.kind in ("head", "mlp")]
    summary = {
        "name": record.name, "run_id": record.run_id, "method": result.method, "metric": result.metric,
        "threshold": result.threshold, "nodes": kept_nodes, "n_edges_kept": len(record.kept_edges),
        "n_edges_scored": len(record.edges), "performance": dict(result.performance),
    }
    if as_json:
        print_json(summary)
        return
    click.echo(f"saved circuit {record.name} (run {record.run_id}): {len(kept_nodes)} heads/MLPs, "
               f"{len(record.kept_edges)} of {len(record.edges)} scored edges kept")
    click.echo("nodes: " + (" ".join(kept_nodes) or "(none)"))
    perf = result.performance
    click.echo("performance: " + ", ".join(f"{k}={v:.4g}" for k, v in perf.items()))


COMMANDS: list[click.Command] = [models_group, discover]
