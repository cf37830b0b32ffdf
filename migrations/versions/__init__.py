"""Revision files, one per schema version, with readable ids (``0001_initial``, ``0002_...``)."""
