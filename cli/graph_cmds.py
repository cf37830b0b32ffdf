"""``circuits paths``, ``neighbors``, ``stats``, ``similar``, ``contains``: graph questions about one circuit
(``catalog.graphs``) and across the catalog (``catalog.search``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import click

from catalog import queries
from cli.options import CommaList, catalog_session, db_option, fmt, info, json_option, print_json, print_table


def _load(db_url: str, name: str, *, kept_only: bool = True) -> Any:
    with catalog_session(db_url) as session:
        return queries.get_circuit(session, name, kept_only=kept_only)


@click.command("paths")
@click.argument("circuit")
@click.option("--from", "source", default="embed", show_default=True, help="Where paths start (a node key).")
@click.option("--to", "target", default="logits", show_default=True, help="Where paths end (a node key).")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True, help="How many paths.")
@db_option
@json_option
def paths_cmd(circuit: str, source: str, target: str, top: int, db_url: str, as_json: bool) -> None:
    """The strongest directed paths through a circuit's kept edges, strongest first.

    A path's strength is the product of its edges' |score| / the circuit's largest kept |score| (1 for a path of
    the strongest edges); where a head reads the previous node through several of q/k/v, the strongest counts.
    Unscored edges weigh 1, so a published circuit's paths come shortest first. See catalog/graphs.py.

    Example:

    \b
        circuits paths ioi-wang2022 --from a0.1 --to logits --top 5
    """
    from catalog.graphs import strongest_paths

    found = strongest_paths(_load(db_url, circuit), source, target, top)
    if as_json:
        print_json([dataclasses.asdict(p) for p in found])
        return
    if not found:
        click.echo(f"no directed path from {source} to {target} in {circuit}")
        return
    print_table(["#", "strength", "edges", "path"],
                [[i + 1, p.strength, len(p.edges), _path_text(p.nodes, p.edges)] for i, p in enumerate(found)])


def _path_text(nodes: tuple[str, ...], edges: tuple[str, ...]) -> str:
    """``embed -> a0.0.v -> a1.0.k -> logits``: each node as the path enters it (through q/k/v for a head)."""
    return " -> ".join([nodes[0], *(e.split("->", 1)[1] for e in edges)])


@click.command("neighbors")
@click.argument("circuit")
@click.argument("node")
@click.option("--up", "direction", flag_value="up", default=True, help="What feeds NODE (the default).")
@click.option("--down", "direction", flag_value="down", help="What NODE feeds.")
@click.option("--depth", type=click.IntRange(1, 1_000), default=1, show_default=True, help="How many edges away.")
@db_option
@json_option
def neighbors_cmd(circuit: str, node: str, direction: str, depth: int, db_url: str, as_json: bool) -> None:
    """What feeds a node of a circuit (--up) or what it feeds (--down), with edge scores and roles.

    Example:

    \b
        circuits neighbors ioi-wang2022 9.9 --up --depth 2
    """
    from catalog.graphs import neighbours

    found = neighbours(_load(db_url, circuit), node, direction, depth)
    if as_json:
        print_json([dataclasses.asdict(n) for n in found])
        return
    if not found:
        click.echo(f"nothing {'feeds' if direction == 'up' else 'is fed by'} {node} in {circuit}")
        return
    print_table(["distance", "node", "role", "via"], [[n.distance, n.key, n.role, _via(n.via)] for n in found])


def _via(edges: tuple[tuple[str, Optional[float]], ...]) -> str:
    """The edges that reach a neighbour, each with its score where it has one."""
    return ", ".join(k if s is None else f"{k} {fmt(s)}" for k, s in edges)


@click.command("stats")
@click.argument("circuit")
@db_option
@json_option
def stats_cmd(circuit: str, db_url: str, as_json: bool) -> None:
    """A circuit's shape: nodes and edges per layer and kind, depth, width, components, busiest nodes.

    Depth is the longest embed->logits path in edges; width the most heads and MLPs in one layer; dangling edges
    lie on no embed->logits path; the kept share is kept edges over every edge its run scored.

    Example:

    \b
        circuits stats toy-digits-acdc --json
    """
    from catalog.graphs import graph_stats

    stats = graph_stats(_load(db_url, circuit, kept_only=False))
    if as_json:
        print_json(dataclasses.asdict(stats))
        return
    click.echo(f"{stats.name}: {stats.n_heads} heads, {stats.n_mlps} MLPs"
               + (f", {stats.n_edges} edges" if stats.n_edges is not None else ", edges unknown"))
    rows = [[layer, c["heads"], c["mlps"], c.get("edges_in", "-")] for layer, c in stats.per_layer.items()]
    print_table(["layer", "heads", "mlps", "edges in"], rows)
    if stats.n_edges is None:
        click.echo(f"width {stats.width}")
        return
    share = f"{stats.kept_share:.2%}" if stats.kept_share is not None else "-"
    click.echo(f"edges to logits {stats.edges_to_logits}; by input {_pairs(stats.edges_by_input.items())}")
    click.echo(f"depth {fmt(stats.depth)}, width {stats.width}, components {stats.components}, "
               f"dangling edges {stats.dangling}, kept share of scored edges {share}")
    click.echo(f"most edges in: {_pairs(stats.top_in)}; out: {_pairs(stats.top_out)}")


def _pairs(pairs: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in pairs) or "-"


@click.command("similar")
@click.argument("circuit")
@click.option("--level", type=click.Choice(["nodes", "edges"]), default="nodes", show_default=True,
              help="Compare heads and MLPs, or edges.")
@click.option("--weighted", is_flag=True, help="Rank by score-weighted Jaccard (catalog/similarity.py).")
@click.option("--top", type=click.IntRange(1, 1_000_000), default=10, show_default=True, help="How many to list.")
@click.option("--all-models", is_flag=True, help="Compare with circuits of every model, not only CIRCUIT's.")
@db_option
@json_option
def similar_cmd(circuit: str, level: str, weighted: bool, top: int, all_models: bool, db_url: str,
                as_json: bool) -> None:
    """Every catalog circuit ranked by its likeness to CIRCUIT: Jaccard, and score-weighted Jaccard.

    The weighted index compares the circuits' score distributions (each key's |score| over the circuit's total),
    so methods with different score scales compare; unscored circuits weigh their keys alike. Only circuits of
    CIRCUIT's model take part unless --all-models; at edge level only circuits known by their edges.

    Example:

    \b
        circuits similar toy-digits-acdc --level edges --weighted --top 5
    """
    from catalog.search import similar

    with catalog_session(db_url) as session:
        result = similar(session, circuit, level=level, weighted=weighted, top=top, all_models=all_models)
    if as_json:
        print_json(dataclasses.asdict(result))
        return
    click.echo(f"{circuit} ({result.size} {'components' if level == 'nodes' else 'edges'}) against "
               f"{result.compared} circuits; {result.sharing} share at least one; ranked by {result.ranked_by}")
    if result.circuits:
        print_table(["circuit", "model", "task", "method", "shared", "size", "jaccard", "weighted"],
                    [[s.name, s.model, s.task, s.method, s.shared, s.size, s.jaccard, s.weighted]
                     for s in result.circuits])


@click.command("contains")
@click.option("--nodes", type=CommaList(), default=None, metavar="NODE,...", help="Nodes all kept (9.1, a9.1, m5).")
@click.option("--edges", type=CommaList(), default=None, metavar="EDGE,...", help="Edges all kept (a0.1->a5.5.k).")
@click.option("--path", type=CommaList(), default=None, metavar="NODE,...",
              help="A directed path through these nodes, in this order (not necessarily adjacent).")
@click.option("--circuit", default=None, help="All of this circuit (its kept edges; its nodes if nodes-only).")
@click.option("--model", default=None, help="Only circuits of this model (default: all; --circuit's model).")
@db_option
@json_option
def contains_cmd(nodes: Optional[tuple[str, ...]], edges: Optional[tuple[str, ...]], path: Optional[tuple[str, ...]],
                 circuit: Optional[str], model: Optional[str], db_url: str, as_json: bool) -> None:
    """Which catalog circuits contain all these nodes, edges, a directed path, or all of another circuit.

    Every condition given must hold. Circuits known by their nodes only are not searched for edges or paths
    (their number is said).

    Example:

    \b
        circuits contains --nodes 9.1,6.9
        circuits contains --edges "a0.1->a5.5.k" --path a0.1,a9.1,logits
        circuits contains --circuit toy-digits-acdc
    """
    from catalog.search import containing

    with catalog_session(db_url) as session:
        found = containing(session, nodes=nodes or (), edges=edges or (), path=path or (), circuit=circuit,
                           model=model)
    if as_json:
        print_json({"asked": found.asked, "circuits": [c.name for c in found.circuits],
                    "not_searched_nodes_only": found.skipped})
        return
    if found.skipped:
        info(f"note: {found.skipped} circuits list nodes only and were not searched for a path")
    if not found.circuits:
        click.echo("no circuit contains all of that")
        return
    print_table(["circuit", "model", "task", "method", "nodes", "edges"],
                [[c.name, c.model, c.task, c.method, c.n_nodes, c.n_edges if c.edges_known else "-"]
                 for c in found.circuits])
