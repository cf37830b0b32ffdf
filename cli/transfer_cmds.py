"""``circuits transfer`` and ``circuits dissociation``: does one task's circuit do another task's job?

Overlap does not say so (Hanna et al. 2024, "Have Faith in Faithfulness", arXiv 2403.17806); Lan, Torr & Barez
(2023, arXiv 2311.04131) measure it directly, keeping only one task's circuit while running another task. Both
commands keep every measurement as an evaluation (``cli.measure``) and read it back when asked again.

How a cell is measured, by default as Lan et al. measured theirs (apartresearch/seqcont_circuits,
``notebooks/gpt2_expms/iter_node_pruning/numerals_iterNodePruning.ipynb`` cells 42-44: the digits prompts run with
``add_ablation_hook_MLP_head(model, dataset_2, heads, mlps)``, ``src/iter_node_pruning/node_ablation_fns.py`` lines
14-75): the circuit's own level (nodes for their circuits: every head and MLP outside it ablated, at every
position), the first circuit's ablation (theirs: mean over the *evaluated* task's random-member prompts), each
task's own corruption and metric (their logit difference), reported as the share of the full model's metric
(kept_fraction, their "% of the full model") and as MIB's faithfulness.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import click

from cli.measure import Ask, Bench, check_plot, fresh_option, identify, keep, look_up, make_ask, measure, say_reused
from cli.options import CommaList, catalog_session, db_option, info, json_option, print_json, print_table, run_options

LAN_CIRCUITS = ("digits-lan2023", "numwords-lan2023", "months-lan2023", "ioi-wang2022")
LAN_TASKS = ("digits", "numwords", "months")
# Lan et al.'s stored figures: the digits task's logit difference (% of the full model) with only another circuit
# (numerals_iterNodePruning.ipynb cells 42-44; ioi-wang2022 is Wang et al.'s 26 heads with all MLPs, as there).
LAN_REPORTED = {("numwords-lan2023", "digits"): 0.873, ("months-lan2023", "digits"): 0.437,
                ("ioi-wang2022", "digits"): -0.067}
MEASURES = ("faithfulness", "kept_fraction")


@click.command("transfer")
@click.argument("circuits", nargs=-1)
@click.option("--tasks", type=CommaList(), default=None,
              help="Tasks to evaluate every circuit on (default: the circuits' own tasks, in order).")
@click.option("--lan", is_flag=True,
              help="Lan et al.'s comparison: digits-lan2023, numwords-lan2023, months-lan2023 and ioi-wang2022 on "
              "digits, numwords and months, with GPT-2 small (imports the reference circuits the catalog lacks).")
@run_options("model", "metric", "ablation", "corruption", "n_prompts", "seed", "device", "dtype", "positions",
             "filter", follows="the first circuit's evaluation; the metric: each task's")
@click.option("--level", type=click.Choice(["nodes", "edges"]), default=None,
              help="Ablate outside each circuit's nodes or edges (default: each circuit as it was made).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw the faithfulness (or --plot-measure) matrix as a heatmap to this file (.png, .pdf, .svg).")
@click.option("--plot-measure", type=click.Choice(MEASURES), default="faithfulness", show_default=True)
@fresh_option
@db_option
@json_option
def transfer_cmd(circuits: tuple[str, ...], tasks: Optional[tuple[str, ...]], lan: bool, model_name: Optional[str],
                 metric: Optional[str], ablation: Optional[str], corruption: Optional[str], n_prompts: Optional[int],
                 seed: int, device: str, dtype: str, positions: Optional[str], correctness_filter: bool,
                 level: Optional[str], plot: Optional[Path], plot_measure: str, fresh: bool, db_url: str,
                 as_json: bool) -> None:
    """Evaluate each circuit on each task: the matrix of faithfulness and kept fraction, beside the full model's.

    Rows: the full model, the empty circuit (every edge ablated), then each circuit; columns: the tasks. A cell is
    the circuit evaluated on a task it may not have been found for (Lan et al. 2023: the digits task keeps 87.3 %
    of GPT-2 small's logit difference with only the number-words circuit, 43.7 % with only the months circuit,
    -6.7 % with the IOI heads plus all MLPs). Every cell is kept as an evaluation and read back when asked again.

    Example:

    \b
        circuits transfer toy-digits-eap toy-months-eap --tasks digits,months --plot transfer.pdf
        circuits transfer --lan
    """
    from discovery.config import resolve_common

    check_plot(plot)
    names, tasks, model_name = _what(circuits, tasks, lan, model_name)
    if model_name is not None:  # the model first: without it nothing is imported, read or loaded
        identity = identify(model_name)
    if lan:
        _import_lan(db_url)
    records = _read(db_url, names)
    model = model_name or records[0].model
    if model_name is None:
        identity = identify(model)
    tasks = tasks or tuple(dict.fromkeys(r.task for r in records if r.task))
    if not tasks:
        raise click.UsageError("the circuits name no task: give --tasks")
    ablation = ablation or records[0].evaluation_defaults()["ablation"]
    commons = {t: resolve_common(model, t, metric=metric, ablation=ablation, corruption=corruption,
                                 n_prompts=n_prompts, seed=seed, positions=positions, device=device, dtype=dtype,
                                 correctness_filter=correctness_filter) for t in tasks}
    asks = {(r.name, t): make_ask(identity, r, commons[t], _level(r, level), "circuit") for r in records
            for t in tasks}
    look_up(db_url, list(asks.values()), fresh)
    measured = measure(list(asks.values()), Bench(), _evaluate)
    matrix = _matrix(records, tasks, asks, commons)
    if plot is not None:
        from catalog.figures import plot_transfer

        plot_transfer(matrix, plot, measure=plot_measure)  # before anything is kept
        info(f"drew the transfer matrix to {plot}")
    keep(db_url, measured, identity)
    say_reused(list(asks.values()))
    first = next(iter(asks.values()))
    context = {"model": model, "ablation": ablation, "level": level or "each circuit's own",
               "prompts": {t: asks[(records[0].name, t)].settings.get("prompts") for t in tasks},
               "corruption": {t: commons[t]["corruption"] for t in tasks}, "seed": seed,
               "positions": first.common["positions"]}
    if as_json:
        reported = {f"{c} on {t}": v for (c, t), v in LAN_REPORTED.items() if c in matrix.circuits and t in tasks}
        print_json({**context, **matrix.to_dict(), "lan2023_reported_kept_fraction": reported or None,
                    "measured": len(measured), "reused": len(asks) - len(measured)})
        return
    _print(context, matrix)


def _what(circuits: Sequence[str], tasks: Optional[tuple[str, ...]], lan: bool,
          model: Optional[str]) -> tuple[tuple[str, ...], Optional[tuple[str, ...]], Optional[str]]:
    if lan:
        return tuple(circuits) or LAN_CIRCUITS, tasks or LAN_TASKS, model or "gpt2"
    if not circuits:
        raise click.UsageError("name the circuits to compare (or --lan for Lan et al.'s)")
    return tuple(dict.fromkeys(circuits)), tasks, model


def _import_lan(db_url: str) -> None:
    from catalog import Catalog
    from catalog.reference import load_reference
    from cli.compare_cmds import import_references

    with Catalog(db_url) as catalog:
        import_references(catalog, [load_reference(n) for n in LAN_CIRCUITS])


def _read(db_url: str, names: Sequence[str]) -> list[Any]:
    with catalog_session(db_url) as session:
        from catalog.queries import get_circuit

        return [get_circuit(session, n, kept_only=True) for n in names]


def _level(record: Any, level: Optional[str]) -> str:
    from discovery.errors import SettingsError

    chosen = level or record.evaluation_defaults()["level"]
    if chosen == "edges" and not record.edges_known:
        raise SettingsError(f"circuit {record.name} lists nodes only, so it cannot be evaluated at edge level")
    return str(chosen)


def _evaluate(setup: Any, ask: Ask) -> dict[str, Any]:
    from cli.evaluate_cmds import circuit_parts
    from discovery.evaluation import evaluate_circuit

    nodes, edges = circuit_parts(ask.record, setup.graph)
    return evaluate_circuit(setup, nodes=nodes, edges=edges if ask.level == "edges" else None)


def _matrix(records: Sequence[Any], tasks: Sequence[str], asks: dict[tuple[str, str], Ask],
            commons: dict[str, Any]) -> Any:
    from catalog.stats import TransferMatrix

    cells: dict[str, dict[str, dict[str, Any]]] = {}
    model: dict[str, float] = {}
    empty: dict[str, float] = {}
    for (name, task), ask in asks.items():
        r = ask.results or {}
        metric = commons[task]["metric"]
        cells.setdefault(name, {})[task] = {k: r.get(k) for k in ("value", "value_sem", "kept_fraction",
                                                                   "faithfulness", "kl", "accuracy", "level")}
        cells[name][task]["reused"] = ask.reused
        model[task], empty[task] = r["model_" + metric], r["empty_" + metric]
    return TransferMatrix(circuits=tuple(r.name for r in records), tasks=tuple(tasks), cells=cells, model=model,
                          empty=empty, home={r.name: r.task for r in records},
                          metrics={t: commons[t]["metric"] for t in tasks})


def _print(context: dict[str, Any], matrix: Any) -> None:
    click.echo(f"model: {context['model']}, ablation: {context['ablation']}, level: {context['level']}, "
               f"seed: {context['seed']}")
    for task in matrix.tasks:
        click.echo(f"  {task}: {matrix.metrics[task]}, corruption {context['corruption'][task]}, prompts "
                   f"{context['prompts'][task]}; full model {matrix.model[task]:.4g}, empty circuit "
                   f"{matrix.empty[task]:.4g}")
    for which in MEASURES:
        click.echo()
        click.echo(f"{which.replace('_', ' ')} (rows: circuits; columns: the task evaluated on; * its own task)")
        rows = matrix.rows(which)
        print_table(["", *matrix.tasks], [(label, *_cells(matrix, label, values)) for label, values in rows])
    reported = [(c, t, v) for (c, t), v in LAN_REPORTED.items() if c in matrix.circuits and t in matrix.tasks]
    if reported:
        click.echo()
        click.echo("Lan et al. (2023) report, on GPT-2 small, the kept fraction of the digits task's logit difference:")
        for c, t, v in reported:
            here = matrix.cells[c][t].get("kept_fraction")
            click.echo(f"  {c} on {t}: {v:.1%} (here {here:.1%})" if isinstance(here, float) else f"  {c}: {v:.1%}")


def _cells(matrix: Any, label: str, values: Sequence[Optional[float]]) -> list[str]:
    home = matrix.home.get(label)
    return [("-" if v is None else f"{v:.3f}") + (" *" if home == t else "") for t, v in zip(matrix.tasks, values)]


# ---------------------------------------------------------------------------------------------------------
# circuits dissociation


@click.command("dissociation")
@click.argument("circuits", nargs=-1, required=True)
@click.option("--hurt", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="A lesion hurts a task when it removes at least this share of the model's performance (this "
              "project's threshold: no paper fixes one).")
@run_options("model", "ablation", "n_prompts", "seed", "device", "dtype", "positions", "filter",
             follows="the first circuit's evaluation")
@fresh_option
@db_option
@json_option
def dissociation_cmd(circuits: tuple[str, ...], hurt: float, model_name: Optional[str], ablation: Optional[str],
                     n_prompts: Optional[int], seed: int, device: str, dtype: str, positions: Optional[str],
                     correctness_filter: bool, fresh: bool, db_url: str, as_json: bool) -> None:
    """Double dissociation for every pair of circuits: lesion the full model and measure both circuits' tasks.

    For circuits A (task a) and B (task b): ablating the components A and B share should hurt both tasks; ablating
    A's own components should hurt a and spare b, and B's own hurt b and spare a (a double dissociation). Each
    lesion removes heads and MLPs from the full model (node ablation) and is kept as an evaluation.

    Example:

    \b
        circuits dissociation toy-digits-eap toy-months-eap toy-ioi-eap
        circuits dissociation digits-lan2023 months-lan2023 --hurt 0.2 --json
    """
    from discovery.config import resolve_common

    names = tuple(dict.fromkeys(circuits))
    if len(names) < 2:
        raise click.UsageError("give at least two circuits")
    records = _read(db_url, names)
    untasked = [r.name for r in records if not r.task]
    if untasked:
        raise click.UsageError(f"circuit {untasked[0]} names no task: a dissociation measures each circuit's task")
    model = model_name or records[0].model
    identity = identify(model)
    ablation = ablation or records[0].evaluation_defaults()["ablation"]
    commons = {t: resolve_common(model, t, ablation=ablation, n_prompts=n_prompts, seed=seed, positions=positions,
                                 device=device, dtype=dtype, correctness_filter=correctness_filter)
               for t in dict.fromkeys(r.task for r in records)}
    pairs = [(records[i], records[j]) for i in range(len(records)) for j in range(i + 1, len(records))]
    asks = {(a.name, b.name): _lesion_asks(identity, a, b, commons) for a, b in pairs}
    every = [x for group in asks.values() for x in group.values()]
    look_up(db_url, every, fresh)
    measured = measure(every, Bench(), _lesion)
    keep(db_url, measured, identity)
    say_reused(every)
    report = [_pair_report(a, b, asks[(a.name, b.name)], hurt) for a, b in pairs]
    if as_json:
        print_json({"model": model, "ablation": ablation, "hurt": hurt, "pairs": report})
        return
    _print_dissociation(model, ablation, hurt, report)


def _lesion_asks(identity: Any, a: Any, b: Any, commons: dict[str, Any]) -> dict[tuple[str, str], Ask]:
    """The three lesions of the pair, each on task a (as an evaluation of A) and task b (of B)."""
    from catalog.compare import component_keys
    from catalog.evaluations import keys_hash

    ka, kb = component_keys(a), component_keys(b)
    removed = {"shared": ka & kb, "only_a": ka - kb, "only_b": kb - ka}
    out = {}
    for lesion, keys in removed.items():
        for side, record in (("a", a), ("b", b)):
            digest = keys_hash(keys, "nodes")
            ask = make_ask(identity, record, commons[record.task], "nodes", "lesion", {"removed": digest},
                           circuit=digest)
            ask.inputs["removed"] = sorted(keys)
            out[(lesion, side)] = ask
    return out


def _lesion(setup: Any, ask: Ask) -> dict[str, Any]:
    from discovery.evaluation.dissociation import lesions
    from discovery.graph import parse_node

    removed = [setup.graph.check_node(parse_node(k)) for k in ask.inputs["removed"]]
    return lesions(setup, {"lesion": removed})["lesion"]


def _pair_report(a: Any, b: Any, asks: dict[tuple[str, str], Ask], hurt: float) -> dict[str, Any]:
    from discovery.evaluation.dissociation import LESIONS, verdict

    on_a = {lesion: asks[(lesion, "a")].results or {} for lesion in LESIONS}
    on_b = {lesion: asks[(lesion, "b")].results or {} for lesion in LESIONS}
    return {"a": a.name, "b": b.name, "task_a": a.task, "task_b": b.task, "on_a": on_a, "on_b": on_b,
            "verdict": verdict(on_a, on_b, hurt)}


def _print_dissociation(model: str, ablation: str, hurt: float, report: Sequence[dict[str, Any]]) -> None:
    click.echo(f"model: {model}, ablation: {ablation}; lesions of the full model (node ablation); a lesion hurts "
               f"a task when it removes >= {hurt:.0%} of the model's performance")
    for pair in report:
        a, b, v = pair["a"], pair["b"], pair["verdict"]
        click.echo()
        click.echo(f"{a} (task {pair['task_a']}) and {b} (task {pair['task_b']}):")
        labels = {"shared": "shared by both", "only_a": f"only in {a}", "only_b": f"only in {b}"}
        print_table(["lesion", "components", f"damage on {pair['task_a']}", f"damage on {pair['task_b']}"],
                    [(labels[k], len(pair["on_a"][k].get("removed", [])), pair["on_a"][k].get("damage"),
                      pair["on_b"][k].get("damage")) for k in labels])
        click.echo(f"shared hurts both: {_yes(v['shared_hurts_both'])}; {a}'s own hurt only {pair['task_a']}: "
                   f"{_yes(v['only_a_hurts_only_a'])}; {b}'s own hurt only {pair['task_b']}: "
                   f"{_yes(v['only_b_hurts_only_b'])}; double dissociation: {_yes(v['double_dissociation'])}")


def _yes(value: bool) -> str:
    return "yes" if value else "no"
