"""The import path the issue names for circuit evaluation; the code lives in ``discovery.evaluation``."""

from discovery.evaluation import (  # noqa: F401 - re-exported
    MIB_KS,
    Curve,
    ablate_shared,
    circuit_mask,
    compare_to_random,
    connected_core,
    evaluate_circuit,
    evaluate_masks,
    faithfulness_curve,
    is_connected,
    plot_curves,
    random_circuits,
    trapezoid,
)
