"""Fixtures for the statistics tests: the catalog store's per-backend databases (``tests/catalog/conftest.py``)."""

from tests.catalog.conftest import db_url, engine, pg_catalog_url  # noqa: F401  (fixtures, by name)
