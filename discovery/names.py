"""Names a user picks from (metrics, ablations), kept torch-free so the CLI can list them without loading torch."""

from __future__ import annotations

METRICS = ("logit-diff", "prob-diff", "kl", "accuracy")
ABLATIONS = ("patch", "mean", "zero", "resample")
