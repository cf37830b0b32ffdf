"""How alike two circuits are: Jaccard over kept keys, and a score-weighted Jaccard, defined once.

Both compare the keys a circuit keeps at one level: its heads and MLPs (``nodes``; ``embed`` and ``logits`` are in
every circuit, as in ``catalog.compare``) or its edges (``edges``).

* ``jaccard`` = |A ∩ B| / |A ∪ B|.
* ``weighted`` is the Ruzicka similarity (the weighted Jaccard) of the two circuits' *score distributions*: each
  kept key weighs |score| / the circuit's total |score| at that level (its *mass*), so each circuit's weights
  sum to 1 whatever its method's score scale (EAP's logit units, ACDC's KL rises, node pruning's shares), and

      weighted(A, B) = Σ_k min(p_A(k), p_B(k)) / Σ_k max(p_A(k), p_B(k)) = m / (2 − m),  m = Σ_k min(p_A(k), p_B(k)).

  Two circuits with the same keys and proportional scores score 1; disjoint ones 0. A circuit with a kept key
  that has no finite score (a published circuit lists no scores), or whose scores sum to 0, weighs its keys
  alike (1/n each): it is then compared by membership, as plain Jaccard does.

The catalog stores each kept key's weight with it (``NodeRow.share``, ``EdgeRow.share``, written by
``save_circuit`` with ``shares`` below), and each circuit's component count and masses (``CircuitRow``), so that
``catalog.search`` ranks ten thousand circuits in SQL from one index, without reading them. Pure Python: no
database here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Optional

from catalog.records import CircuitLike

LEVELS = ("nodes", "edges")
COMPONENTS = ("head", "mlp")


def mass(scores: Iterable[Optional[float]]) -> Optional[float]:
    """Σ|score| over a circuit's kept keys at one level; None when there are none or one has no finite score."""
    total, seen = 0.0, False
    for score in scores:
        if score is None or not math.isfinite(score):
            return None
        total, seen = total + abs(score), True
    return total if seen else None


def weight(score: Optional[float], total: Optional[float], n: int) -> float:
    """One key's share of its circuit (see the module docstring); ``n`` is how many keys it keeps at the level."""
    if total is None or total <= 0 or score is None or not math.isfinite(score):
        return 1.0 / n
    return abs(score) / total


def shares(scores: list[Optional[float]]) -> list[float]:
    """The weights of a circuit's kept keys at one level, from their scores, in the same order."""
    total = mass(scores)
    return [weight(score, total, len(scores)) for score in scores]


def weights(circuit: CircuitLike, level: str) -> dict[str, float]:
    """Each kept key's weight at ``level`` (``nodes``: heads and MLPs; ``edges``)."""
    if level == "nodes":
        items = [(n.key, n.score) for n in circuit.nodes if n.kept and str(n.kind) in COMPONENTS]
    else:
        items = [(e.key, e.score) for e in circuit.edges if e.kept]
    return dict(zip((k for k, _ in items), shares([score for _, score in items])))


def jaccard(n_shared: int, n_a: int, n_b: int) -> float:
    """|A ∩ B| / |A ∪ B| from the counts (1.0 for two empty sets, as ``catalog.compare.jaccard``)."""
    union = n_a + n_b - n_shared
    return 1.0 if union == 0 else n_shared / union


def weighted_from_min(min_sum: float, a_empty: bool, b_empty: bool) -> float:
    """The weighted Jaccard from Σ min(p_A, p_B) over the shared keys (both distributions sum to 1)."""
    if a_empty and b_empty:
        return 1.0
    if a_empty or b_empty:
        return 0.0
    m = min(max(min_sum, 0.0), 1.0)  # rounding can push a sum of shares a hair past 1
    return m / (2.0 - m)


def weighted_jaccard(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """The weighted Jaccard of two weight maps from ``weights``."""
    shared = sum(min(a[k], b[k]) for k in a.keys() & b.keys())
    return weighted_from_min(shared, not a, not b)
