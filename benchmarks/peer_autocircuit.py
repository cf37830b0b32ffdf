"""Times auto-circuit 1.0.1 (the peer; TransformerLens 2.18 ``HookedTransformer``) on the shapes and prompts that
``bench.py`` times circuit-catalog on. Runs in auto-circuit's own environment, never the project's:

    .venv-autocircuit/bin/python benchmarks/peer_autocircuit.py --shapes tiny,mid --algos eap,acdc --out peer.json
    PYTHONPATH=.acsite python3 benchmarks/peer_autocircuit.py --device cuda --shapes gpt2-small \
        --algos eap,acdc --acdc-max-edges 3000 --out peer.json          # on the GPU machine (see gpu.sh)

Model: ``HookedTransformer`` with random weights (TransformerLens's GPT-2 init at std 0.02, LayerNorm), wrapped by
``patchable_model(factorized=True, slice_output="last_seq", separate_qkv=True)``: the same edges as our graph
(110 / 1,519 / 32,491 for tiny / mid / GPT-2 small). Prompts: ``common.random_prompts``, the ones ``bench.py`` uses.

Algorithms (auto-circuit's own functions):
  acdc        ``acdc_prune_scores`` at ONE tau (``tao_bases=[b]``, ``tao_exps=[e]``, tau = b * 10^e; auto-circuit's
              default sweeps 20), KL faithfulness: one ACDC run, comparable with one of ours
  eap         ``mask_gradient_prune_scores(grad_function="logit", answer_function="avg_diff", mask_val=0)``:
              auto-circuit's fast EAP (one forward and backward for all edges); it has no KL option
  eap-ig      the same with ``integrated_grad_samples=5`` (mask interpolation; 6 passes)
  eap-slow    ``edge_attribution_patching_prune_scores``, its reference EAP (a Python loop over edges; what the
              peer's own harness timed)

Timing: wall seconds of the algorithm call (``torch.cuda.synchronize()`` on CUDA); the model's construction and
wrapping and one warm-up forward are excluded, as on our side. Memory, as on our side: ``gpu_peak_gib`` on CUDA,
``rss_peak_gib`` on the CPU (the process's peak resident set during the row, the model included: VmHWM reset at
the row's start).

``--acdc-max-edges N``: ACDC visits edges from the last layer back, each edge costing one forward from the layer it
enters (``edge.dest.module_name``'s block) to the logits. With a cap, the run sees only the first N edges of that
order (``model.edges`` is narrowed to them for the call), and then:
  * ``setup`` = time until its first per-edge forward (seen by a forward pre-hook), ``loop`` = the rest;
  * the cost c(l) of one per-edge forward from each start layer l is measured (median of 3, the same inputs and
    patch mode as ACDC's loop), which counts the unembedding every forward pays and not just the layers;
  * the loop's own per-edge overhead o (setting the mask, the KL, the decision) = (loop - sum of c over the edges
    visited) / edges visited;
  * seconds = setup + loop + sum over the edges not visited of (c(l) + o).
Such a row says ``"extrapolated": true`` with ``edges_visited``, ``seconds_visited``, and for reference
``seconds_scaled`` (the loop's time scaled by sum of c over all edges / over the visited) and ``seconds_by_layers``
(the same with c(l) = layers recomputed). Checked here on mid (1,519 edges, one thread, load average about 2.5):
the whole run took 249.8 s; visiting 200 edges (21 s) estimated 244.2 s (seconds), 243.2 s (scaled) and 257.6 s
(by layers).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch as t
from common import SHAPES, cpu_name, load_average, peak_rss_gib, random_prompts, reset_peak_rss, table, write_rows

TOOL = "auto-circuit"
ALGOS = ("acdc", "eap", "eap-ig", "eap-slow")


def sync(dev: t.device) -> None:
    if dev.type == "cuda":
        t.cuda.synchronize(dev)


def tau_parts(tau: float) -> tuple[int, int]:
    """(base, exponent) with tau = base * 10**exponent, as auto-circuit's ACDC takes its thresholds."""
    e = math.floor(math.log10(tau))
    b = round(tau / 10**e)
    if not math.isclose(b * 10**e, tau, rel_tol=1e-9):
        raise SystemExit(f"tau {tau} is not an integer times a power of ten, which auto-circuit's ACDC needs")
    return b, e


def build(shape_name: str, dev: t.device, dtype: t.dtype, n_prompts: int, seq_len: int):
    """The wrapped model and a one-batch loader over ``common.random_prompts``."""
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.utils.graph_utils import patchable_model
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    s = SHAPES[shape_name]
    cfg = HookedTransformerConfig(
        n_layers=s.n_layers, d_model=s.d_model, n_heads=s.n_heads, d_head=s.d_head, d_mlp=s.d_mlp,
        d_vocab=s.d_vocab, n_ctx=s.n_ctx, act_fn="gelu_new", normalization_type="LN", initializer_range=0.02,
        device=str(dev), dtype=dtype, seed=0,
    )
    tl = HookedTransformer(cfg).eval()
    tl.set_use_attn_result(True)
    tl.set_use_split_qkv_input(True)
    tl.set_use_hook_mlp_in(True)
    clean, corrupt, answers, wrong = random_prompts(s.d_vocab, n_prompts, seq_len)
    clean, corrupt = clean.to(dev), corrupt.to(dev)
    dataset = PromptDataset(clean, corrupt, list(answers.to(dev)), list(wrong.to(dev)))
    loader = PromptDataLoader(dataset, seq_len=None, diverge_idx=0, batch_size=n_prompts, shuffle=False)
    model = patchable_model(tl, factorized=True, slice_output="last_seq", separate_qkv=True, device=dev)
    with t.inference_mode():
        model(clean[:2])  # warm-up
    sync(dev)
    return model, loader, cfg


def start_layer(edge: Any) -> int:
    """The block ACDC restarts its forward at for this edge (as its loop computes it)."""
    return int(edge.dest.module_name.split(".")[1])


class EdgeLoopClock:
    """Sees auto-circuit's ACDC loop from outside: the time of its first per-edge forward (the calls that pass
    ``start_at_layer``), and the inputs of that call, to measure per-start-layer forward costs afterwards."""

    def __init__(self, model: Any, dev: t.device):
        self.model, self.dev = model, dev
        self.first: Optional[float] = None
        self.args: Optional[tuple] = None
        self.kwargs: Optional[dict] = None
        self.handle = model.register_forward_pre_hook(self._pre, with_kwargs=True)

    def _pre(self, module: Any, args: tuple, kwargs: dict) -> None:
        if self.first is None and "start_at_layer" in kwargs:
            sync(self.dev)  # the set-up's GPU work ends here (the loop syncs each edge anyway, by .item())
            self.first = time.perf_counter()
            self.args, self.kwargs = args, dict(kwargs)

    def remove(self) -> None:
        self.handle.remove()

    def layer_costs(self, layers: set[int], batch: Any, repeats: int = 3) -> dict[int, float]:
        """Median seconds of one patched forward from each start layer, as ACDC's loop runs it."""
        from auto_circuit.utils.ablation_activations import src_ablations
        from auto_circuit.utils.graph_utils import patch_mode

        assert self.args is not None and self.kwargs is not None
        resid = self.args[0]
        patch_outs = src_ablations(self.model, batch.corrupt)
        src_outs = src_ablations(self.model, batch.clean)
        costs = {}
        with patch_mode(self.model, patch_outs, curr_src_outs=src_outs), t.inference_mode():
            for layer in sorted(layers):
                kwargs = self.kwargs | {"start_at_layer": layer}
                times = []
                for _ in range(repeats + 1):  # the first is a warm-up
                    sync(self.dev)
                    t0 = time.perf_counter()
                    out = self.model(resid, **kwargs)[self.model.out_slice]
                    out.sum().item()  # as the loop's .item() does
                    times.append(time.perf_counter() - t0)
                costs[layer] = statistics.median(times[1:])
        return costs


def run_acdc(model: Any, loader: Any, cfg: Any, dev: t.device, tau: float, max_edges: int) -> dict[str, Any]:
    from auto_circuit.prune_algos.ACDC import acdc_prune_scores

    b, e = tau_parts(tau)
    all_edges = list(model.edges)
    # ACDC's own visiting order: by destination layer, last first (sorted() is stable, so this is its order).
    order = sorted(all_edges, key=lambda x: x.dest.layer, reverse=True)
    capped = 0 < max_edges < len(order)
    visited = order[:max_edges] if capped else order
    saved = model.edges
    clock = EdgeLoopClock(model, dev)
    if capped:
        model.edges = set(visited)
    try:
        sync(dev)
        t0 = time.perf_counter()
        acdc_prune_scores(model, loader, official_edges=None, tao_exps=[e], tao_bases=[b],
                          faithfulness_target="kl_div")
        sync(dev)
        t_end = time.perf_counter()
    finally:
        model.edges = saved
        clock.remove()
    out: dict[str, Any] = {"seconds": round(t_end - t0, 4), "tau": tau}
    if not capped:
        return out
    assert clock.first is not None
    setup, loop = clock.first - t0, t_end - clock.first
    costs = clock.layer_costs({start_layer(x) for x in all_edges}, next(iter(loader)))
    # Each edge the loop takes costs the forward from its start layer plus what the loop adds around it (setting
    # the mask, the KL, the decision): that per-edge overhead is what the loop took beyond the forwards.
    overhead = (loop - sum(costs[start_layer(x)] for x in visited)) / len(visited)
    visited_ids = {id(x) for x in visited}
    rest = [x for x in all_edges if id(x) not in visited_ids]
    estimate = setup + loop + sum(max(costs[start_layer(x)] + overhead, 0.0) for x in rest)

    def scaled(cost: dict[int, float]) -> float:
        """The other estimate: the loop's time scaled by the cost of all edges over that of the visited."""
        return setup + loop * sum(cost[start_layer(x)] for x in all_edges) / sum(cost[start_layer(x)] for x in visited)

    out.update(
        seconds=round(estimate, 2), extrapolated=True, edges_visited=len(visited),
        seconds_visited=round(t_end - t0, 3), setup_seconds=round(setup, 3),
        per_edge_overhead_seconds=round(overhead, 5),
        seconds_scaled=round(scaled(costs), 2),
        seconds_by_layers=round(scaled({layer: float(cfg.n_layers - layer) for layer in costs}), 2),
        forward_seconds_by_start_layer={str(k): round(v, 5) for k, v in costs.items()},
    )
    return out


def run_eap(model: Any, loader: Any, algo: str) -> dict[str, Any]:
    from auto_circuit.prune_algos.edge_attribution_patching import edge_attribution_patching_prune_scores
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores
    from auto_circuit.types import AblationType

    dev = next(model.parameters()).device
    sync(dev)
    t0 = time.perf_counter()
    if algo == "eap-slow":
        edge_attribution_patching_prune_scores(model, loader, official_edges=None)
    else:
        samples = {"eap": None, "eap-ig": 5}[algo]
        mask_gradient_prune_scores(
            model, loader, official_edges=None, grad_function="logit", answer_function="avg_diff",
            mask_val=0.0 if samples is None else None, integrated_grad_samples=samples,
            ablation_type=AblationType.RESAMPLE, clean_corrupt="corrupt",
        )
    sync(dev)
    out: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 4)}
    if samples := {"eap-ig": 5}.get(algo):
        out["steps"] = samples
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--shapes", default="tiny,mid", help=f"comma-separated, from {', '.join(SHAPES)}")
    ap.add_argument("--algos", default="acdc,eap", help=f"comma-separated, from {', '.join(ALGOS)}")
    ap.add_argument("--n-prompts", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=16)
    ap.add_argument("--tau", type=float, default=0.01)
    ap.add_argument("--acdc-max-edges", type=int, default=0,
                    help="visit only the first N edges of ACDC and extrapolate the full graph's time (0: all)")
    ap.add_argument("--max-edges-for", default="",
                    help="comma-separated shapes the cap applies to (default: every shape)")
    ap.add_argument("--deadline", type=float, default=0, help="seconds from start after which no row starts")
    ap.add_argument("--out", help="JSON file for the rows (rewritten after every row)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        t.set_num_threads(args.threads)
    dev, dtype = t.device(args.device), getattr(t, args.dtype)
    if dev.type == "cuda" and not t.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device")
    algos = [a for a in args.algos.split(",") if a]
    for a in algos:
        if a not in ALGOS:
            raise SystemExit(f"unknown algo {a!r}: choose from {', '.join(ALGOS)}")
    capped_shapes = set(filter(None, args.max_edges_for.split(","))) or set(SHAPES)
    deadline = time.monotonic() + args.deadline if args.deadline else math.inf
    out_path = Path(args.out) if args.out else None
    rows: list[dict[str, Any]] = []
    from importlib.metadata import version

    import auto_circuit  # noqa: F401 - fail early, before any model is built
    import transformer_lens  # noqa: F401

    versions = {"torch": t.__version__, "auto_circuit": version("auto-circuit"),
                "transformer_lens": version("transformer-lens")}
    for shape in [s for s in args.shapes.split(",") if s]:
        if shape not in SHAPES:
            raise SystemExit(f"unknown shape {shape!r}: choose from {', '.join(SHAPES)}")
        model = loader = cfg = None
        for algo in algos:
            row: dict[str, Any] = {
                "tool": TOOL, "shape": shape, "device": dev.type,
                "device_name": t.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name(),
                "dtype": args.dtype, "algo": algo, "n_prompts": args.n_prompts, "seq_len": args.seq_len,
                "task": "random tokens", "metric": "kl" if algo == "acdc" else "logit-diff",
                "ablation": "patch", **versions,
            }
            if time.monotonic() > deadline:
                row.update(seconds=None, skipped="deadline passed before this row")
            else:
                if model is None:
                    t0 = time.perf_counter()
                    model, loader, cfg = build(shape, dev, dtype, args.n_prompts, args.seq_len)
                    print(f"[peer] {shape}: model built and wrapped in {time.perf_counter() - t0:.1f} s "
                          f"({model.n_edges} edges)", flush=True)
                row["n_edges"] = model.n_edges
                if dev.type == "cuda":
                    t.cuda.empty_cache()
                    t.cuda.reset_peak_memory_stats(dev)
                rss_scope = reset_peak_rss()
                try:
                    if algo == "acdc":
                        cap = args.acdc_max_edges if shape in capped_shapes else 0
                        row.update(run_acdc(model, loader, cfg, dev, args.tau, cap))
                        # one patched forward of the prompts per edge, from the edge's layer; no batching, no waste
                        row.update(forwards=model.n_edges * args.n_prompts, wasted_copies=0)
                    else:
                        row.update(run_eap(model, loader, algo))
                except Exception as err:
                    row.update(seconds=None, failed=f"{type(err).__name__}: {err}"[:300])
                if dev.type == "cuda":
                    row["gpu_peak_gib"] = round(t.cuda.max_memory_allocated(dev) / 2**30, 3)
                row["rss_peak_gib"], row["rss_peak_scope"] = peak_rss_gib(), rss_scope
            row.setdefault("extrapolated", False)
            if dev.type == "cpu":
                row["load_avg"] = load_average()
            rows.append(row)
            write_rows(out_path, rows)
            shown = {k: row.get(k) for k in ("shape", "algo", "n_edges", "seconds", "extrapolated")}
            print(f"[peer] {shown} {row.get('failed') or row.get('skipped') or ''}".rstrip(), flush=True)
        del model, loader
        if dev.type == "cuda":
            t.cuda.empty_cache()
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
