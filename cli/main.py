"""The ``circuits`` command: a thin layer over ``catalog`` and ``discovery``.

Every failure ends in one line on stderr and a non-zero exit, never a traceback: an expected one (a
``CatalogError``, a ``DiscoveryError``, a bad key, a file that cannot be written) says what to do; anything else is
reported as an internal error in one line, its traceback shown only with ``CIRCUITS_DEBUG=1``. Ctrl-C exits 130,
SIGTERM 143 (``cli.entry``).

Subcommands load lazily: ``COMMANDS`` maps each name to where it lives and its one-line help, so ``circuits
--help`` and ``circuits list`` import only what they use (a test keeps the help lines equal to the commands').
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any, Optional

import click

from catalog.errors import CatalogError
from cli.entry import signalled
from discovery.errors import DiscoveryError, Terminated
from discovery.graph import InvalidKey

# name -> ("module:attribute", the first line of its help, shown by `circuits --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("cli.analyze_cmds:analyze_cmd",
                "Find out what each node of a circuit does, and keep the answer on its nodes."),
    "contains": ("cli.graph_cmds:contains_cmd", "Which catalog circuits contain all these nodes, edges, a directed "
                 "path, or all of another circuit."),
    "db": ("cli.catalog_cmds:db_group", "Create, inspect and upgrade the catalog database's schema."),
    "delete": ("cli.catalog_cmds:delete_cmd",
               "Delete a circuit with its nodes, edges and stored scores (its run record stays)."),
    "demo": ("cli.demo_cmds:demo", "Import the published circuits, discover the toy model's circuits for five tasks, "
             "compare and draw them."),
    "diff": ("cli.compare_cmds:diff_cmd", "Circuit A against circuit B: what only one keeps, what both keep, and how "
             "shared scores and roles moved."),
    "discover": ("cli.discover_cmds:discover",
                 "Find a circuit with one method and keep it in the catalog, with everything that made it."),
    "evaluate": ("cli.evaluate_cmds:evaluate",
                 "Measure stored circuits by ablating everything outside them, on a model and a task."),
    "export": ("cli.compare_cmds:export_cmd", "Write a circuit to a file: the catalog's own format, EAP-IG's, or "
               "MIB's submission layout."),
    "holds": ("cli.catalog_cmds:holds_cmd", "Which circuits hold a node (a head like 9.1 or a9.1, an MLP like m5), "
              "and its role in each."),
    "import": ("cli.compare_cmds:import_cmd", "Add a circuit from a JSON file; a malformed or inconsistent file is "
               "refused with the reason."),
    "list": ("cli.catalog_cmds:list_cmd", "List the catalog's circuits with their kept node and edge counts."),
    "models": ("cli.discover_cmds:models_group",
               "Models discovery can load: the shipped toy model, and hub models already in the local cache."),
    "neighbors": ("cli.graph_cmds:neighbors_cmd", "What feeds a node of a circuit (--up) or what it feeds "
                  "(--down), with edge scores and roles."),
    "overlap": ("cli.compare_cmds:overlap_cmd", "What two or more circuits share: the shared keys, the Jaccard "
                "matrix, and which circuits hold each key."),
    "paths": ("cli.graph_cmds:paths_cmd", "The strongest directed paths through a circuit's kept edges, strongest "
              "first."),
    "reference": ("cli.compare_cmds:reference_group", "The published GPT-2 small circuits shipped with the catalog "
                  "(IOI, greater-than, successor, Lan et al.)."),
    "render": ("cli.compare_cmds:render_cmd",
               "Draw one or more circuits as a layered diagram, embed at the bottom and logits on top."),
    "role": ("cli.analyze_cmds:role_group",
             "Read and correct what each node of a circuit does (its role), and who said so."),
    "runs": ("cli.catalog_cmds:runs_cmd",
             "List discovery runs, oldest first, with their status, circuits and error (times are UTC)."),
    "show": ("cli.catalog_cmds:show_cmd",
             "Show a circuit: its provenance, kept nodes (with roles) and kept edges (with scores)."),
    "similar": ("cli.graph_cmds:similar_cmd", "Every catalog circuit ranked by its likeness to CIRCUIT: Jaccard, "
                "and score-weighted Jaccard."),
    "stats": ("cli.graph_cmds:stats_cmd", "A circuit's shape: nodes and edges per layer and kind, depth, width, "
              "components, busiest nodes."),
    "sweep": ("cli.sweep_cmds:sweep_group",
              "Run a grid of discovery jobs on Ray, each job once: skipped when done, resumed when stopped."),
    "tasks": ("cli.task_cmds:tasks_group", "The tasks circuits are found for, and their prompts as a model's tokens."),
    "toy": ("cli.task_cmds:toy_group", "The embedded toy model: a 4-layer GPT-2 trained here on the built-in tasks."),
    "dissociation": ("cli.transfer_cmds:dissociation_cmd", "Double dissociation for every pair of circuits: lesion "
                     "the full model and measure both circuits' tasks."),
    "evaluations": ("cli.stats_cmds:evaluations_cmd",
                    "List the evaluations the catalog keeps (of one circuit, or of all), with their figures."),
    "stability": ("cli.stats_cmds:stability_cmd", "Run one method on N resamples of its prompts (or seeds) and "
                  "report how stable the circuit it finds is."),
    "transfer": ("cli.transfer_cmds:transfer_cmd", "Evaluate each circuit on each task: the matrix of faithfulness "
                 "and kept fraction, beside the full model's."),
}


def load_command(name: str) -> click.Command:
    target, _ = COMMANDS[name]
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command), target
    return command


class CircuitsGroup(click.Group):
    """Lazy subcommands, and every failure one line (see the module docstring)."""

    def main(self, args: Any = None, prog_name: Optional[str] = None, complete_var: Optional[str] = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """click's standalone handling, but a usage error is one line too (click prints four)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as err:
            hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
            click.echo(f"Error: {err.format_message()}{hint}", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table, without importing every command's module (shortened as click does)."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        with formatter.section("Commands"):
            formatter.write_dl([(name, shorten(first, limit)) for name, (_, first) in sorted(COMMANDS.items())])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CatalogError, DiscoveryError, InvalidKey) as err:
            raise click.ClickException(first_line(err)) from None
        except BrokenPipeError:  # `circuits ... | head` closed our stdout: stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
            ctx.exit(141)  # 128 + SIGPIPE
        except OSError as err:  # a file that cannot be read or written: say which and why
            raise click.ClickException(os_error_line(err)) from None
        except KeyboardInterrupt as err:  # Ctrl-C (130) or SIGTERM (143): one line, the run recorded interrupted
            terminated = isinstance(err, Terminated)
            click.echo("terminated" if terminated else "interrupted", err=True)
            ctx.exit(143 if terminated else 130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:
            if signalled():  # the error of something a Ctrl-C or SIGTERM broke: report the signal
                terminated = signalled() == signal.SIGTERM
                click.echo("terminated" if terminated else "interrupted", err=True)
                ctx.exit(143 if terminated else 130)
            if os.environ.get("CIRCUITS_DEBUG"):
                raise
            raise click.ClickException(f"internal error ({type(err).__name__}: {first_line(err)}); please report it. "
                                       "CIRCUITS_DEBUG=1 shows the traceback") from None


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to ``limit`` characters with ``...``, as click shortens command help."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 3, 1)].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "..."


def first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def os_error_line(err: OSError) -> str:
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or first_line(err)}"


@click.group(cls=CircuitsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="circuit-catalog")
def cli() -> None:
    """Find, keep, compare and draw the circuits inside transformer language models.

    Example:

        circuits reference import && circuits overlap digits-lan2023 months-lan2023
    """


def main() -> None:
    from cli.entry import main as entry

    entry()
