"""Commands that compare, draw, move and seed circuits: overlap, diff, render, export, import, reference.

Each parses its arguments, opens one session, calls one catalog function and formats the answer. Files are
read and checked before the database is opened, so a refused import leaves the catalog untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import click

from catalog import queries
from catalog.compare import Diff, Overlap, connected_part, diff, overlap
from catalog.errors import CatalogError, NotFound
from catalog.formats.graphs import GRAPH_FORMATS
from catalog.interchange import DEFAULT_MODEL, READ_FORMATS, WRITE_FORMATS, read_circuit_file, write_circuit_file
from catalog.records import CircuitRecord, NewCircuit
from catalog.reference import list_references, load_reference, reference_names
from catalog.render import PAGES, DrawOptions, check_edges_choice, parse_layers, render
from cli.options import catalog_session, db_option, info, json_option, print_json, print_table
from discovery.graph import NodeKind

if TYPE_CHECKING:
    from catalog.api import Catalog


def _load(db_url: str, names: Sequence[str]) -> list[CircuitRecord]:
    """The circuits with their kept edges only: comparing and drawing need no more, and a discovered circuit
    stores every edge its run scored (32,491 for GPT-2 small). Exports read them all."""
    with catalog_session(db_url) as session:
        return [queries.get_circuit(session, name, kept_only=True) for name in names]


def _keys(keys: Sequence[str]) -> str:
    return " ".join(keys) if keys else "-"


# ---------------------------------------------------------------------------------------------------------
# circuits overlap / diff


@click.command("overlap")
@click.argument("circuits", nargs=-1, required=True)
@click.option("--level", type=click.Choice(["nodes", "edges"]), default="nodes", show_default=True,
              help="Compare components (heads and MLPs) or edges.")
@click.option("--kind", "kinds", type=click.Choice(["head", "mlp"]), multiple=True,
              help="At node level, compare only heads or only MLPs (repeatable; default both).")
@click.option("--null", "null", type=click.Choice(["random"]), default=None,
              help="Test whether each pair shares more than random circuits of the same sizes do: random heads and "
              "MLPs in the same numbers (nodes), random connected circuits (edges).")
@click.option("--samples", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="With --null: random draws of each pair.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True, help="With --null: the seed.")
@click.option("--correction", type=click.Choice(["holm", "bh", "none"]), default="holm", show_default=True,
              help="With --null: multiple-comparison correction over the pairs: Holm-Bonferroni (family-wise error), "
              "Benjamini-Hochberg (false discovery rate) or none.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw the Jaccard matrix (with the null's intervals under --null) to this file (.png, .pdf, .svg).")
@click.option("--connected", is_flag=True,
              help="Also the part of the shared sub-circuit connected from embed to logits by shared edges.")
@db_option
@json_option
def overlap_cmd(circuits: tuple[str, ...], level: str, kinds: tuple[str, ...], null: Optional[str], samples: int,
                seed: int, correction: str, plot: Optional[Path], connected: bool, db_url: str, as_json: bool) -> None:
    """What two or more circuits share: the shared keys, the Jaccard matrix, and which circuits hold each key.

    Only kept nodes and edges count; embed and logits, in every circuit, are left out at node level.
    Circuits known only by their nodes compare at node level. With --null random, each pair's shared count is
    compared with that of random circuits of the same sizes: the expected overlap, its 95 % interval, and a
    one-sided p-value ((k+1)/(n+1)), corrected over the pairs (Holm-Bonferroni by default).

    Example:

    \b
        circuits overlap digits-lan2023 numwords-lan2023 months-lan2023 --kind head
        circuits overlap digits-lan2023 numwords-lan2023 months-lan2023 --null random --samples 1000
        circuits overlap ioi-wang2022 ioi-acdc --level edges --json
        circuits overlap toy-digits-acdc toy-months-acdc --level edges --connected
    """
    from cli import stats_cmds

    if len(circuits) < 2:
        raise click.UsageError("give at least two circuits to compare")
    if null is None and (samples != 1000 or seed != 0 or correction != "holm"):
        raise click.UsageError("--samples, --seed and --correction go with --null random")
    stats_cmds.check_plot(plot)
    records = _load(db_url, circuits)
    result = overlap(records, level, kinds=kinds or ("head", "mlp"))
    tests = []
    if null is not None:
        with catalog_session(db_url) as session:
            shape = stats_cmds.model_shape(session, records)
        tests = stats_cmds.overlap_significance(records, level, kinds or ("head", "mlp"), samples, seed, correction,
                                                shape)
    if plot is not None:
        from catalog.figures import plot_overlap_matrix

        plot_overlap_matrix(result.circuits, result.jaccard, tests, plot)
        info(f"drew the overlap matrix to {plot}")
    core = connected_part(result) if connected else None
    if as_json:
        for warning in result.warnings:
            info(f"warning: {warning}")
        print_json({**result.to_dict(), **({"significance": [t.to_dict() for t in tests]} if null else {}),
                    **({"connected": {"nodes": list(core[0]), "edges": list(core[1])}} if core else {})})
    else:
        print_overlap(result)
        if core is not None:
            click.echo(f"connected from embed to logits: {len(core[0])} heads and MLPs, {len(core[1])} edges"
                       + (f": {_keys(core[1])}" if core[1] else " (the circuits share no embed->logits path)"))
        stats_cmds.print_significance(tests)


def print_overlap(result: Overlap) -> None:
    """The overlap as tables: what all share, the Jaccard matrix, and which circuits hold each key."""
    for warning in result.warnings:
        info(f"warning: {warning}")
    what = "edges" if result.level == "edges" else " and ".join(f"{k}s" for k in result.kinds).replace("mlps", "MLPs")
    click.echo(f"compared {what} of {len(result.circuits)} circuits")
    click.echo(f"shared by all ({len(result.shared)}): {_keys(result.shared)}")
    if result.level == "nodes" and result.shared_edges:
        click.echo(f"shared edges among them ({len(result.shared_edges)}): {_keys(result.shared_edges)}")
    click.echo()
    rows = []
    for a in result.circuits:
        cells = [f"{result.jaccard[a][b]:.3f} ({result.counts[a][b][0]}/{result.counts[a][b][1]})"
                 for b in result.circuits]
        rows.append((a, *cells))
    print_table(["jaccard", *result.circuits], rows)
    click.echo()
    print_table(
        ["key", *result.circuits, "in"],
        [(key, *("x" if c in holders else "" for c in result.circuits), len(holders))
         for key, holders in result.membership.items()],
    )


@click.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--level", type=click.Choice(["nodes", "edges"]), default=None,
              help="Default: edges when both circuits know their edges, else nodes.")
@db_option
@json_option
def diff_cmd(a: str, b: str, level: Optional[str], db_url: str, as_json: bool) -> None:
    """Circuit A against circuit B: what only one keeps, what both keep, and how shared scores and roles moved.

    Example:

    \b
        circuits diff ioi-wang2022 ioi-eap
        circuits diff digits-lan2023 numwords-lan2023 --json
    """
    first, second = _load(db_url, [a, b])
    result = diff(first, second, level)
    if as_json:
        print_json(result.to_dict())
    else:
        _print_diff(result)


def _print_diff(d: Diff) -> None:
    click.echo(f"{d.a} vs {d.b} at {d.level} level: jaccard {d.jaccard:.3f}")
    click.echo(f"only in {d.a} ({len(d.only_a)}): {_keys(d.only_a)}")
    click.echo(f"only in {d.b} ({len(d.only_b)}): {_keys(d.only_b)}")
    click.echo(f"in both ({len(d.shared)}): {_keys(d.shared)}")
    if d.score_changes:
        click.echo()
        print_table(["key", d.a, d.b, "change"], [(c.key, c.a, c.b, c.delta) for c in d.score_changes])
    if d.role_changes:
        click.echo()
        print_table(["key", f"role in {d.a}", f"role in {d.b}"], [(r.key, r.a, r.b) for r in d.role_changes])


# ---------------------------------------------------------------------------------------------------------
# circuits render / export / import


@click.command("render")
@click.argument("circuits", nargs=-1)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The drawing: .pdf, .svg or .png (needs Graphviz's dot), or .dot for the text.")
@click.option("--title", default=None, help="Title over the diagram (default: the circuits' names).")
@click.option("--edges", "edge_choice", default="all", show_default=True, metavar="all|shared|none|top:N",
              help="Which edges: all kept, those every circuit keeps, none, or the N with the largest |score|.")
@click.option("--group", type=click.Choice(["roles"]), default=None,
              help="roles: a box around each role class's nodes, as the IOI paper draws its circuit.")
@click.option("--layers", default=None, metavar="FIRST-LAST", help="Only these layers (e.g. 7-11).")
@click.option("--concentrate", is_flag=True, help="Merge parallel edges (Graphviz's edge concentration).")
@click.option("--page", type=click.Choice(list(PAGES)), default=None,
              help="Scale the drawing down to fit this page's printable area.")
@click.option("--stability", "stability_group", default=None, metavar="GROUP",
              help="Draw a group of circuits (`circuits stability`'s) as one, each node filled by the share of "
              "the group's circuits that keep it.")
@db_option
def render_cmd(circuits: tuple[str, ...], output: Path, title: Optional[str], edge_choice: str,
               group: Optional[str], layers: Optional[str], concentrate: bool, page: Optional[str],
               stability_group: Optional[str], db_url: str) -> None:
    """Draw one or more circuits as a layered diagram, embed at the bottom and logits on top.

    With several circuits, shared nodes are gold and each circuit's own nodes take its colour. Edges are blue
    (positive score) or red (negative), as wide as their |score|; the legend says what was left out.

    Example:

    \b
        circuits render ioi-wang2022 -o ioi.svg
        circuits render digits-lan2023 numwords-lan2023 months-lan2023 --page a4 -o lan.pdf
        circuits render ioi-wang2022 --group roles --edges none --page a4 -o ioi-roles.pdf
        circuits render toy-digits-eap --edges top:30 --page a4 -o digits-top30.pdf
        circuits render --stability toy-digits-eap-stability-prompts --edges shared -o stability.pdf
    """
    if bool(circuits) == bool(stability_group):
        raise click.UsageError("give the circuits to draw, or --stability GROUP")
    frequency: dict[str, float] = {}
    if stability_group:
        from catalog.stats import circuit_keys, frequencies

        with catalog_session(db_url) as session:
            circuits = tuple(queries.list_group(session, stability_group))
        if not circuits:
            raise NotFound(f"no circuit is in group {stability_group!r} (`circuits stability` makes groups)")
    records = _load(db_url, circuits)
    if stability_group:
        frequency = frequencies([circuit_keys(r, "nodes") for r in records], "nodes")
        title = title or f"{stability_group}: how often each node is kept, over {len(records)} circuits"
    options = DrawOptions(edges=check_edges_choice(edge_choice), group=group, concentrate=concentrate, page=page,
                          layers=parse_layers(layers) if layers else None, frequency=frequency)
    render(records, output, title=title, options=options)
    info(f"drew {stability_group or ', '.join(circuits)} to {output}")


@click.command("export")
@click.argument("circuit")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="The file (a folder with --to mib).")
@click.option("--to", "fmt", type=click.Choice([*WRITE_FORMATS, "mib"]), default="native", show_default=True,
              help="native: this catalog's format; eap-ig: EAP-IG's graph JSON; mib: MIB's submission folder "
              "({task}_{model}/importances.json); graphml, gexf, cytoscape: graph tools' files (yEd, Gephi, "
              "Cytoscape), whole and lossless.")
@click.option("--mib-binary", is_flag=True,
              help="With --to mib: MIB's other layout, one circuit at each of 0, 0.1, ... 50 %% of the edges.")
@db_option
def export_cmd(circuit: str, output: Path, fmt: str, mib_binary: bool, db_url: str) -> None:
    """Write a circuit to a file: the catalog's own format, EAP-IG's, or MIB's submission layout.

    Every edge score the circuit stores is written (a discovered circuit's whole graph), scores in MIB's loss sign
    for EAP-IG and MIB. The file is written whole or not at all.

    Example:

    \b
        circuits export ioi-wang2022 -o ioi.json
        circuits export ioi-eap -o ioi-eap.json --to eap-ig
        circuits export ioi-eap -o submission/ --to mib
        circuits export ioi-eap -o ioi-eap.graphml --to graphml
    """
    if mib_binary and fmt != "mib":
        raise click.UsageError("--mib-binary goes with --to mib")
    with catalog_session(db_url) as session:
        record = queries.get_circuit(session, circuit)
        shape = queries.find_model_shape(session, record.model)
    if shape and "model_shape" not in record.metadata:  # other tools' formats need the model's shape
        record = dataclasses.replace(record, metadata={**record.metadata, "model_shape": shape})
    if fmt == "mib":
        from catalog.formats.mib import write_mib

        paths = write_mib(record, output, binary=mib_binary)
        info(f"wrote {circuit} as MIB's submission: {', '.join(str(p) for p in paths)}")
        return
    write_circuit_file(record, output, fmt)
    info(f"wrote {circuit} to {output} ({fmt})")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--from", "fmt", type=click.Choice(list(READ_FORMATS)), default="native", show_default=True,
              help="Which tool wrote the file.")
@click.option("--name", default=None, help="Name in the catalog (default: the file's, or its stem for other tools).")
@click.option("--model", default=None, help=f"Model (default: the file's, or {DEFAULT_MODEL} for other tools).")
@click.option("--task", default=None, help="Task (default: the file's, or none for other tools).")
@db_option
def import_cmd(file: Path, fmt: str, name: Optional[str], model: Optional[str], task: Optional[str], db_url: str) -> None:
    """Add a circuit from a JSON file; a malformed or inconsistent file is refused with the reason.

    Other tools' files: eap-ig (EAP-IG graph JSON), auto-circuit (edge names to scores and/or a kept
    list), acdc (pairs of hook names), seqcont (Lan et al.'s heads and MLPs), and graphml, gexf or cytoscape
    files written by `circuits export` (they carry the circuit's name and model). See catalog/interchange.py.

    Example:

    \b
        circuits import ioi.json
        circuits import graph.json --from eap-ig --name ioi-eapig --task ioi
        circuits import numerals_circuit_thres_0.8.json --from seqcont --name digits-mine --task digits
    """
    named = fmt == "native" or fmt in GRAPH_FORMATS  # the file says its circuit's name and model
    assumed = not named and model is None
    if not named:
        name = name or file.stem
    new = read_circuit_file(file, fmt, name=name, model=model, task=task)
    with catalog_session(db_url, mode="create") as session:
        queries.save_circuit(session, new)
    click.echo(f"imported {new.name}: {_counts(new)}")
    if assumed:
        info(f"note: {fmt} files do not name their model; assumed {DEFAULT_MODEL} (--model to change)")


def _counts(c: NewCircuit) -> str:
    kinds = [n.kind for n in c.nodes if n.kept]
    text = f"{_plural(kinds.count(NodeKind.HEAD), 'head')}, {_plural(kinds.count(NodeKind.MLP), 'MLP')}"
    if not c.edges_known:
        return text + ", edges unknown"
    kept = sum(1 for e in c.edges if e.kept)
    return text + f", {_plural(kept, 'edge')}" + (f" ({len(c.edges) - kept} more scored)" if len(c.edges) > kept else "")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# ---------------------------------------------------------------------------------------------------------
# circuits reference ...


@click.group("reference")
def reference_group() -> None:
    """The published GPT-2 small circuits shipped with the catalog (IOI, greater-than, successor, Lan et al.).

    Example:

    \b
        circuits reference list
        circuits reference import
    """


@reference_group.command("list")
@db_option
@json_option
def reference_list_cmd(db_url: str, as_json: bool) -> None:
    """List the shipped reference circuits, their sources, and whether the catalog holds them yet.

    Example:

    \b
        circuits reference list --json
    """
    infos = list_references()
    held = _held(db_url, [i.name for i in infos])
    imported = {i.name: None if held is None else i.name in held for i in infos}
    if as_json:
        print_json([{**vars(i), "imported": imported[i.name]} for i in infos])
        return
    print_table(
        ["name", "task", "heads", "MLPs", "edges", "imported", "source"],
        [(i.name, i.task, i.n_heads, i.n_mlps, i.n_edges if i.edges_known else "unknown",
          {True: "yes", False: "no", None: "?"}[imported[i.name]], i.citation.split(". ")[0]) for i in infos],
    )


def _held(db_url: str, names: Sequence[str]) -> Optional[set[str]]:
    """Which of ``names`` the catalog holds; None (with a note) when it cannot be read, since the shipped
    list is worth showing without a working database."""
    try:
        with catalog_session(db_url) as session:
            return {n for n in names if queries.find_circuit(session, n) is not None}
    except CatalogError as err:
        info(f"note: cannot read the catalog ({str(err).splitlines()[0]}), so 'imported' is not shown")
        return None


@reference_group.command("import")
@click.argument("names", nargs=-1)
@db_option
def reference_import_cmd(names: tuple[str, ...], db_url: str) -> None:
    """Add reference circuits to the catalog (all when none is named); ones already there are skipped.

    Example:

    \b
        circuits reference import
        circuits reference import ioi-wang2022 greater-than-hanna2023 --db sqlite:///circuits.db
    """
    from catalog import Catalog

    known = reference_names()
    for name in names:
        if name not in known:
            raise NotFound(f"no reference circuit {name!r} (known: {', '.join(known)})")
    circuits = [load_reference(n) for n in dict.fromkeys(names or known)]
    with Catalog(db_url) as catalog:
        import_references(catalog, circuits)


def import_references(catalog: "Catalog", circuits: Sequence[NewCircuit]) -> None:
    """Save the circuits the catalog lacks, all in one transaction, and say what was imported once it committed."""
    added, skipped = [], []
    with catalog.session() as session:
        for circuit in circuits:
            if queries.find_circuit_id(session, circuit.name) is not None:
                skipped.append(circuit)
                continue
            queries.save_circuit(session, circuit)
            added.append(circuit)
    for circuit in skipped:
        info(f"skipped {circuit.name}: already in the catalog")
    for circuit in added:
        click.echo(f"imported {circuit.name}: {_counts(circuit)}")

