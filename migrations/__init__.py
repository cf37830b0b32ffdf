"""The catalog's Alembic migrations, shipped inside the package so `circuits db upgrade` works from a wheel.

``catalog.db`` builds the Alembic config in code and points it here; the top-level ``alembic.ini`` points
developers at the same folder (``alembic -c alembic.ini -x db=URL revision --autogenerate -m "..."``).
"""
