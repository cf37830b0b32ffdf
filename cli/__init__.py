"""The ``circuits`` command."""
