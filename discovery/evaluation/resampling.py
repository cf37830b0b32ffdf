"""Running one method again and again on resamples, for a stability study (``circuits stability``).

Méloux, Portet, Peyrard et al. (2025, "Mechanistic Interpretability as Statistical Estimation", arXiv 2510.00845)
treat circuit discovery as an estimator and measure its variance by running it on bootstrap resamples of the
prompts. The resamples here:

- ``prompts``: resample ``i`` (1..N) is the run's own prompts (drawn, filtered) resampled with replacement by the
  seed ``i`` (``discovery.tasks.filtering.resample``); everything else as configured. Their bootstrap.
- ``seeds``: resample ``i`` runs with seed ``seed + i - 1``: other prompts drawn from the task, and other random
  choices of the method (resample ablation, seeded methods).
- both at once.

Each resample is one ordinary run, recorded as ``discovery.pipeline.run`` records one (succeeded, failed or
interrupted; never left running), on a model loaded once and held for all of them; the dataset's spec carries the
resample seed. The statistics over the circuits found are torch-free (``catalog.stats``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from discovery.config import RunConfig, check_seed
from discovery.errors import SettingsError
from discovery.methods.base import Progress, no_progress
from discovery.pipeline import Outcome, Recorder, check_against, check_model, discover_recorded

RESAMPLE_KINDS: tuple[str, ...] = ("prompts", "seeds")


@dataclass(frozen=True)
class Resample:
    """One run of a stability study: its 1-based ``index``, its configuration, and its bootstrap seed (None: the
    prompts themselves)."""

    index: int
    config: RunConfig
    bootstrap: Optional[int]


def plan_resamples(config: RunConfig, n: int, kinds: Sequence[str] = ("prompts",)) -> list[Resample]:
    """The ``n`` resamples of ``config`` (see the module docstring), checked before anything runs."""
    unknown = [k for k in kinds if k not in RESAMPLE_KINDS]
    if unknown or not kinds:
        raise SettingsError(f"--resample: choose from {', '.join(RESAMPLE_KINDS)}, got {', '.join(unknown) or 'none'}")
    if n < 2:
        raise SettingsError(f"--resamples: a stability study compares at least two runs, got {n}")
    out = []
    for i in range(1, n + 1):
        seed = check_seed(config.seed + i - 1) if "seeds" in kinds else config.seed
        out.append(Resample(i, dataclasses.replace(config, seed=seed), i if "prompts" in kinds else None))
    return out


def run_resample(resample: Resample, model: Any, *, recorder: Optional[Recorder] = None, name: Optional[str] = None,
                 progress: Progress = no_progress) -> Outcome:
    """One resample as ``discovery.pipeline.run`` runs a configuration, on the held ``model``, with its prompts
    bootstrap-resampled when the resample says so."""
    from discovery.tasks.filtering import prepare_dataset

    config = resample.config
    if recorder is not None:
        recorder.check_name(name)
    check_model(model, config)
    dataset = prepare_dataset(config.task, model, n=config.n_prompts, seed=config.seed, corruption=config.corruption,
                              correctness_filter=config.correctness_filter is not None,
                              resample_seed=resample.bootstrap)
    check_against(config, model.spec, dataset.seq_len)
    return discover_recorded(config, model, dataset, recorder=recorder, name=name, progress=progress)
