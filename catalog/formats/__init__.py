"""Readers and writers of circuit files: the catalog's own format and other tools' (see ``catalog.interchange``)."""
