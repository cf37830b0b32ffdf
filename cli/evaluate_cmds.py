"""``circuits evaluate``: how faithful a stored circuit is, measured by real ablation on a model and task.

Unless told otherwise a circuit is evaluated the way it was made: a published circuit as its paper evaluated it
(its ``evaluation`` record: IOI's mean over the ABC prompts at node level, greater-than's 01 patching, Lan et al.'s
mean over random members), a discovered one with its run's ablation and corruption, anything else with MIB's
counterfactual patching; the output says which and why.

Every measurement is kept in the catalog (``catalog.evaluations``) under the key of what determined it, and asking
again reads it instead of loading the model (``cli.measure``); ``--fresh`` measures again. ``circuits evaluations``
lists what is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from cli.measure import Ask, Bench, check_plot, fresh_option, identify, keep, look_up, make_ask, measure, say_reused
from cli.options import catalog_session, db_option, info, json_option, print_json, print_table, run_options


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
              help="Also ablate the nodes this circuit shares with another circuit, and report what is lost "
              "(for every pair of circuits and both tasks, see `circuits dissociation`).")
@click.option("--curve", is_flag=True, help="MIB's faithfulness curve over the top k %% of the run's edges, CPR, CMD.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --curve: draw the curves of all the circuits given to this file (.png, .pdf, .svg).")
@fresh_option
@db_option
@json_option
def evaluate(circuits: tuple[str, ...], model_name: Optional[str], task: Optional[str], metric: Optional[str],
             ablation: Optional[str], corruption: Optional[str], n_prompts: Optional[int], seed: int, device: str,
             dtype: str, positions: Optional[str], correctness_filter: bool, level: Optional[str], n_random: int,
             other: Optional[str], curve: bool, plot: Optional[Path], fresh: bool, db_url: str, as_json: bool) -> None:
    """Measure stored circuits by ablating everything outside them, on a model and a task.

    Reports the metric (with its spread over the prompts), the share of the model's performance kept
    (m(C)/m(model)), MIB's faithfulness ((m(C) - m(empty)) / (m(model) - m(empty))), KL from the model and
    accuracy. Defaults follow how the (first) circuit was made: a published circuit as its paper evaluated it, a
    discovered one as its run ablated. Every figure is kept in the catalog; the same question asked again is read
    from it without loading the model (--fresh measures again; `circuits evaluations` lists them).

    Example:

    \b
        circuits evaluate toy-digits-acdc --random 20
        circuits evaluate toy-digits-acdc --ablate-shared-with toy-months-acdc
        circuits evaluate toy-digits-acdc toy-digits-eap --curve --plot curves.png
    """
    from discovery.config import resolve_common

    if plot is not None and not curve:
        raise click.UsageError("--plot draws the faithfulness curve: add --curve")
    check_plot(plot)
    with catalog_session(db_url) as session:
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
    for record in records:
        _check_level(record, level)
    identity = identify(common["model"])
    asks = {r.name: _asks(identity, r, common, level, n_random, other_record, curve) for r in records}
    every = [a for group in asks.values() for a in group.values()]
    look_up(db_url, every, fresh)
    measured = measure(every, Bench(), _compute)
    curves = _curves(asks)
    if plot is not None:
        from discovery.evaluation import plot_curves

        plot_curves(curves, plot)  # before anything is kept: a figure that cannot be written keeps nothing
        info(f"drew the faithfulness curves to {plot}")
    keep(db_url, measured, identity)
    say_reused(every)
    rows = [_row(name, group, other) for name, group in asks.items()]
    settings = every[0].settings
    context = {"model": common["model"], "task": common["task"], "metric": common["metric"],
               "ablation": common["ablation"], "corruption": common["corruption"], "level": level,
               "defaults_from": defaults["from"], "prompts": settings.get("prompts"), "seed": seed,
               "positions": common["positions"]}
    if as_json:
        print_json({**context, "circuits": rows, "curves": {k: v.as_dict() for k, v in curves.items()},
                    "measured": len(measured), "reused": len(every) - len(measured)})
        return
    _print(context, rows, curves)


def _check_level(record: Any, level: str) -> None:
    from discovery.errors import SettingsError

    if level == "edges" and not record.edges_known:
        raise SettingsError(f"circuit {record.name} lists nodes only, so it cannot be evaluated at edge level")


def _asks(identity: Any, record: Any, common: Any, level: str, n_random: int, other: Any,
          curve: bool) -> dict[str, Ask]:
    """What to measure of one circuit: itself, and the random baseline, shared-node ablation and curve asked for."""
    from catalog.evaluations import circuit_hash

    out = {"circuit": make_ask(identity, record, common, level, "circuit")}
    if n_random:
        out["random"] = make_ask(identity, record, common, level, "random", {"n": n_random, "seed": common["seed"]})
    if other is not None:
        out["ablate-shared"] = make_ask(identity, record, common, "nodes", "ablate-shared",
                                        {"other": circuit_hash(other, "nodes"), "keep_mlps": False})
        out["ablate-shared"].inputs["other"] = other
    if curve:
        scores = sorted((e.key, e.score) for e in record.edges if e.score is not None)
        out["curve"] = make_ask(identity, record, common, "edges", "curve",
                                {"ranking": "mib", "scores": _digest(scores)})
    return out


def _digest(value: Any) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(value, default=str).encode("utf-8")).hexdigest()


def _compute(setup: Any, ask: Ask) -> dict[str, Any]:
    from discovery.errors import SettingsError
    from discovery.evaluation import ablate_shared, compare_to_random, evaluate_circuit, faithfulness_curve

    record = ask.record
    nodes, edges = circuit_parts(record, setup.graph)
    members = edges if ask.level == "edges" else None
    if ask.kind == "circuit":
        return evaluate_circuit(setup, nodes=nodes, edges=members)
    if ask.kind == "random":
        return compare_to_random(setup, members if members is not None else nodes, n=ask.params["n"],
                                 seed=ask.params["seed"])
    if ask.kind == "ablate-shared":
        other_nodes, _ = circuit_parts(ask.inputs["other"], setup.graph)
        return ablate_shared(setup, nodes, other_nodes)
    pairs = scored_edges(record, setup.graph)
    if not pairs:
        raise SettingsError(f"{record.name} has no scored edges: a faithfulness curve needs a run's edge scores")
    return faithfulness_curve(setup, pairs, score_sign=record.metadata.get("score_sign", "metric")).as_dict()


def _curves(asks: dict[str, dict[str, Ask]]) -> dict[str, Any]:
    from discovery.evaluation.curves import Curve

    return {name: Curve.from_dict(group["curve"].results or {}) for name, group in asks.items() if "curve" in group}


def _row(name: str, group: dict[str, Ask], other: Optional[str]) -> dict[str, Any]:
    base = group["circuit"]
    row: dict[str, Any] = {"name": name, **(base.results or {}), "reused": base.reused}
    if "random" in group:
        row["random"] = group["random"].results
    if "ablate-shared" in group:
        row["ablate_shared_with"] = {"other": other, **(group["ablate-shared"].results or {})}
    return row


def _print(context: dict[str, Any], rows: list[dict[str, Any]], curves: dict[str, Any]) -> None:
    click.echo(", ".join(f"{k}: {v}" for k, v in context.items() if v is not None))
    print_table(["circuit", "level", "size", context["metric"], "± sem", "kept", "faithfulness", "kl", "accuracy",
                 "measured"],
                [[r["name"], r["level"], r.get("n_edges", r.get("n_nodes")), r["value"], r.get("value_sem"),
                  r.get("kept_fraction"), r["faithfulness"], r["kl"], r["accuracy"],
                  "kept" if r["reused"] else "now"] for r in rows])
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
                    [[name, c.cpr, c.cmd, *c.signed.faithfulness] for name, c in curves.items()])
