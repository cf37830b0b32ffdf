"""``circuits demo``: the main job on the embedded default, what ``make demo`` runs.

It shows a new user the whole loop offline: the published GPT-2 small circuits come into the catalog, circuits
of the shipped toy model are discovered for five tasks through the run pipeline, their overlap is printed, and
diagrams are drawn. It calls the library, as a notebook would; only the printing is the CLI's.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.options import db_option, info

if TYPE_CHECKING:
    from catalog.api import Catalog

TASKS = ("digits", "numwords", "months", "greater-than", "ioi")
SEQUENCE_TASKS = ("digits", "numwords", "months")
METHODS = ("acdc", "node-pruning", "eap", "eap-ig", "path-patching")


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"),
              show_default=True, help="Folder for the diagrams.")
@click.option("--method", type=click.Choice(METHODS), default="acdc", show_default=True,
              help="The method the toy circuits are found with (at its default settings).")
@click.option("--n-prompts", type=click.IntRange(1, 100_000), default=128, show_default=True,
              help="Prompts drawn a task, fewer than Lan et al.'s 1,536 so that the demo takes a minute on a laptop "
              "(`circuits discover` uses each task's own size).")
@click.option("--seed", type=int, default=0, show_default=True)
@db_option
def demo(out_dir: Path, method: str, n_prompts: int, seed: int, db_url: str) -> None:
    """Import the published circuits, discover the toy model's circuits for five tasks, compare and draw them.

    Circuits already in the catalog are kept, so running it again only redraws.

    Example:

        circuits demo --db sqlite:///circuits.db --out demo
    """
    from catalog import Catalog
    from catalog.compare import overlap
    from catalog.queries import find_circuit_id
    from catalog.reference import load_reference, reference_names
    from cli.compare_cmds import import_references, print_overlap
    from discovery.config import make_config
    from discovery.models import load_model
    from discovery.pipeline import run

    started = time.perf_counter()
    with Catalog(db_url) as catalog:
        click.echo("== published GPT-2 small circuits")
        import_references(catalog, [load_reference(n) for n in reference_names()])

        click.echo(f"\n== circuits of the toy model ({method} at its defaults, {n_prompts} prompts a task)")
        model = load_model("toy")
        names = []
        for task in TASKS:
            name = f"toy-{task}-{method}"
            names.append(name)
            with catalog.session(read_only=True) as session:
                if find_circuit_id(session, name) is not None:
                    click.echo(f"{name}: already in the catalog")
                    continue
            config = make_config("toy", task, method, n_prompts=n_prompts, seed=seed)
            outcome = run(config, recorder=catalog, name=name, model=model)
            record, spec = outcome.saved, outcome.result.dataset
            kept = [n.key for n in record.kept_nodes if n.is_component]
            prompts = f"{spec.size} of {spec.drawn} prompts kept" if spec.filter else f"{spec.size} prompts"
            click.echo(f"{name}: {len(kept)} heads/MLPs, {len(record.kept_edges)} edges, faithfulness "
                       f"{outcome.result.performance.get('faithfulness', float('nan')):.3f} ({prompts}): "
                       f"{' '.join(kept)}")

        click.echo("\n== which heads and MLPs do the toy model's tasks share?")
        print_overlap(overlap([catalog.circuit(n, kept_only=True) for n in names]))
        click.echo("\n== and the published sequence-continuation circuits of GPT-2 small (heads)?")
        lan = [catalog.circuit(n, kept_only=True) for n in ("digits-lan2023", "numwords-lan2023", "months-lan2023")]
        print_overlap(overlap(lan, kinds=("head",)))
        _draw(catalog, out_dir, names, method)
    click.echo(f"\ndone in {time.perf_counter() - started:.0f} s; the catalog is {db_url}. Next: "
               f"`circuits list`, `circuits show toy-digits-{method}`, `circuits discover --help`.")


def _draw(catalog: "Catalog", out_dir: Path, names: list[str], method: str) -> None:
    from catalog.render import render

    click.echo(f"\n== diagrams in {out_dir}/")
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".pdf" if shutil.which("dot") else ".dot"
    if suffix == ".dot":
        info("Graphviz's dot is missing, so the diagrams are written as .dot text "
             "(install it: sudo apt-get install graphviz)")
    drawings: list[tuple[tuple[str, ...], str]] = [((name,), f"{name}{suffix}") for name in names]
    drawings += [
        (tuple(f"toy-{t}-{method}" for t in SEQUENCE_TASKS), f"toy-sequences-{method}{suffix}"),
        (("ioi-wang2022",), f"ioi-wang2022{suffix}"),
        (("ioi-wang2022", "greater-than-hanna2023"), f"ioi-and-greater-than{suffix}"),
        (("digits-lan2023", "numwords-lan2023", "months-lan2023"), f"lan2023-sequences{suffix}"),
    ]
    for circuits, file_name in drawings:
        records = [catalog.circuit(c, kept_only=True) for c in circuits]
        render(records, out_dir / file_name)
        info(f"drew {', '.join(circuits)} to {out_dir / file_name}")
