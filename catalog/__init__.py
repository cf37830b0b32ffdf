"""circuit-catalog's store: circuits as nodes and edges in SQL, and the questions asked of them.

``Catalog`` (``catalog.api``) is the one object a notebook needs; ``catalog.queries`` the session-level functions
beneath it. Never imports torch: a catalog of published circuits works on a machine with no model at all.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Catalog"]


def __getattr__(name: str) -> Any:
    if name == "Catalog":  # loaded on first use, so `import catalog.records` stays light
        from catalog.api import Catalog

        return Catalog
    raise AttributeError(name)
