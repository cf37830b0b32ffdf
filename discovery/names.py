"""What a user picks from, and what each choice means: metrics and ablations. Torch-free, so the CLI can list them
without loading torch, and the one place a metric's meaning is written (``discovery.metrics`` computes them).

A metric's meaning, written once here and read everywhere else:

- ``higher_is_better``: the direction of the metric (KL is a distance from the model, lower is better);
  every method's *loss* is the metric itself when lower is better, else its negation.
- ``best_at_model``: the model itself scores the metric's best possible value (KL's 0), so m(circuit) / m(model)
  means nothing and the metric's gradient at the clean run is zero.
- ``share`` (derived): how a circuit's share of the model's performance is measured. ``kept_fraction`` =
  m(circuit) / m(model), the "80 % of the model" of Lan et al. (2023); ``faithfulness`` = (m(circuit) - m(empty)) /
  (m(model) - m(empty)), MIB's normalisation (Mueller et al. 2025), for the metrics best at the model.
- ``differentiable``: whether attribution (EAP, EAP-IG) can take its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

KEPT_FRACTION = "kept_fraction"
FAITHFULNESS = "faithfulness"
SHARES = (KEPT_FRACTION, FAITHFULNESS)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    description: str
    higher_is_better: bool
    best_at_model: bool
    differentiable: bool
    source: str

    @property
    def share(self) -> str:
        return FAITHFULNESS if self.best_at_model else KEPT_FRACTION


_SPECS = (
    MetricSpec("logit-diff", "mean logit of the right answers minus mean logit of the wrong ones, last position",
               True, False, True, "Wang et al. 2022; Lan et al. 2023 (logit(correct) - logit(last member))"),
    MetricSpec("prob-diff", "summed probability of the right answers minus that of the wrong ones",
               True, False, True, "Hanna, Liu & Variengien 2023"),
    MetricSpec("kl", "KL(clean model || circuit) over the next-token distribution at the last position",
               False, True, True, "Conmy et al. 2023"),
    MetricSpec("accuracy", "the top token is one of the right answers", True, False, False, "-"),
)
METRIC_SPECS: dict[str, MetricSpec] = {m.name: m for m in _SPECS}
METRICS: tuple[str, ...] = tuple(METRIC_SPECS)

ABLATION_MEANINGS: dict[str, str] = {
    "patch": "the corrupted prompt's activation (interchange / counterfactual patching)",
    "mean": "the mean over the corrupted prompts, per position",
    "zero": "zero",
    "resample": "the activation on another, randomly drawn corrupted prompt (seeded)",
}
ABLATIONS: tuple[str, ...] = tuple(ABLATION_MEANINGS)


def metric_spec(name: str) -> MetricSpec:
    """The spec of a metric by name; ``KeyError`` callers turn into their own error."""
    return METRIC_SPECS[name]


def share_measure(metric: str) -> str:
    """Which share of the model's performance circuits are measured by under ``metric``."""
    return METRIC_SPECS[metric].share
