"""``circuits evaluate``: how faithful a stored circuit is, measured by real ablation on a model and task.

Unless told otherwise a circuit is evaluated the way it was made: a published circuit as its paper evaluated it
(its ``evaluation`` record: IOI's mean over the ABC prompts at node level, greater-than's 01 patching, Lan et al.'s
mean over random members), a discovered one with its run's ablation and corruption, anything else with MIB's
counterfactual patching; the output says which and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from cli.options import db_option, info, json_option, print_json, print_table, run_options


def circuit_parts(record: Any, graph: Any) -> tuple[list[Any], Optional[list[Any]]]:
    """A stored circuit's kept nodes and (when known) kept edges, checked against the model's graph."""
    from discovery.errors import SettingsError
    from discovery.graph import Edge, InvalidKey, parse_node

    try:
        nodes = [graph.check_node(parse_node(n.key)) for n in record.kept_nodes]
        edges = None
        if record.edges_known:
            edges = [Edge(graph.check_node(parse_node(e.src)), graph.check_node(parse_node(e.dst)), e.input)
                     for e in record.kept_edges]
    except InvalidKey as err:
        raise SettingsError(f"circuit {record.name} does not fit this model: {err}") from None
    return nodes, edges


def scored_edges(record: Any, graph: Any) -> list[tuple[Any, float]]:
    """Every edge the circuit's run scored, with its score (for the faithfulness curve)."""
    from discovery.graph import Edge, parse_node

    return [(Edge(graph.check_node(parse_node(e.src)), graph.check_node(parse_node(e.dst)), e.input), e.score)
            for e in record.edges if e.score is not None]


@click.command("evaluate")
@click.argument("circuits", nargs=-1, required=True)
@run_options("model", "task", "metric", "ablation", "corruption", "n_prompts", "seed", "device", "dtype",
             "positions", "filter", follows="how the first circuit was made or published, see above")
@click.option("--level", type=click.Choice(["nodes", "edges"]), default=None,
              help="Ablate outside the circuit's nodes or outside its edges (default: as the circuit was made; "
              "nodes when its edges are unknown).")
@click.option("--random", "n_random", type=click.IntRange(0, 10_000), default=0,
              help="Also evaluate N random connected circuits of the same size.")
@click.option("--ablate-shared-with", "other", default=None,
              help="Also ablate the nodes this circuit shares with another circuit, and report what is lost.")
@click.option("--curve", is_flag=True, help="MIB's faithfulness curve over the top k %% of the run's edges, CPR, CMD.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --curve: draw the curves of all the circuits given to this file (.png, .pdf, .svg).")
@db_option
@json_option
def evaluate(circuits: tuple[str, ...], model_name: Optional[str], task: Optional[str], metric: Optional[str],
             ablation: Optional[str], corruption: Optional[str], n_prompts: Optional[int], seed: int, device: str,
             dtype: str, positions: Optional[str], correctness_filter: bool, level: Optional[str], n_random: int,
             other: Optional[str], curve: bool, plot: Optional[Path], db_url: str, as_json: bool) -> None:
    """Measure stored circuits by ablating everything outside them, on a model and a task.

    Reports the metric, the share of the model's performance kept (m(C)/m(model)), MIB's faithfulness
    ((m(C) - m(empty)) / (m(model) - m(empty))), KL from the model and accuracy. Defaults follow how the (first)
    circuit was made: a published circuit as its paper evaluated it, a discovered one as its run ablated.

    Example:

    \b
        circuits evaluate toy-digits-acdc --random 20
        circuits evaluate toy-digits-acdc --ablate-shared-with toy-months-acdc
        circuits evaluate toy-digits-acdc toy-digits-eap --curve --plot curves.png
    """
    from catalog import Catalog
    from discovery.config import resolve_common
    from discovery.patching import prepare
    from discovery.pipeline import load_experiment

    if plot is not None and not curve:
        raise click.UsageError("--plot draws the faithfulness curve: add --curve")
    with Catalog(db_url, mode="read") as catalog, catalog.session(read_only=True) as session:
        from catalog.queries import get_circuit

        records = [get_circuit(session, name) for name in circuits]
        other_record = get_circuit(session, other) if other else None
    first = records[0]
    defaults = first.evaluation_defaults()
    task = task or first.task
    if task is None:
        raise click.UsageError(f"circuit {first.name} names no task: give --task")
    common = resolve_common(model_name or first.model, task, metric=metric, ablation=ablation or defaults["ablation"],
                            corruption=corruption or defaults.get("corruption") if task == first.task else corruption,
                            n_prompts=n_prompts, seed=seed, positions=positions, device=device, dtype=dtype,
                            correctness_filter=correctness_filter)
    level = level or defaults["level"]
    model, dataset = load_experiment(common)
    setup = prepare(model, dataset, metric=common["metric"], ablation=common["ablation"], seed=seed,
                    positions=common["positions"])
    rows = [_evaluate_one(setup, record, level, n_random, other_record, seed) for record in records]
    curves = _curves(setup, records) if curve else {}
    if plot is not None:
        from discovery.evaluation import plot_curves

        plot_curves(curves, plot)
        info(f"drew the faithfulness curves to {plot}")
    context = {"model": common["model"], "task": common["task"], "metric": setup.metric.name,
               "ablation": common["ablation"], "corruption": common["corruption"], "level": level,
               "defaults_from": defaults["from"], "prompts": _prompts(dataset.spec), "seed": seed,
               "positions": common["positions"]}
    if as_json:
        print_json({**context, "circuits": rows, "curves": {k: v.as_dict() for k, v in curves.items()}})
        return
    _print(context, rows, curves)


def _prompts(spec: Any) -> str:
    if spec.filter:
        return f"kept {spec.size} of {spec.drawn} ({spec.filter} filter)"
    return str(spec.size)


def _evaluate_one(setup: Any, record: Any, level: str, n_random: int, other: Any, seed: int) -> dict[str, Any]:
    from discovery.errors import SettingsError
    from discovery.evaluation import ablate_shared, compare_to_random, evaluate_circuit

    nodes, edges = circuit_parts(record, setup.graph)
    if level == "edges" and edges is None:
        raise SettingsError(f"circuit {record.name} lists nodes only, so it cannot be evaluated at edge level")
    members = edges if level == "edges" else None
    row: dict[str, Any] = {"name": record.name, **evaluate_circuit(setup, nodes=nodes, edges=members)}
    if n_random:
        row["random"] = compare_to_random(setup, members if members is not None else nodes, n=n_random, seed=seed)
    if other is not None:
        other_nodes, _ = circuit_parts(other, setup.graph)
        row["ablate_shared_with"] = {"other": other.name, **ablate_shared(setup, nodes, other_nodes)}
    return row


def _curves(setup: Any, records: list[Any]) -> dict[str, Any]:
    from discovery.errors import SettingsError
    from discovery.evaluation import faithfulness_curve

    out = {}
    for record in records:
        pairs = scored_edges(record, setup.graph)
        if not pairs:
            raise SettingsError(f"{record.name} has no scored edges: a faithfulness curve needs a run's edge scores")
        out[record.name] = faithfulness_curve(setup, pairs, score_sign=record.metadata.get("score_sign", "metric"))
    return out


def _print(context: dict[str, Any], rows: list[dict[str, Any]], curves: dict[str, Any]) -> None:
    click.echo(", ".join(f"{k}: {v}" for k, v in context.items() if v is not None))
    print_table(["circuit", "level", "size", context["metric"], "kept", "faithfulness", "kl", "accuracy"],
                [[r["name"], r["level"], r.get("n_edges", r.get("n_nodes")), r["value"], r.get("kept_fraction"),
                  r["faithfulness"], r["kl"], r["accuracy"]] for r in rows])
    for r in rows:
        if "random" in r:
            rnd = r["random"]
            click.echo(f"{r['name']} vs {rnd['n']} random connected circuits of its size ({rnd['measure']}): "
                       f"{rnd['performance']:.3g} against mean {rnd['random_mean']:.3g} "
                       f"(std {rnd['random_std']:.3g}); beats {rnd['fraction_beaten']:.0%} of them")
        if "ablate_shared_with" in r:
            sh = r["ablate_shared_with"]
            click.echo(f"{r['name']} without the nodes it shares with {sh['other']} "
                       f"({' '.join(sh['shared']) or 'none'}): loses {sh['lost_share']:.1%} of its {sh['measure']}")
    if curves:
        click.echo()
        curve = next(iter(curves.values()))
        click.echo(f"MIB curves: {curve.rule}")
        print_table(["circuit", "CPR", "CMD", *[f"f@{k:g}" for k in curve.ks]],
                    [[name, c.cpr, c.cmd, *c.faithfulness] for name, c in curves.items()])
