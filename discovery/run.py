"""Running one discovery method on a loaded model and dataset: the method, an independent evaluation, a plain result.

``discover`` touches no database; ``discovery.pipeline.run`` wraps it with loading and recording.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Optional

import torch

from discovery.config import RunConfig
from discovery.evaluation import circuit_mask
from discovery.graph import Granularity
from discovery.methods import get_method
from discovery.methods.base import MethodOutput, Progress, no_progress
from discovery.patching import PatchSetup, prepare
from discovery.results import DiscoveryResult


def evaluate_output(setup: PatchSetup, output: MethodOutput) -> dict[str, float]:
    """The circuit's performance by real ablation of everything outside it (never by a method's own estimate)."""
    if output.granularity is Granularity.NODES:
        mask = circuit_mask(setup, nodes=output.kept_nodes)
    else:
        mask = circuit_mask(setup, edges=output.kept_edges)
    return setup.performance(float(setup.values(mask.unsqueeze(0))[0]))


def setup_for(model: Any, dataset: Any, config: RunConfig) -> PatchSetup:
    """The patching experiment a config describes, on a loaded model and its dataset."""
    return prepare(model, dataset, metric=config.metric, ablation=config.ablation, seed=config.seed,
                   positions=config.positions)


def discover(model: Any, dataset: Any, config: RunConfig, *, progress: Progress = no_progress,
             setup: Optional[PatchSetup] = None) -> DiscoveryResult:
    """Find the circuit ``config`` asks for in ``model`` on ``dataset``; seeded, so the same call gives the same
    result. The method receives exactly its resolved settings (``discovery.methods``)."""
    spec = get_method(config.method)
    torch.manual_seed(config.seed)
    setup = setup or setup_for(model, dataset, config)
    kwargs = dict(config.settings)
    if spec.takes_seed:
        kwargs["seed"] = config.seed
    output: MethodOutput = spec.load()(setup, progress=progress, **kwargs)
    return DiscoveryResult(
        config=config,
        model=model.spec,
        dataset=dataset.spec,
        granularity=output.granularity,
        params=dict(output.params),
        edges=output.edges,
        nodes=output.nodes,
        threshold=output.threshold,
        performance=evaluate_output(setup, output),
        code_version=code_version(),
        extras={**dict(output.extras), "forwards": setup.forwards},
    )


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
