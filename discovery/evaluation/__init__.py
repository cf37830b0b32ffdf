"""Evaluating circuits: faithfulness of any circuit, random connected baselines, MIB curves, sub-circuit tests.

- ``circuits``: ``evaluate_circuit``, ``evaluate_masks`` (with the metric's spread over prompts), ``compare_to_random``,
  ``ablate_shared``;
- ``dissociation``: lesions of the full model for a double dissociation between two tasks' circuits;
- ``resampling``: a stability study's runs on bootstrap resamples of the prompts, or on other seeds;
- ``discovery.topology`` (torch-free, shared with the catalog): what "connected" means, ``random_circuits``,
  ``connected_core``;
- ``curves``: MIB's faithfulness curve (``faithfulness_curve``, ``Curve`` with ``cpr`` / ``cmd``);
- ``plotting``: ``plot_curves`` (matplotlib, imported only when called).
"""

from discovery.evaluation.circuits import (
    ablate_shared,
    circuit_mask,
    compare_to_random,
    evaluate_circuit,
    evaluate_masks,
)
from discovery.evaluation.curves import MIB_KS, Curve, faithfulness_curve, trapezoid
from discovery.evaluation.plotting import plot_curves
from discovery.topology import connected_core, is_connected, random_circuits

__all__ = [
    "MIB_KS", "Curve", "ablate_shared", "circuit_mask", "compare_to_random", "connected_core", "evaluate_circuit",
    "evaluate_masks", "faithfulness_curve", "is_connected", "plot_curves", "random_circuits", "trapezoid",
]
