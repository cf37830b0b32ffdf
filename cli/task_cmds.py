"""Commands: ``circuits tasks ...`` (the built-in tasks and a researcher's own prompts) and ``circuits toy ...``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import click

from cli.options import info, json_option, print_json, print_table

MODEL_HELP = "Whose tokenizer: 'toy' (the shipped toy model) or a local model folder."


@click.group("tasks")
def tasks_group() -> None:
    """The tasks circuits are found for, and their prompts as a model's tokens.

    Example:

        circuits tasks list && circuits tasks show ioi --model toy --n 3
    """


@tasks_group.command("list")
@json_option
def tasks_list(as_json: bool) -> None:
    """List the built-in tasks with their metric and corruptions.

    Example:

        circuits tasks list --json
    """
    from discovery.tasks import list_tasks

    rows = [
        {
            "name": t.name,
            "metric": t.metric,
            "corruptions": list(t.corruptions),
            "default_corruption": t.default_corruption,
            "description": t.description,
        }
        for t in list_tasks()
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        ["task", "metric", "corruptions (default first)", "description"],
        [
            [
                r["name"],
                r["metric"],
                ", ".join([str(r["default_corruption"])] + [str(c) for c in r["corruptions"]
                                                              if c != r["default_corruption"]]),
                r["description"],
            ]
            for r in rows
        ],
    )
    info("also: --task file:PROMPTS.jsonl (one {clean, corrupted, answer, wrong} object a line)")


def _items(tokenizer: Any, ids: Any, mask: Any, limit: int = 6) -> str:
    tokens = tokenizer.convert_ids_to_tokens([int(i) for i, m in zip(ids, mask) if m])
    shown = " ".join(repr(t) for t in tokens[:limit])
    return shown + (f" ... ({len(tokens)} in all)" if len(tokens) > limit else "")


def _dataset(task: str, model: str, n: int, seed: int, corruption: Optional[str]) -> tuple[Any, Any]:
    from discovery.config import check_n_prompts, check_seed
    from discovery.tasks import build_dataset, get_task, load_tokenizer

    task_obj = get_task(task)
    n = check_n_prompts(task_obj, n)  # bounded before any work: a billion prompts would only fill memory
    tokenizer = load_tokenizer(model)
    return tokenizer, build_dataset(task_obj, tokenizer, n=n, seed=check_seed(seed), corruption=corruption)


@tasks_group.command("show")
@click.argument("task")
@click.option("--model", "model", required=True, help=MODEL_HELP)
@click.option("--n", "n", default=5, show_default=True, help="How many prompts.")
@click.option("--seed", default=0, show_default=True, help="Seed the prompts are drawn with.")
@click.option("--corruption", default=None, help="Corruption (default: the task's own).")
@json_option
def tasks_show(task: str, model: str, n: int, seed: int, corruption: Optional[str], as_json: bool) -> None:
    """Show example prompts of TASK as MODEL's tokens: clean, corrupted, answers and wrong answers.

    TASK is a built-in task or file:PROMPTS.jsonl.

    Example:

        circuits tasks show digits --model toy --n 3 --corruption shuffled
    """
    from discovery.tasks import get_task

    tokenizer, data = _dataset(task, model, n, seed, corruption)
    rows = []
    for i, p in enumerate(data.prompts):
        rows.append(
            {
                "clean": p.clean,
                "corrupted": p.corrupted,
                "answers": list(p.answers),
                "wrong": list(p.wrong),
                "clean_tokens": tokenizer.convert_ids_to_tokens(data.clean[i].tolist()),
                "corrupted_tokens": tokenizer.convert_ids_to_tokens(data.corrupted[i].tolist()),
                "answer_ids": [int(a) for a, m in zip(data.answers[i], data.answers_mask[i]) if m],
                "wrong_ids": [int(w) for w, m in zip(data.wrong[i], data.wrong_mask[i]) if m],
            }
        )
    filter_rule = get_task(task).correctness_filter
    header = {
        "task": data.task,
        "corruption": data.corruption,
        "metric": data.metric,
        "seed": data.seed,
        "seq_len": data.seq_len,
        "bos": data.bos_prepended,
        "filter": filter_rule,
        "content_hash": data.spec.content_hash,
    }
    if as_json:
        print_json({**header, "prompts": rows})
        return
    click.echo(
        f"{data.task}  corruption={data.corruption}  metric={data.metric}  seed={data.seed}  "
        f"{data.n} prompts x {data.seq_len} tokens{'' if data.bos_prepended else ' (no BOS)'}  "
        f"hash={data.spec.content_hash[:12]}"
    )
    if filter_rule:
        click.echo(f"correctness filter: {filter_rule} (a run keeps only the prompts the loaded model gets right; "
                   "these are before it)")
    for i, row in enumerate(rows):
        click.echo(f"\n[{i}] clean:     {row['clean']}")
        click.echo(f"    tokens:    {' '.join(repr(t) for t in row['clean_tokens'])}")
        click.echo(f"    corrupted: {row['corrupted']}")
        click.echo(f"    tokens:    {' '.join(repr(t) for t in row['corrupted_tokens'])}")
        click.echo(f"    answers:   {_items(tokenizer, data.answers[i], data.answers_mask[i])}")
        click.echo(f"    wrong:     {_items(tokenizer, data.wrong[i], data.wrong_mask[i])}")


@tasks_group.command("export")
@click.argument("task")
@click.option("--model", "model", required=True, help=MODEL_HELP + " Only prompts it can take are written.")
@click.option("--n", "n", default=64, show_default=True, help="How many prompts.")
@click.option("--seed", default=0, show_default=True, help="Seed the prompts are drawn with.")
@click.option("--corruption", default=None, help="Corruption (default: the task's own).")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False), help="JSONL file to write.")
def tasks_export(task: str, model: str, n: int, seed: int, corruption: Optional[str], output: str) -> None:
    """Write TASK's prompts, checked against MODEL's tokenizer, as JSONL that file:FILE reads back.

    Edit the file and run any command with --task file:FILE.jsonl.

    Example:

        circuits tasks export ioi --model toy --n 100 -o ioi.jsonl
    """
    from discovery.tasks import export_jsonl

    _, data = _dataset(task, model, n, seed, corruption)
    count = export_jsonl(data, output)
    info(f"wrote {count} prompts of {data.task} ({data.corruption}) to {output}")


@click.group("toy")
def toy_group() -> None:
    """The embedded toy model: a 4-layer GPT-2 trained here on the built-in tasks.

    Example:

        circuits toy eval
    """


@toy_group.command("train")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder to write (default: a new ./toy-model-TIMESTAMP). The shipped model is replaced only when named.",
)
@click.option("--seed", default=0, show_default=True, help="Training seed.")
@click.option("--steps", default=None, type=int, help="Optimizer steps (default: the shipped recipe's).")
def toy_train(out: Optional[str], seed: int, steps: Optional[int]) -> None:
    """Train a toy model on the task mixture (a few minutes on 2 CPU cores) and save it as a model folder.

    Example:

        circuits toy train --out my-toy --seed 1 && circuits toy eval --model-dir my-toy
    """
    from dataclasses import replace

    from discovery.toy.train import ToyConfig, train

    cfg = ToyConfig(seed=seed)
    if steps is not None:
        if steps < 1:
            raise click.BadParameter("must be at least 1", param_hint="--steps")
        cfg = replace(cfg, steps=steps)
    folder = Path(out) if out else Path(f"toy-model-{time.strftime('%Y%m%d-%H%M%S')}")
    info(f"training a toy model (seed {seed}, {cfg.steps} steps) into {folder}")
    stats = train(folder, cfg, log=info)
    click.echo(f"{folder}  trained in {stats['train_seconds']:.0f}s, final loss {stats['final_loss']:.4f}")


@toy_group.command("eval")
@click.option("--model-dir", type=click.Path(file_okay=False, exists=True), default=None, help="Default: the shipped model.")
@click.option("--n", "n", default=200, show_default=True, help="Held-out prompts per task.")
@json_option
def toy_eval(model_dir: Optional[str], n: int, as_json: bool) -> None:
    """Accuracy on held-out prompts of every task, and with every attention head mean-ablated.

    Top-1 accuracy (greater-than: any year above the threshold). The context rows show that the model reads
    its context: with all heads mean-ablated it falls to chance on steps +1/+2/-1 and on IOI's two names.

    Example:

        circuits toy eval --json
    """
    from discovery.toy import model_dir as shipped
    from discovery.toy.evaluate import evaluate

    report = evaluate(Path(model_dir) if model_dir else shipped(), n=n)
    if as_json:
        print_json(report)
        return
    click.echo(f"{report['model_dir']}  (held-out seed {report['seed']})")
    print_table(
        ["task", "n", "accuracy", "all heads ablated", "metric", "value", "all heads ablated"],
        [
            [
                t,
                r["n"],
                f"{r['accuracy']:.1%}",
                f"{r['ablated_accuracy']:.1%}",
                r["metric"],
                f"{r['metric_value']:.3f}",
                f"{r['ablated_metric_value']:.3f}",
            ]
            for t, r in report["tasks"].items()
        ],
    )
    click.echo("")
    print_table(
        ["context check", "n", "accuracy", "all heads ablated"],
        [[c["check"], c["n"], f"{c['accuracy']:.1%}", f"{c['ablated_accuracy']:.1%}"] for c in report["context"]],
    )

