"""EAP and EAP-IG against single-edge patching on the shipped toy model: the README's accuracy table.

    .venv/bin/python benchmarks/attribution_accuracy.py [--n-prompts 64] [--out benchmarks/results/attribution.json]

For each of the five tasks, every edge of the toy model's graph is patched alone (the metric's change is the
"effect") and scored by EAP and by EAP-IG at 1, 5 and 20 steps; ``discovery.evaluation.agreement`` compares them
on the edges that matter (top-k overlaps, correlations over the 50 edges of largest |effect|) and, named as such,
over all edges. Logit difference (prob-diff for greater-than), patching from the task's corrupted prompts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from discovery.evaluation.agreement import agreement, single_edge_effects
from discovery.methods.eap import attribution_scores
from discovery.models import load_model
from discovery.patching import prepare
from discovery.tasks.filtering import prepare_dataset

TASKS = ("digits", "numwords", "months", "greater-than", "ioi")
METHODS = {"eap": [1.0], "eap-ig (1 step)": [0.0], "eap-ig (5 steps)": [k / 5 for k in range(5)],
           "eap-ig (20 steps)": [k / 20 for k in range(20)]}


def measure(n_prompts: int, seed: int = 0) -> list[dict]:
    model = load_model("toy")
    rows = []
    for task in TASKS:
        setup = prepare(model, prepare_dataset(task, model, n=n_prompts, seed=seed))
        graph = setup.graph
        effects = single_edge_effects(setup, graph.edges)
        for method, alphas in METHODS.items():
            scores = attribution_scores(setup, alphas)
            flat = torch.stack([scores[graph.source_index[e.src], graph.dest_index[(e.dst, e.input)]]
                                for e in graph.edges])
            rows.append({"task": task, "method": method, "n_edges": len(graph.edges), "n_prompts": setup.n_prompts,
                         "metric": setup.metric.name, **agreement(flat, effects)})
    return rows


def table(rows: list[dict]) -> str:
    head = "| task | method | top-10 overlap | top-20 overlap | Spearman, top 50 | Pearson (signed), top 50 | Spearman, all edges |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['method']} | {r['top10_overlap']:.2f} | {r['top20_overlap']:.2f} | "
                     f"{r['spearman_top50']:.2f} | {r['pearson_signed_top50']:.2f} | {r['spearman_all_edges']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/attribution.json"))
    args = parser.parse_args()
    rows = measure(args.n_prompts)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
