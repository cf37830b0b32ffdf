"""The one encoder of values JSON has no literal for: nan and the infinities.

Attribution and patching scores can be nan or +-inf; JSON cannot spell them, and PostgreSQL refuses the bare
``NaN`` Python's ``json`` writes. ``to_json`` walks a value and replaces each non-finite float either by the text
``"nan"``/``"inf"``/``"-inf"`` (``style="text"``: what files and ``--json`` output show a reader) or by the marker
``{"$float": "nan"}`` (``style="marker"``: what the catalog stores, so that a real string ``"nan"`` in metadata is
never read back as a number); ``from_json`` undoes the marker. Torch-free, used by the catalog and the CLI.
"""

from __future__ import annotations

import math
from typing import Any

MARKER = "$float"


def nonfinite_text(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def to_json(value: Any, style: str = "text") -> Any:
    """``value`` with every non-finite float replaced (see the module docstring); dict keys become text."""
    if isinstance(value, float) and not math.isfinite(value):
        return nonfinite_text(value) if style == "text" else {MARKER: nonfinite_text(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v, style) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, style) for v in value]
    return value


def from_json(value: Any) -> Any:
    """``value`` with every ``{"$float": ...}`` marker turned back into its float."""
    if isinstance(value, dict):
        if len(value) == 1 and MARKER in value:
            return float(value[MARKER])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value
