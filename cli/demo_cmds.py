"""``circuits demo``: the main job on the embedded default, what ``make demo`` runs.

It shows a new user the whole loop offline: the published GPT-2 small circuits come into the catalog, circuits
of the shipped toy model are discovered for the five tasks, their overlap is printed, and diagrams are drawn.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from cli.options import db_option, info

TASKS = ("digits", "numwords", "months", "greater-than", "ioi")
SEQUENCE_TASKS = ("digits", "numwords", "months")


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"),
              show_default=True, help="Folder for the diagrams.")
@click.option("--method", type=click.Choice(["acdc", "node-pruning", "eap", "eap-ig", "path-patching"]),
              default="acdc", show_default=True, help="The method the toy circuits are found with.")
@click.option("--n-prompts", type=click.IntRange(1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@db_option
@click.pass_context
def demo(ctx: click.Context, out_dir: Path, method: str, n_prompts: int, seed: int, db_url: str) -> None:
    """Import the published circuits, discover the toy model's circuits for five tasks, compare and draw them.

    Circuits already in the catalog are kept, so running it again only redraws.

    Example:

        circuits demo --db sqlite:///circuits.db --out demo
    """
    from catalog.db import connect, session_scope
    from catalog.queries import find_circuit
    from cli.compare_cmds import overlap_cmd, reference_import_cmd, render_cmd
    from cli.discover_cmds import discover_and_save
    from discovery.models import load_model
    from discovery.tasks import build_dataset

    started = time.perf_counter()
    click.echo("== published GPT-2 small circuits")
    ctx.invoke(reference_import_cmd, names=(), db_url=db_url)

    click.echo(f"\n== circuits of the toy model ({method}, {n_prompts} prompts a task)")
    engine = connect(db_url)
    model = load_model("toy")
    names = []
    for task in TASKS:
        name = f"toy-{task}-{method}"
        names.append(name)
        with session_scope(engine) as session:
            if find_circuit(session, name) is not None:
                click.echo(f"{name}: already in the catalog")
                continue
        dataset = build_dataset(task, model.tokenizer, n=n_prompts, seed=seed)
        record, result = discover_and_save(engine, model, dataset, method, name=name, seed=seed)
        heads = [n.key for n in record.kept_nodes if n.kind in ("head", "mlp")]
        share = result.performance.get("faithfulness")
        click.echo(f"{name}: {len(heads)} heads/MLPs, {len(record.kept_edges)} edges, "
                   f"faithfulness {share:.3f}: {' '.join(heads)}")

    click.echo("\n== which heads and MLPs do the toy model's tasks share?")
    ctx.invoke(overlap_cmd, circuits=tuple(names), level="nodes", kinds=(), db_url=db_url, as_json=False)
    click.echo("\n== and the published sequence-continuation circuits of GPT-2 small (heads)?")
    ctx.invoke(overlap_cmd, circuits=("digits-lan2023", "numwords-lan2023", "months-lan2023"), level="nodes",
               kinds=("head",), db_url=db_url, as_json=False)

    click.echo(f"\n== diagrams in {out_dir}/")
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".pdf" if shutil.which("dot") else ".dot"
    if suffix == ".dot":
        info("Graphviz's dot is missing, so the diagrams are written as .dot text "
             "(install it: sudo apt-get install graphviz)")
    drawings = [((name,), out_dir / f"{name}{suffix}") for name in names]
    drawings += [
        (tuple(f"toy-{t}-{method}" for t in SEQUENCE_TASKS), out_dir / f"toy-sequences-{method}{suffix}"),
        (("ioi-wang2022",), out_dir / f"ioi-wang2022{suffix}"),
        (("ioi-wang2022", "greater-than-hanna2023"), out_dir / f"ioi-and-greater-than{suffix}"),
        (("digits-lan2023", "numwords-lan2023", "months-lan2023"), out_dir / f"lan2023-sequences{suffix}"),
    ]
    for circuits, path in drawings:
        ctx.invoke(render_cmd, circuits=circuits, output=path, title=None, db_url=db_url)
    click.echo(f"\ndone in {time.perf_counter() - started:.0f} s; the catalog is {db_url}. Next: "
               f"`circuits list`, `circuits show toy-digits-{method}`, `circuits discover --help`.")


COMMANDS: list[click.Command] = [demo]
