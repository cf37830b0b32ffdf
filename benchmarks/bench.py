"""Times circuit-catalog's discovery methods on GPT-2-shaped models, for comparison with auto-circuit.

    .venv/bin/python benchmarks/bench.py --device cpu --shapes tiny,mid,toy --algos acdc,eap --out /tmp/ours.json
    python3 benchmarks/bench.py --device cuda --dtype bfloat16 --shapes gpt2-small \
        --algos acdc,eap,eap-ig,path-patching,node-pruning --out ours.json --deadline 240

Models. ``tiny``, ``mid``, ``gpt2-small`` and ``gpt2-medium`` are built directly as ``GPT2Weights`` with random
weights (GPT-2's init: normal, std 0.02; LayerNorm scale 1, shift 0; biases 0): no download and no bridge, since
what the engine costs does not depend on the weights' values. ``toy`` is the shipped toy model, loaded through
``discovery.models.load_model("toy")`` (real weights), on its ``digits`` task.

Data (random shapes; the same sizes as the auto-circuit side, ``peer_autocircuit.py``): 32 prompts of 16 random
tokens; the corrupted prompts redraw the first 15 tokens and keep the last; one random answer and one random
wrong token per prompt. Metric KL (from the clean model), ablation ``patch`` (the corrupted activations).

Rows (``--algos``; each row builds its own PatchSetup, so ``forwards`` counts that row alone):
  acdc            ACDC over the full graph at ``--tau`` (default 0.01; on random weights it keeps no edge: the
                  logits' edges go, and every other receiver is skipped as reaching nothing)
  acdc-kept       ACDC at the taus that keep about ``--kept`` of the edges (default 1 %, 3 %, 10 %): real
                  circuits keep edges, and ACDC's cost grows with them (every receiver still connected is
                  tested). Each tau is found by a short search on the same model and prompts (``find_tau``:
                  full ACDC runs, the kept fraction interpolated in log-log, until within 25 % of the target)
                  and recorded in ``--tau-file``, which later runs reuse (``--search`` searches again); the row
                  says the tau, how it was found, and the fraction actually kept.
  eap             edge attribution patching (with KL: gradient at the ablated point, the method's own default)
  eap-ig          EAP with integrated gradients, 5 steps
  path-patching   path effect of every head on the logits (``path_effects``): ``n_edges`` = the heads
  node-pruning    all heads at threshold 0.8 (with KL the method measures faithfulness, its own convention):
                  ``n_edges`` = heads considered, ``edges_kept`` = heads kept
ACDC rows also carry the run's batching (``copies`` stacked, ``wasted_copies`` after a wrong guess, ``batches``,
``mispredicted``) and ``tested`` (edges whose loss was measured).

Timing: per row, wall seconds from building the PatchSetup (clean and corrupted runs) to the method's return,
with ``torch.cuda.synchronize()`` on CUDA. Excluded, once per shape: making the weights, building the PatchingEngine, and a
warm-up (a small masked forward and one EAP backward on two prompts). ``setup_seconds`` is the setup's share.
Memory: ``gpu_peak_gib`` (``torch.cuda.max_memory_allocated``, reset per row) on CUDA; ``rss_peak_gib`` on the CPU,
the process's peak resident set during the row (Linux's VmHWM, reset per row through ``/proc/self/clear_refs``;
where that cannot be reset, the process's peak so far, and ``rss_peak_scope`` says so).

``--deadline S`` (seconds from start): once it has passed, no further row starts, and a running method stops at
its next progress report; such rows say ``"skipped"`` or ``"incomplete": true`` with no ``seconds``. Our ACDC is
never extrapolated. The JSON file (``--out``) is rewritten after every row, so a killed run keeps its rows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from common import (  # noqa: E402
    SHAPES,
    Shape,
    cpu_name,
    load_average,
    peak_rss_gib,
    random_prompts,
    reset_peak_rss,
    table,
    write_rows,
)

from discovery.engine import PatchingEngine  # noqa: E402
from discovery.graph import NodeKind, head  # noqa: E402
from discovery.graph import logits as logits_node  # noqa: E402
from discovery.patching import PatchSetup, prepare_from_engine  # noqa: E402
from discovery.weights import GPT2Weights  # noqa: E402

TOOL = "circuit-catalog"
ALGOS = ("acdc", "acdc-kept", "eap", "eap-ig", "path-patching", "node-pruning")


# Shapes (tiny, mid, gpt2-small, gpt2-medium) live in common.py, shared with peer_autocircuit.py.
TOY = "toy"


# ---------------------------------------------------------------------------------------------------------
# Models and data


def random_weights(shape: Shape, device: torch.device, dtype: torch.dtype, seed: int = 0) -> GPT2Weights:
    """GPT-2's initialisation (normal std 0.02, LayerNorm 1 and 0, zero biases), drawn on ``device``."""
    gen = torch.Generator(device=device).manual_seed(seed)
    L, H, d, e, f, V = shape.n_layers, shape.n_heads, shape.d_model, shape.d_head, shape.d_mlp, shape.d_vocab

    def normal(*size: int) -> torch.Tensor:
        return (torch.randn(*size, generator=gen, device=device) * 0.02).to(dtype)

    def zeros(*size: int) -> torch.Tensor:
        return torch.zeros(*size, device=device, dtype=dtype)

    def ones(*size: int) -> torch.Tensor:
        return torch.ones(*size, device=device, dtype=dtype)

    return GPT2Weights(
        W_E=normal(V, d), W_pos=normal(shape.n_ctx, d),
        W_Q=normal(L, H, d, e), W_K=normal(L, H, d, e), W_V=normal(L, H, d, e),
        b_Q=zeros(L, H, e), b_K=zeros(L, H, e), b_V=zeros(L, H, e),
        W_O=normal(L, H, e, d), b_O=zeros(L, d),
        W_in=normal(L, d, f), b_in=zeros(L, f), W_out=normal(L, f, d), b_out=zeros(L, d),
        W_U=normal(d, V), b_U=zeros(V),
        ln1_w=ones(L, d), ln1_b=zeros(L, d), ln2_w=ones(L, d), ln2_b=zeros(L, d),
        lnf_w=ones(d), lnf_b=zeros(d),
    )


@dataclass
class BenchData:
    """The parts of a TaskDataset that prepare_from_engine reads."""

    clean: torch.Tensor  # [n, seq]
    corrupted: torch.Tensor
    answers: torch.Tensor  # [n, 1]
    answers_mask: torch.Tensor
    wrong: torch.Tensor
    wrong_mask: torch.Tensor
    metric: str = "kl"


def random_data(vocab: int, n_prompts: int, seq_len: int, device: torch.device, seed: int = 0) -> BenchData:
    """The prompts of ``common.random_prompts`` (the peer side draws the same), on ``device``."""
    clean, corrupted, answers, wrong = random_prompts(vocab, n_prompts, seq_len, seed)
    ones = torch.ones(n_prompts, 1, dtype=torch.bool, device=device)
    return BenchData(clean.to(device), corrupted.to(device), answers.to(device), ones, wrong.to(device),
                     ones.clone())


@dataclass
class Subject:
    """What one shape's rows share: the engine (weights on the device) and the prompts."""

    name: str
    engine: PatchingEngine
    data: Any  # BenchData or a TaskDataset
    tokens: torch.Tensor
    corrupted: torch.Tensor
    model: Any = None
    task: Optional[str] = None


def make_subject(name: str, device: torch.device, dtype: torch.dtype, n_prompts: int, seq_len: int) -> Subject:
    if name == TOY:
        from discovery.models import load_model
        from discovery.patching import prepare
        from discovery.tasks import build_dataset

        model = load_model("toy", device=str(device), dtype=str(dtype).replace("torch.", ""))
        dataset = build_dataset("digits", model.tokenizer, n=n_prompts, seed=0)
        setup = prepare(model, dataset, metric="kl", ablation="patch")  # checks the engine against the bridge
        tokens, corrupted = dataset.clean.to(device), dataset.corrupted.to(device)
        return Subject(name, setup.engine, dataset, tokens, corrupted, model=model, task="digits")
    shape = SHAPES[name]
    engine = PatchingEngine(random_weights(shape, device, dtype))
    data = random_data(shape.d_vocab, n_prompts, seq_len, device)
    return Subject(name, engine, data, data.clean, data.corrupted)


def new_setup(subject: Subject, n: Optional[int] = None) -> PatchSetup:
    tokens, corrupted = subject.tokens, subject.corrupted
    data = subject.data
    if n is not None:
        tokens, corrupted = tokens[:n], corrupted[:n]
        data = BenchData(tokens, corrupted, data.answers[:n], data.answers_mask[:n], data.wrong[:n],
                         data.wrong_mask[:n])
    return prepare_from_engine(subject.engine, tokens, corrupted, data, metric="kl", ablation="patch",
                               model=subject.model)


def warm_up(subject: Subject) -> None:
    """One small masked forward and one EAP backward, so that no row pays for first-call set-up."""
    from discovery.methods.eap import eap

    setup = new_setup(subject, n=2)
    setup.values(setup.full_mask(2))
    eap(setup, top_k=1)
    sync(setup.device)


# ---------------------------------------------------------------------------------------------------------
# Rows


class DeadlinePassed(Exception):
    pass


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = torch.device(args.device)
        self.dtype = getattr(torch, args.dtype)
        self.t_start = time.monotonic()
        self.deadline = self.t_start + args.deadline if args.deadline else math.inf
        self.rows: list[dict[str, Any]] = []
        self.out = Path(args.out) if args.out else None
        self.last_progress: Optional[tuple[int, int]] = None

    # -- bookkeeping -------------------------------------------------------------------------------------------
    def past_deadline(self) -> bool:
        return time.monotonic() > self.deadline

    def progress(self, done: int, total: int) -> None:
        self.last_progress = (done, total)
        if self.past_deadline():
            raise DeadlinePassed

    def base_row(self, subject: Subject, algo: str) -> dict[str, Any]:
        e = subject.engine
        return {
            "tool": TOOL, "shape": subject.name, "device": self.device.type, "device_name": device_name(self.device),
            "dtype": self.args.dtype, "algo": algo, "n_layers": e.L, "n_heads": e.H, "d_model": e.d,
            "n_prompts": int(subject.tokens.shape[0]), "seq_len": int(subject.tokens.shape[1]),
            "task": subject.task or "random tokens", "metric": "kl", "ablation": "patch",
        }

    def add(self, row: dict[str, Any]) -> None:
        row.setdefault("extrapolated", False)
        row["torch"] = torch.__version__
        if self.device.type == "cpu":
            row["load_avg"] = load_average()
        self.rows.append(row)
        self.write()
        shown = {k: row.get(k) for k in ("shape", "dtype", "algo", "n_edges", "edges_kept", "seconds", "forwards")}
        extra = row.get("skipped") or ("incomplete" if row.get("incomplete") else "")
        print(f"[bench] {json.dumps(shown)} {extra}".rstrip(), flush=True)

    def write(self) -> None:
        write_rows(self.out, self.rows)

    # -- one row -----------------------------------------------------------------------------------------------
    def timed(self, subject: Subject, algo: str, method: Callable[[PatchSetup], dict[str, Any]],
              n_edges: int, extra: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
        row = self.base_row(subject, algo) | {"n_edges": n_edges} | (extra or {})
        if self.past_deadline():
            row.update(seconds=None, skipped="deadline passed before this row")
            self.add(row)
            return None
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        rss_scope = reset_peak_rss()
        sync(self.device)
        t0 = time.perf_counter()
        setup = new_setup(subject)
        sync(self.device)
        t_setup = time.perf_counter() - t0
        result: dict[str, Any] = {}
        self.last_progress = None
        try:
            result = method(setup)
            sync(self.device)
            row["seconds"] = round(time.perf_counter() - t0, 4)
        except DeadlinePassed:
            sync(self.device)
            row.update(seconds=None, incomplete=True, seconds_until_stopped=round(time.perf_counter() - t0, 3),
                       note="stopped by the deadline (never extrapolated)")
            if self.last_progress:
                row["progress"] = f"{self.last_progress[0]} of {self.last_progress[1]}"
        row["setup_seconds"] = round(t_setup, 4)
        row["forwards"] = setup.forwards
        if cuda:
            row["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
        else:
            row["rss_peak_gib"] = peak_rss_gib()
            row["rss_peak_scope"] = rss_scope
        row.update({k: v for k, v in result.items() if not k.startswith("_")})
        self.add(row)
        return result

    # -- the algorithms ----------------------------------------------------------------------------------------
    def run_subject(self, subject: Subject, algos: list[str]) -> None:
        e = subject.engine
        n_edges = e.graph.n_edges()
        heads = [head(layer, h) for layer in range(e.L) for h in range(e.H)]
        a = self.args
        for algo in algos:
            if algo == "acdc":
                self.timed(subject, "acdc", lambda s: self.acdc(s, a.tau), n_edges, {"tau": a.tau})
            elif algo == "acdc-kept":
                for target in parse_fractions(a.kept):
                    self.kept_row(subject, n_edges, target)
            elif algo == "eap":
                self.timed(subject, "eap", lambda s: self.eap(s, n_edges, steps=None), n_edges)
            elif algo == "eap-ig":
                self.timed(subject, "eap-ig", lambda s: self.eap(s, n_edges, steps=a.ig_steps), n_edges,
                           {"steps": a.ig_steps})
            elif algo == "path-patching":
                self.timed(subject, "path-patching", lambda s: self.paths(s, heads), len(heads),
                           {"unit": "head -> logits paths"})
            elif algo == "node-pruning":
                self.timed(subject, "node-pruning", lambda s: self.nodes(s), len(heads),
                           {"unit": "heads", "threshold": a.node_threshold})
            else:
                raise SystemExit(f"unknown algo {algo!r}: choose from {', '.join(ALGOS)}")

    # -- ACDC at a kept fraction -------------------------------------------------------------------------------
    def tau_key(self, subject: Subject, target: float) -> str:
        n, p = subject.tokens.shape
        return f"{subject.name}/{self.args.dtype}/{n}x{p}/kept={target:g}"

    def kept_row(self, subject: Subject, n_edges: int, target: float) -> None:
        """ACDC at the tau that keeps about ``target`` of the edges: recorded in ``--tau-file``, else searched."""
        a = self.args
        extra: dict[str, Any] = {"target_kept": target}
        if self.past_deadline():
            self.timed(subject, "acdc-kept", lambda s: {}, n_edges, extra)
            return
        key = self.tau_key(subject, target)
        taus = read_taus(a.tau_file)
        fallback = key.replace(f"/{a.dtype}/", f"/{a.tau_dtype_fallback}/") if a.tau_dtype_fallback else key
        recorded = [k for k in (key, fallback) if k in taus]
        if recorded and not a.search:
            found = taus[recorded[0]]
            extra |= {"tau": found["tau"], "tau_search": found.get("probes"),
                      "tau_from": f"recorded in {a.tau_file} as {recorded[0]} ({found.get('found_on', '?')})"}
        elif a.search_probes == 0:
            row = self.base_row(subject, "acdc-kept") | {"n_edges": n_edges, "seconds": None} | extra
            row["skipped"] = f"no tau recorded for {key} in {a.tau_file}, and no search (--search-probes 0)"
            self.add(row)
            return
        else:
            try:
                tau, probes = self.find_tau(subject, target)
            except DeadlinePassed:
                row = self.base_row(subject, "acdc-kept") | {"n_edges": n_edges, "seconds": None} | extra
                row["skipped"] = "deadline passed during the search for tau"
                self.add(row)
                return
            extra |= {"tau": tau, "tau_from": "searched in this run", "tau_search": probes}
            if a.tau_file:
                taus[key] = {"tau": tau, "probes": probes, "found_on": time.strftime("%Y-%m-%d"),
                             "device": self.device.type}
                write_taus(a.tau_file, taus)
        self.timed(subject, "acdc-kept", lambda s: self.acdc(s, extra["tau"]), n_edges, extra)

    def find_tau(self, subject: Subject, target: float) -> tuple[float, list[dict[str, Any]]]:
        """A tau keeping within 25 % of ``target`` of the edges: full ACDC runs on the row's model and prompts,
        the next tau interpolated (or, before the target is bracketed, extrapolated with slope -1) in log(kept)
        against log(tau). Each probe is cut after ``--probe-seconds``: a probe that slow keeps too many edges."""
        a = self.args
        probes: list[dict[str, Any]] = []
        tau = a.search_start
        for _ in range(a.search_probes):
            kept, seconds, cut = self.probe(subject, tau)
            probes.append({"tau": float(f"{tau:.4g}"), "kept_fraction": None if cut else round(kept, 5),
                           "seconds": round(seconds, 2), **({"cut": True} if cut else {})})
            print(f"[bench] search {subject.name} kept~{target:g}: tau {tau:.4g} -> "
                  f"{'cut (too slow)' if cut else f'{kept:.4f}'} ({seconds:.1f} s)", flush=True)
            if not cut and abs(kept / target - 1) <= 0.25:
                return float(f"{tau:.4g}"), probes
            tau = next_tau(probes, target)
        done = [p for p in probes if not p.get("cut")]
        if not done:
            raise SystemExit(f"no search probe for {subject.name} finished in --probe-seconds")
        best = min(done, key=lambda p: abs(math.log(max(p["kept_fraction"], 1e-6) / target)))
        return best["tau"], probes

    def probe(self, subject: Subject, tau: float) -> tuple[float, float, bool]:
        """(kept fraction, seconds, cut): one ACDC run at ``tau``, stopped after ``--probe-seconds``."""
        from discovery.methods.acdc import acdc

        limit = time.monotonic() + self.args.probe_seconds

        def progress(done: int, total: int) -> None:
            if self.past_deadline():
                raise DeadlinePassed
            if time.monotonic() > limit:
                raise ProbeCut

        setup = new_setup(subject)
        t0 = time.perf_counter()
        try:
            out = acdc(setup, threshold=tau, max_batch=self.args.acdc_batch, progress=progress)
        except ProbeCut:  # how many it would keep is unknown: more than the target, by its cost
            return math.nan, time.perf_counter() - t0, True
        return sum(e.kept for e in out.edges) / len(out.edges), time.perf_counter() - t0, False

    def acdc(self, setup: PatchSetup, tau: float) -> dict[str, Any]:
        from discovery.methods.acdc import acdc

        out = acdc(setup, threshold=tau, max_batch=self.args.acdc_batch, progress=self.progress)
        kept = sum(1 for e in out.edges if e.kept)
        counts = out.extras["edge_counts"]
        return {"edges_kept": kept, "kept_fraction": round(kept / max(len(out.edges), 1), 5),
                "tested": counts["tested_residual"] + counts["tested_qkv_to_head"], **out.extras["batching"]}

    def eap(self, setup: PatchSetup, n_edges: int, steps: Optional[int]) -> dict[str, Any]:
        from discovery.methods.eap import eap, eap_ig

        k = max(1, round(self.args.eap_kept * n_edges))
        if steps is None:
            out = eap(setup, top_k=k, progress=self.progress)
        else:
            out = eap_ig(setup, steps=steps, top_k=k, progress=self.progress)
        return {"edges_kept": sum(1 for e in out.edges if e.kept)}

    def paths(self, setup: PatchSetup, heads: list) -> dict[str, Any]:
        from discovery.methods.path_patching import path_effects

        effects = path_effects(setup, heads, [logits_node(setup.engine.L)], progress=self.progress)
        return {"edges_kept": None, "paths_scored": len(effects)}

    def nodes(self, setup: PatchSetup) -> dict[str, Any]:
        from discovery.methods.node_pruning import node_pruning

        out = node_pruning(setup, threshold=self.args.node_threshold, progress=self.progress)
        return {"edges_kept": sum(1 for n in out.kept_nodes if n.kind is NodeKind.HEAD)}

    # -- all of it ---------------------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        a = self.args
        algos = [x for x in a.algos.split(",") if x]
        for x in algos:
            if x not in ALGOS:
                raise SystemExit(f"unknown algo {x!r}: choose from {', '.join(ALGOS)}")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("--device cuda, but torch sees no CUDA device")
        torch.manual_seed(0)
        for name in [x for x in a.shapes.split(",") if x]:
            if name != TOY and name not in SHAPES:
                raise SystemExit(f"unknown shape {name!r}: choose from {', '.join([*SHAPES, TOY])}")
            if self.past_deadline():
                print(f"[bench] deadline passed: shape {name} skipped", flush=True)
                for algo in algos:
                    self.add({"tool": TOOL, "shape": name, "device": self.device.type, "dtype": a.dtype,
                              "algo": algo, "n_edges": None, "seconds": None,
                              "skipped": "deadline passed before this shape"})
                continue
            t0 = time.perf_counter()
            subject = make_subject(name, self.device, self.dtype, a.n_prompts, a.seq_len)
            warm_up(subject)
            print(f"[bench] {name}: engine built and warmed up in {time.perf_counter() - t0:.1f} s "
                  f"({subject.engine.graph.n_edges()} edges)", flush=True)
            self.run_subject(subject, algos)
            del subject
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        return self.rows


class ProbeCut(Exception):
    pass


def next_tau(probes: list[dict[str, Any]], target: float) -> float:
    """The next tau to try: log(kept) is about linear in log(tau) near the target; between the closest probes
    on either side of it, interpolate; before it is bracketed, step with slope -1 (at most 10x)."""
    done = [p for p in probes if not p.get("cut")]
    above = [p for p in probes if p.get("cut") or p["kept_fraction"] > target]  # tau too small
    below = [p for p in done if p["kept_fraction"] < target]  # tau too large
    if above and below:
        lo = max(above, key=lambda p: p["tau"])
        hi = min(below, key=lambda p: p["tau"])
        if lo.get("cut") or hi["kept_fraction"] <= 0:
            return math.sqrt(lo["tau"] * hi["tau"])
        x0, x1 = math.log(lo["tau"]), math.log(hi["tau"])
        y0, y1 = math.log(lo["kept_fraction"]), math.log(hi["kept_fraction"])
        x = x0 + (math.log(target) - y0) * (x1 - x0) / (y1 - y0)
        return math.exp(min(max(x, x0 + 0.1 * (x1 - x0)), x1 - 0.1 * (x1 - x0)))
    last = probes[-1]
    if last.get("cut"):
        return last["tau"] * 3
    ratio = last["kept_fraction"] / target if last["kept_fraction"] > 0 else 0.1
    return last["tau"] * min(max(ratio, 0.1), 10.0)


def parse_fractions(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def read_taus(path: Optional[str]) -> dict[str, Any]:
    if not path or not Path(path).exists():
        return {}
    return dict(json.loads(Path(path).read_text()))


def write_taus(path: str, taus: dict[str, Any]) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(taus.items())), indent=1) + "\n")
    tmp.replace(path)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--shapes", default="tiny,mid", help=f"comma-separated, from {', '.join([*SHAPES, TOY])}")
    ap.add_argument("--algos", default="acdc,eap", help=f"comma-separated, from {', '.join(ALGOS)}")
    ap.add_argument("--out", help="JSON file for the rows (rewritten after every row)")
    ap.add_argument("--deadline", type=float, default=0, help="seconds from start after which no row starts (0: none)")
    ap.add_argument("--n-prompts", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=16)
    ap.add_argument("--tau", type=float, default=0.01, help="ACDC's threshold for the acdc row")
    ap.add_argument("--kept", default="0.01,0.03,0.1", help="acdc-kept: the shares of edges to keep")
    ap.add_argument("--tau-file", help="JSON of the taus found per shape, dtype, prompts and share (read, and "
                                       "written after a search)")
    ap.add_argument("--search", action="store_true", help="search every acdc-kept tau again")
    ap.add_argument("--tau-dtype-fallback", help="with no tau recorded for this dtype, use this dtype's")
    ap.add_argument("--search-start", type=float, default=1e-3, help="the search's first tau")
    ap.add_argument("--search-probes", type=int, default=6, help="at most this many ACDC runs per search")
    ap.add_argument("--probe-seconds", type=float, default=600, help="a search probe is cut after this long")
    ap.add_argument("--acdc-batch", type=int, default=64, help="ACDC's max_batch (candidates per forward)")
    ap.add_argument("--ig-steps", type=int, default=5)
    ap.add_argument("--eap-kept", type=float, default=0.02, help="share of edges EAP keeps (top_k)")
    ap.add_argument("--node-threshold", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return ap.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = Bench(args)
    rows = bench.run()
    print()
    print(table(rows))
    if args.out:
        print(f"\n(rows written to {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
