"""Running one discovery method end to end: setup, the method, an independent evaluation, a plain result.

``discover`` is what ``circuits discover`` calls between starting and saving a catalog run; it returns a
``DiscoveryResult`` and touches no database.
"""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from discovery.errors import SettingsError
from discovery.evaluation import circuit_mask
from discovery.graph import Granularity
from discovery.methods import MethodSpec, get_method
from discovery.methods.base import MethodOutput, Progress, no_progress
from discovery.patching import PatchSetup, prepare
from discovery.results import DiscoveryResult

# Defaults chosen on the toy model (see README): a threshold a new user can start from.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "node-pruning": 0.8,
    "acdc": 0.01,
    "path-patching": 0.05,
}
# Attribution methods cut their circuit by one of threshold, top_k or target; with none given, the smallest
# top-k circuit that keeps 80 % of the model's performance (measured by real ablation).
DEFAULT_SELECTION: dict[str, dict[str, float]] = {"eap": {"target": 0.8}, "eap-ig": {"target": 0.8}}


def choose_metric(spec: MethodSpec, task_metric: str, metric: Optional[str]) -> str:
    """An explicit metric wins; else ACDC's KL; else the task's own metric (greater-than: prob-diff)."""
    if metric:
        return metric
    return "kl" if spec.default_metric == "kl" else task_metric


def with_defaults(method: str, threshold: Optional[float],
                  params: Optional[Mapping[str, Any]]) -> tuple[Optional[float], dict[str, Any]]:
    """The threshold and settings a run will really use, so they are recorded before it starts."""
    params = dict(params or {})
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS.get(method)
    if threshold is None and method in DEFAULT_SELECTION and not params.keys() & {"top_k", "target"}:
        params = {**DEFAULT_SELECTION[method], **params}
    return threshold, params


def evaluate_output(setup: PatchSetup, output: MethodOutput) -> dict[str, float]:
    """The circuit's performance by real ablation of everything outside it (never by a method's own estimate)."""
    if output.granularity is Granularity.NODES:
        mask = circuit_mask(setup, nodes=output.kept_nodes)
    else:
        mask = circuit_mask(setup, edges=output.kept_edges)
    return setup.performance(float(setup.values(mask.unsqueeze(0))[0]))


def discover(
    model: Any,
    dataset: Any,
    method: str,
    *,
    metric: Optional[str] = None,
    ablation: Optional[str] = None,
    threshold: Optional[float] = None,
    params: Optional[Mapping[str, Any]] = None,
    seed: int = 0,
    positions: Optional[list[int]] = None,
    progress: Progress = no_progress,
    setup: Optional[PatchSetup] = None,
) -> DiscoveryResult:
    """Find a circuit for ``dataset`` in ``model`` with ``method``; seeded, so the same call gives the same result."""
    spec = get_method(method)
    metric = choose_metric(spec, dataset.metric, metric)
    ablation = ablation or spec.default_ablation
    threshold, params = with_defaults(method, threshold, params)
    torch.manual_seed(seed)
    if setup is None:
        setup = prepare(model, dataset, metric=metric, ablation=ablation, seed=seed, positions=positions)
    fn = spec.load()
    _check_params(method, fn, params)
    output: MethodOutput = fn(setup, threshold=threshold, progress=progress, **params)
    performance = evaluate_output(setup, output)
    return DiscoveryResult(
        method=method,
        metric=metric,
        params={"ablation": ablation, "corruption": dataset.corruption, "n_prompts": len(dataset.clean),
                "positions": positions, **dict(output.params)},
        model=model.spec,
        dataset=dataset.spec,
        granularity=output.granularity,
        edges=output.edges,
        nodes=output.nodes,
        threshold=output.threshold,
        performance=performance,
        seed=seed,
        device=str(model.device),
        dtype=str(model.dtype).replace("torch.", ""),
        code_version=code_version(),
        extras={**dict(output.extras), "forwards": setup.forwards},
    )


def _check_params(method: str, fn: Any, params: Mapping[str, Any]) -> None:
    """Refuse settings a method does not take, by name, before any work is done."""
    accepted = set(inspect.signature(fn).parameters) - {"setup", "threshold", "progress"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise SettingsError(f"{method} does not take {', '.join(unknown)} (it takes: {', '.join(sorted(accepted))})")


def code_version() -> str:
    """The git commit of the code when run from a checkout, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from discovery.models import library_versions

        return library_versions().get("circuit-catalog", "unknown")
