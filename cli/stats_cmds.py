"""``circuits stability`` and ``circuits evaluations``, and the significance test ``circuits overlap --null`` runs:
circuits with error bars. The statistics are ``catalog.stats`` (torch-free), the figures ``catalog.figures``, the
resampled runs ``discovery.evaluation.resampling``; transfer and dissociation live in ``cli.transfer_cmds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import click

from cli.discover_cmds import ProgressBar, method_options
from cli.measure import check_plot
from cli.options import CommaList, catalog_session, db_option, info, json_option, print_json, print_table, run_options
from discovery.evaluation.resampling import RESAMPLE_KINDS
from discovery.methods import METHODS

TOP_EDGES = 25  # edges listed in the text report (all are in --json)


class GroupRecorder:
    """The run pipeline's recorder (``catalog.Catalog``) putting every circuit it saves in one group."""

    def __init__(self, catalog: Any, group: str):
        self.catalog, self.group = catalog, group

    def check_name(self, name: Optional[str]) -> None:
        self.catalog.check_name(name)

    def start(self, config: Any, model: Any, dataset: Any) -> int:
        return int(self.catalog.start(config, model, dataset))

    def finish(self, run_id: int, result: Any, name: Optional[str]) -> Any:
        return self.catalog.finish(run_id, result, name, group=self.group)

    def fail(self, run_id: int, status: str, error: str) -> None:
        self.catalog.fail(run_id, status, error)


@click.command("stability")
@click.option("--method", type=click.Choice(list(METHODS)), default=None,
              help="The method to run on each resample (leave out with --group to report on a stored group).")
@click.option("--resamples", "n", type=click.IntRange(2, 10_000), default=20, show_default=True,
              help="How many runs (Méloux et al.'s bar asks for at least 100).")
@click.option("--resample", "kinds", type=CommaList(RESAMPLE_KINDS), default="prompts", show_default=True,
              help="What varies between runs: prompts (a bootstrap resample of the run's prompts, resample i drawn "
              "with seed i), seeds (seed, seed+1, ...: other prompts and method randomness), or prompts,seeds.")
@click.option("--group", default=None,
              help="The group's name (default MODEL-TASK-METHOD-stability-RESAMPLE); its circuits are GROUP-001, ...")
@click.option("--level", type=click.Choice(["nodes", "edges"]), default=None,
              help="Compare edges or heads and MLPs (default: edges when the method finds edges).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw the Jaccard histogram and the node frequencies to this file (.png, .pdf, .svg).")
@run_options()
@method_options
@db_option
@json_option
def stability_cmd(method: Optional[str], n: int, kinds: tuple[str, ...], group: Optional[str], level: Optional[str],
                  plot: Optional[Path], db_url: str, as_json: bool, **options: Any) -> None:
    """Run one method on N resamples of its prompts (or seeds) and report how stable the circuit it finds is.

    The runs are kept as circuits of one group (GROUP-001, GROUP-002, ...); runs already in the group with the
    same settings are reused, so the same command twice runs nothing new. Reported: the pairwise Jaccard index of
    the runs' circuits (mean and 95 % interval over all pairs), how often each node and edge is kept, and the
    verdict against Méloux et al.'s bar (arXiv 2510.00845): mean Jaccard >= 0.8 over >= 100 resamples; they measure
    0.67 for EAP-IG's IOI circuit in GPT-2 small.

    Example:

    \b
        circuits stability --model toy --task digits --method eap --top-k 40 --resamples 20 --plot digits.png
        circuits stability --group toy-digits-eap-stability-prompts --json
    """
    from catalog.stats import stability

    check_plot(plot)
    if method is None:
        if group is None:
            raise click.UsageError("give --method (and --task) to run a stability study, or --group to report one")
        names = _stored_group(db_url, group)
    else:
        names, group = _run_group(method, n, kinds, group, db_url, options)
    with catalog_session(db_url) as session:
        from catalog.queries import get_circuit

        records = [get_circuit(session, name, kept_only=True) for name in names]
    report = stability(records, level)
    if plot is not None:
        from catalog.figures import plot_stability

        plot_stability(report, plot, title=f"stability of {group}")
        info(f"drew the stability of {group} to {plot}")
    sizes = {r.name: (len(r.kept_edges), sum(1 for x in r.kept_nodes if x.is_component)) for r in records}
    if as_json:
        print_json({"group": group, **report.to_dict(),
                    "runs": [{"name": r.name, "n_edges": sizes[r.name][0], "n_components": sizes[r.name][1],
                              "performance": dict(r.performance), "resample": r.metadata.get("resample"),
                              "seed": (r.metadata.get("config") or {}).get("seed")} for r in records]})
        return
    _print_stability(group, report, records)


def _stored_group(db_url: str, group: str) -> list[str]:
    from catalog.errors import NotFound

    with catalog_session(db_url) as session:
        from catalog.queries import list_group

        names = list_group(session, group)
    if not names:
        raise NotFound(f"no circuit is in the group {group!r} (run `circuits stability --method ...` first)")
    return names


def _run_group(method: str, n: int, kinds: Sequence[str], group: Optional[str], db_url: str,
               options: dict[str, Any]) -> tuple[list[str], str]:
    """Run the resamples the group lacks (one model, loaded once, only if something is missing); their names."""
    from catalog import Catalog
    from catalog.validate import check_name
    from cli.discover_cmds import make_run_config
    from discovery.evaluation.resampling import plan_resamples, run_resample

    if options.get("task") is None:
        raise click.UsageError("--task is needed to run a stability study")
    config = make_run_config(method, options)
    plan = plan_resamples(config, n, kinds)
    model_label = config.model.rstrip("/").split("/")[-1]
    task_label = config.task.rsplit("/", 1)[-1].removeprefix("file:")
    group = check_name(group or f"{model_label}-{task_label}-{method}-stability-{'+'.join(kinds)}"[-190:],
                       "group name")
    names = [check_name(f"{group}-{r.index:03d}") for r in plan]
    todo = _missing(db_url, group, names, plan)
    if todo:
        from discovery.models import load_model

        model = load_model(config.model, device=config.device, dtype=config.dtype)
        with Catalog(db_url) as catalog:
            recorder = GroupRecorder(catalog, group)
            for i, (name, resample) in enumerate(todo, 1):
                bar = ProgressBar(f"{method} on {config.task}, resample {resample.index} ({i} of {len(todo)})")
                try:
                    run_resample(resample, model, recorder=recorder, name=name, progress=bar)
                finally:
                    bar.close()
    if len(todo) < len(plan):
        info(f"reused {len(plan) - len(todo)} of {len(plan)} runs already in the group {group}")
    return names, group


def _missing(db_url: str, group: str, names: Sequence[str], plan: Sequence[Any]) -> list[tuple[str, Any]]:
    """The (name, resample) pairs not yet in the catalog; a name taken by another run's circuit is refused."""
    from catalog.errors import AlreadyExists, CatalogError

    try:
        with catalog_session(db_url) as session:
            from catalog.queries import find_circuit, find_group

            found = {n: (find_circuit(session, n, kept_only=True), find_group(session, n)) for n in names}
    except CatalogError as err:
        if "no catalog at" not in str(err):
            raise
        return list(zip(names, plan))  # a new catalog: everything is to run
    todo = []
    for name, resample in zip(names, plan):
        record, in_group = found[name]
        if record is None:
            todo.append((name, resample))
            continue
        same = (in_group == group and record.metadata.get("config_key") == resample.config.key
                and record.metadata.get("resample") == resample.bootstrap)
        if not same:
            raise AlreadyExists(f"{name} is already in the catalog, made with other settings: choose another --group "
                                "or delete the group's circuits")
    return todo


def _print_stability(group: str, report: Any, records: Sequence[Any]) -> None:
    first = records[0]
    config = first.metadata.get("config") or {}
    click.echo(f"stability of {group}: {report.n} runs of {first.method} on {first.task} ({first.model})"
               + (f", {config.get('n_prompts')} prompts drawn" if config else ""))
    j, nj = report.jaccard, report.node_jaccard
    click.echo(f"pairwise Jaccard of {report.level} over {len(report.jaccards)} pairs: mean {j.mean:.3f}, "
               f"95 % of pairs in [{j.low:.3f}, {j.high:.3f}]")
    if report.level == "edges":
        click.echo(f"pairwise Jaccard of heads and MLPs: mean {nj.mean:.3f}, 95 % of pairs in "
                   f"[{nj.low:.3f}, {nj.high:.3f}]")
    if report.performance is not None:
        p = report.performance
        click.echo(f"{report.performance_measure} of the runs' circuits: mean {p.mean:.3f}, 95 % in "
                   f"[{p.low:.3f}, {p.high:.3f}]")
    click.echo(f"verdict: {report.verdict_text}; Méloux et al. measure 0.67 for EAP-IG's GPT-2-small IOI circuit")
    click.echo()
    print_table(["node", "kept in"], [(k, f"{f:.0%}") for k, f in report.node_frequency.items()])
    if report.edge_frequency:
        click.echo()
        always = sum(1 for f in report.edge_frequency.values() if f == 1.0)
        click.echo(f"{len(report.edge_frequency)} edges kept by some run, {always} by every run; the "
                   f"{min(TOP_EDGES, len(report.edge_frequency))} most frequent (all with --json):")
        print_table(["edge", "kept in"], [(k, f"{f:.0%}") for k, f in list(report.edge_frequency.items())[:TOP_EDGES]])


# ---------------------------------------------------------------------------------------------------------
# circuits evaluations


@click.command("evaluations")
@click.argument("circuit", required=False)
@db_option
@json_option
def evaluations_cmd(circuit: Optional[str], db_url: str, as_json: bool) -> None:
    """List the evaluations the catalog keeps (of one circuit, or of all), with their figures.

    Every `circuits evaluate`, `transfer` and `dissociation` measurement is kept under the key of what determined
    it (the circuit's content, model weights, prompts, metric, ablation, positions, level, code version) and read
    back when asked again.

    Example:

    \b
        circuits evaluations toy-digits-acdc
        circuits evaluations --json
    """
    with catalog_session(db_url) as session:
        from catalog.queries import list_evaluations

        kept = list_evaluations(session, circuit)
    if as_json:
        print_json([{**vars(e), "created_at": e.created_at.isoformat()} for e in kept])
        return
    print_table(["circuit", "kind", "task", "metric", "ablation", "level", "figures", "prompts", "measured (UTC)"],
                [(e.circuit, e.settings.get("kind", "circuit"), e.task, e.metric, e.ablation, e.level, summary(e),
                  e.settings.get("prompts"), e.created_at.strftime("%Y-%m-%d %H:%M")) for e in kept])


def summary(e: Any) -> str:
    """A kept evaluation's figures in a few words."""
    r, kind = e.results, e.settings.get("kind", "circuit")
    if kind == "random":
        return f"{r.get('performance', float('nan')):.3g} beats {r.get('fraction_beaten', float('nan')):.0%} of {r.get('n')}"
    if kind == "ablate-shared":
        return f"loses {r.get('lost_share', float('nan')):.1%} without {r.get('n_shared')} shared"
    if kind == "curve":
        return f"CPR {r.get('cpr', float('nan')):.3f}, CMD {r.get('cmd', float('nan')):.3f}"
    if kind == "lesion":
        return f"damage {r.get('damage', float('nan')):.3f} removing {len(r.get('removed', []))}"
    parts = [f"{k} {r[k]:.3g}" for k in ("kept_fraction", "faithfulness") if isinstance(r.get(k), (int, float))]
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------------------
# circuits overlap --null random


def overlap_significance(records: Sequence[Any], level: str, kinds: Sequence[str], samples: int, seed: int,
                         correction: str, shape: Any) -> list[Any]:
    """The null test of ``catalog.stats.overlap_nulls`` for every pair of ``records``."""
    from catalog.stats import overlap_nulls

    return overlap_nulls(records, shape, level=level, samples=samples, seed=seed, kinds=kinds, correction=correction)


def model_shape(session: Any, records: Sequence[Any]) -> Any:
    """The shape of the circuits' model, from the catalog (a run used it) or the circuits' own ``model_shape``."""
    from catalog.errors import InvalidCircuit
    from catalog.queries import find_model_shape
    from discovery.graph import ModelShape

    models = {r.model for r in records}
    if len(models) > 1:
        raise InvalidCircuit(f"a null model needs circuits of one model, got {', '.join(sorted(models))}")
    shape = find_model_shape(session, records[0].model)
    for record in records:
        declared = record.metadata.get("model_shape")
        if shape is None and isinstance(declared, dict):
            shape = declared
    if shape is None:
        raise InvalidCircuit(f"the catalog does not know the shape of {records[0].model} (layers and heads): "
                             "a null model draws from it")
    return ModelShape(int(shape["n_layers"]), int(shape["n_heads"]))


def print_significance(tests: Sequence[Any]) -> None:
    from catalog.stats import CORRECTION_NAMES

    if not tests:
        return
    t0 = tests[0]
    click.echo()
    null = ("each pair's numbers of heads and of MLPs drawn uniformly" if t0.level == "nodes" else
            "random connected circuits with each pair's numbers of edges and of heads and MLPs touched")
    click.echo(f"is the overlap larger than chance? null: {null}, {t0.samples} draws (seed {t0.seed}); "
               f"p = (k+1)/(n+1), one-sided; corrected for {len(tests)} comparison(s) by "
               f"{CORRECTION_NAMES[t0.correction]}")
    print_table(["a", "b", "shared", "expected", "null 95 %", "jaccard", "null jaccard 95 %", "p", "exact p",
                 "adjusted p"],
                [(t.a, t.b, t.observed, t.expected, f"[{t.low:g}, {t.high:g}]", t.jaccard,
                  f"[{t.jaccard_low:.3f}, {t.jaccard_high:.3f}]", t.p_value, t.exact_p, t.adjusted_p)
                 for t in tests])
