"""``circuits analyze`` and ``circuits role``: what each node of a circuit does, stored on its nodes.

``analyze`` runs the analyses of ``discovery.analysis`` on a circuit's kept nodes and keeps each one's figures
on the node (``set_node_attributes``, under the analysis' name, with the settings that made them); the
logit-lens table and the DLA totals, which are about the model on the task rather than one node, go to the
circuit's metadata (``set_circuit_analysis``). It then labels each node's role from all its stored figures
(``discovery.analysis.roles``) with role source ``analysis``; a role a person set (``user:NAME``) or a paper
gave is never overwritten, and the analysis' own label stays in the node's ``roles`` attribute either way.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import click

from cli.options import (
    FINITE,
    CommaList,
    catalog_session,
    db_option,
    fmt,
    info,
    json_option,
    print_json,
    print_table,
    run_options,
)

WHAT = ("attention", "ov", "dla", "logit-lens")
NEEDS_TASK = ("attention", "dla", "logit-lens")


@click.command("analyze")
@click.argument("circuit")
@click.option("--what", "what_items", type=CommaList(WHAT), default=",".join(WHAT), show_default=True,
              help="Analyses to run, comma-separated: attention, ov, dla, logit-lens.")
@run_options("model", "task", "n_prompts", "seed", "device", "dtype", "filter")
@click.option("--token-sets", type=CommaList(), default="digits,numwords,months,days", show_default=True,
              help="ov: ordinal token sets to score (digits, numwords, months, days).")
@click.option("--embedding", type=click.Choice(["raw", "mlp0"]), default="raw", show_default=True,
              help="ov: token embeddings as they are, or through MLP 0 (the 'effective embedding').")
@click.option("--filler", default=None,
              help="attention: the token inserted to make irregular prompts (one token absent from the prompts; "
              "default: the first of ',', '.', ' the', ' and', ' of' that is).")
@click.option("--roles/--no-roles", default=True, show_default=True,
              help="Label each node's role from its figures (never overwriting a person's or a paper's).")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write attention heatmaps and the logit-lens table as PNG and PDF into this folder.")
@db_option
@json_option
def analyze_cmd(circuit: str, what_items: tuple[str, ...], model_name: Optional[str], task: Optional[str],
                n_prompts: Optional[int], seed: int, device: str, dtype: str, correctness_filter: bool,
                token_sets: tuple[str, ...], embedding: str, filler: Optional[str], roles: bool, plots_dir: Optional[Path],
                db_url: str, as_json: bool) -> None:
    """Find out what each node of a circuit does, and keep the answer on its nodes.

    attention: where each head attends from the answer position (first token, itself, previous token,
    same-type members, other), with irregular prompts (fillers inserted) telling positional heads from
    type heads. ov: copy, successor and greater-than scores of each head's OV circuit, and its sign
    (boosting or suppressing). dla: each node's direct logit attribution on the logit difference.
    logit-lens: the residual stream unembedded at every layer and position.

    Example:

    \b
        circuits analyze toy-digits-acdc --what attention,ov --plots figures/
        circuits analyze digits-lan2023 --model gpt2 --task digits --json
    """
    from catalog.queries import get_circuit
    from discovery.config import resolve_common

    what = [w for w in WHAT if w in what_items]
    with catalog_session(db_url) as session:
        record = get_circuit(session, circuit, kept_only=True)
    task = task or record.task
    if task is None and any(w in NEEDS_TASK for w in what):
        raise click.ClickException(f"circuit {circuit!r} names no task; pass --task for {', '.join(what)}")
    common = resolve_common(model_name or record.model, task or "digits-list", n_prompts=n_prompts, seed=seed,
                            device=device, dtype=dtype, correctness_filter=correctness_filter)
    if task is None:
        common["task"] = None
    settings = _Settings(what, common, token_sets, embedding, filler)
    results = run_analyses(record, settings)
    paths = _plots(plots_dir, results, record.name) if plots_dir else []  # before storing: both or neither
    with catalog_session(db_url, mode="write") as session:
        stored = store(session, record, results, label_roles=roles)
    _report(record.name, results, stored, paths, as_json)


@dataclass(frozen=True)
class _Settings:
    what: list[str]
    run: dict[str, Any]  # discovery.config.resolve_common's checked model, task, prompts, seed, device, dtype
    token_sets: tuple[str, ...]
    embedding: str
    filler: Optional[str]

    def common(self) -> dict[str, Any]:
        return {k: self.run[k] for k in ("model", "task", "n_prompts", "seed")}


def run_analyses(record: Any, s: _Settings) -> dict[str, Any]:
    """Run the asked analyses on the circuit's kept nodes; returns the raw results by analysis name."""
    from cli.evaluate_cmds import circuit_parts
    from discovery.analysis.attention import AttentionSettings, attention
    from discovery.analysis.dla import analyze_dla
    from discovery.analysis.logit_lens import analyze_logit_lens
    from discovery.analysis.ov import OVSettings, ov
    from discovery.graph import ComponentGraph, ModelShape, NodeKind
    from discovery.models import load_model
    from discovery.pipeline import load_experiment

    if s.run["task"] is not None:
        model, dataset = load_experiment(s.run)
    else:
        model, dataset = load_model(s.run["model"], device=s.run["device"], dtype=s.run["dtype"]), None
    nodes, _ = circuit_parts(record, ComponentGraph(ModelShape(model.spec.n_layers, model.spec.n_heads)))
    heads = [n for n in nodes if n.kind is NodeKind.HEAD]
    out: dict[str, Any] = {"settings": s.common(), "dataset": dataset.spec.content_hash if dataset else None}
    if "attention" in s.what and heads:
        out["attention"] = attention(model, dataset, heads, AttentionSettings(filler=s.filler, seed=s.run["seed"]))
    if "ov" in s.what and heads:
        out["ov"] = ov(model, heads, OVSettings(token_sets=s.token_sets, embedding=s.embedding))
    if "dla" in s.what:
        out["dla"] = analyze_dla(model, dataset, [n for n in nodes if n.kind is not NodeKind.LOGITS])
    if "logit-lens" in s.what:
        out["logit-lens"] = analyze_logit_lens(model, dataset, model.tokenizer)
    return out


def node_figures(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{node key: {analysis: figures}}``, each analysis' figures carrying the settings that made them."""
    common = dict(results["settings"], dataset_hash=results.get("dataset"))
    per_node: dict[str, dict[str, Any]] = {}
    if "attention" in results:
        r = results["attention"]
        for key, figures in r.heads.items():
            per_node.setdefault(key, {})["attention"] = {**figures, "settings": {**common, **r.settings}}
    if "ov" in results:
        r = results["ov"]
        sets = {name: info["tokens"] for name, info in r.token_sets.items()}
        for key, figures in r.heads.items():
            settings = {**common, **r.settings, "tokens": sets}
            settings.pop("task", None), settings.pop("n_prompts", None), settings.pop("dataset_hash", None)
            per_node.setdefault(key, {})["ov"] = {**figures, "settings": settings}
    if "dla" in results:
        for key, figures in results["dla"].nodes.items():
            per_node.setdefault(key, {})["dla"] = {**figures, "settings": common}
    return per_node


def store(session: Any, record: Any, results: dict[str, Any], *, label_roles: bool = True) -> dict[str, Any]:
    """Write every figure, then the roles; returns ``{node key: role label or note}`` for the report."""
    from catalog.queries import get_circuit, set_circuit_analysis, set_node_attributes, set_role
    from discovery.analysis.roles import SOURCE, label

    common = dict(results["settings"], dataset_hash=results.get("dataset"))
    for key, analyses in node_figures(results).items():
        for analysis, figures in analyses.items():
            set_node_attributes(session, record.name, key, analysis, figures)
    if "logit-lens" in results:
        lens = {**results["logit-lens"].to_json(), "settings": common}
        set_circuit_analysis(session, record.name, "logit-lens", lens)
    if "dla" in results:
        set_circuit_analysis(session, record.name, "dla", {**results["dla"].totals, "settings": common})
    labels: dict[str, Any] = {}
    if not label_roles:
        return labels
    current = get_circuit(session, record.name, kept_only=True)
    for node in current.kept_nodes:
        if not node.is_component or not node.attributes:
            continue
        role = label(node.attributes)
        set_node_attributes(session, record.name, node.key, "roles", role.to_json())
        kept = node.role_source not in (None, SOURCE)
        if not kept:
            set_role(session, record.name, node.key, role.role, SOURCE, role.score, role.note)
        labels[node.key] = {"label": role, "kept": kept, "role": node.role if kept else role.role,
                            "source": node.role_source if kept else SOURCE}
    return labels


def _plots(folder: Path, results: dict[str, Any], name: str) -> list[Path]:
    from discovery.analysis.plots import write_plots

    return write_plots(folder, results.get("attention"), results.get("logit-lens"), prefix=name)


def _report(name: str, results: dict[str, Any], labels: dict[str, Any], paths: list[Path], as_json: bool) -> None:
    figures = node_figures(results)
    if as_json:
        lens = results.get("logit-lens")
        print_json({
            "circuit": name,
            "settings": results["settings"],
            "nodes": {k: {**v, "role": _role_json(labels.get(k))} for k, v in figures.items()},
            "dla_totals": results["dla"].totals if "dla" in results else None,
            "logit_lens": lens.to_json() if lens else None,
            "token_sets": results["ov"].token_sets if "ov" in results else None,
            "plots": [str(p) for p in paths],
        })
        return
    rows = []
    for key, f in figures.items():
        att, ovf, dla = f.get("attention", {}), f.get("ov", {}).get("mean", {}), f.get("dla", {})
        entry = labels.get(key)
        role = entry["role"] if entry else None
        rows.append((key, role, entry["label"].score if entry and not entry["kept"] else None,
                     att.get("dominant"), att.get("kind"), ovf.get("successor_top1"), ovf.get("successor_top5"),
                     ovf.get("copy_top1"), ovf.get("copy_sign"), dla.get("dla"), dla.get("share")))
    click.echo(f"circuit {name}: {', '.join(w for w in WHAT if w in results)} "
               f"on {results['settings']['model']}/{results['settings']['task']}")
    print_table(["node", "role", "role score", "attends", "kind", "succ@1", "succ@5", "copy@1", "copy sign",
                 "dla", "dla share"], rows)
    if "ov" in results:
        sets = results["ov"].token_sets
        click.echo("\nOV token sets: " + "; ".join(f"{n} ({v['n']} tokens)" for n, v in sets.items()))
    kept = [k for k, v in labels.items() if v["kept"]]
    if kept:
        click.echo(f"roles kept as set by a person or paper: {', '.join(kept)} (see `circuits role list {name}`)")
    if "dla" in results:
        t = results["dla"].totals
        click.echo(f"\nlogit difference {fmt(t['logit_diff'])} = heads and MLPs {fmt(t['heads_and_mlps'])} "
                   f"+ embed {fmt(t['embed'])} + biases {fmt(t['attn_bias'] + t['unembed_bias'])}; "
                   f"this circuit's nodes {fmt(t['circuit'])}")
    if "logit-lens" in results:
        _print_lens(results["logit-lens"])
    for p in paths:
        info(f"wrote {p}")


def _role_json(entry: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    if entry is None:
        return None
    return {"role": entry["role"], "source": entry["source"], "analysis": entry["label"].to_json()}


def _print_lens(lens: Any) -> None:
    click.echo(f"\nlogit lens: p(target) / first prompt's top token, mean over {lens.n_prompts} prompts")
    headers = ["layer"] + [f"{p} -> {t}" for p, t in zip(lens.positions, lens.targets)]
    rows = [[layer] + [f"{p:.2f} {top}" for p, top in zip(probs, tops)]
            for layer, probs, tops in zip(lens.layers, lens.target_prob, lens.top_token)]
    print_table(headers, rows)


# ---------------------------------------------------------------------------------------------------------
# circuits role ...


@click.group("role")
def role_group() -> None:
    """Read and correct what each node of a circuit does (its role), and who said so.

    Example:

    \b
        circuits role list toy-digits-acdc
        circuits role set toy-digits-acdc 9.1 successor --note "OV maps n to n+1"
    """


@role_group.command("set")
@click.argument("circuit")
@click.argument("node")
@click.argument("role")
@click.option("--note", default=None, help="Why: the evidence, a paper, a notebook.")
@click.option("--by", "by", default=None, help="Who sets it (default: your OS user name); stored as user:NAME.")
@click.option("--score", type=FINITE, default=None, help="A score behind the role, if there is one.")
@db_option
def role_set(circuit: str, node: str, role: str, note: Optional[str], by: Optional[str], score: Optional[float],
             db_url: str) -> None:
    """Set or correct a node's role by hand; analyses never overwrite it afterwards.

    Example:

    \b
        circuits role set toy-digits-acdc 9.1 successor --note "OV successor top-5 0.87" --by ana
    """
    from catalog.queries import set_role
    from discovery.analysis.roles import ROLES

    role = role.strip()
    if not role:
        raise click.BadParameter("a role needs a name", param_hint="ROLE")
    who = (by or _os_user()).strip()
    if not who:
        raise click.BadParameter("needs a name", param_hint="--by")
    with catalog_session(db_url, mode="write") as session:
        record = set_role(session, circuit, node, role, f"user:{who}", score, note)
    click.echo(f"{circuit} {record.key}: {role} (set by user:{who})")
    if role not in ROLES:
        info(f"note: {role!r} is not one of the roles analyses assign ({', '.join(ROLES)}); kept as given")


@role_group.command("list")
@click.argument("circuit")
@db_option
@json_option
def role_list(circuit: str, db_url: str, as_json: bool) -> None:
    """List a circuit's nodes with their role, score, who set it and why, and what the analyses say.

    Example:

    \b
        circuits role list toy-digits-acdc --json
    """
    from catalog.queries import get_circuit

    with catalog_session(db_url) as session:
        record = get_circuit(session, circuit, kept_only=True)
    rows = []
    for n in record.kept_nodes:
        if not n.is_component:
            continue
        suggested = dict(n.attributes.get("roles") or {})
        rows.append({"node": n.key, "role": n.role, "score": n.role_score, "source": n.role_source,
                     "note": n.role_note, "analysis_role": suggested.get("role"),
                     "analysis_score": suggested.get("score")})
    if as_json:
        print_json(rows)
        return
    print_table(["node", "role", "score", "set by", "analysis says", "note"],
                [[r["node"], r["role"], r["score"], r["source"], _suggested(r), _clip(r["note"])] for r in rows])


def _suggested(row: dict[str, Any]) -> Optional[str]:
    if row["analysis_role"] is None and row["analysis_score"] is None:
        return None
    score = row["analysis_score"]
    return (row["analysis_role"] or "(none)") + (f" {fmt(score)}" if score is not None else "")


def _clip(text: Any, width: int = 90) -> Optional[str]:
    if not text:
        return None
    text = str(text)
    return text if len(text) <= width else text[: width - 3] + "..."


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "unknown"

