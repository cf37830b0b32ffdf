"""Every error the catalog raises on purpose, in one place. Each message is one line a user can act on."""

from __future__ import annotations


class CatalogError(Exception):
    """Base: the CLI prints ``str(err)`` on one line and exits non-zero."""


class NotFound(CatalogError):
    """A named circuit, run, model or node does not exist."""


class AlreadyExists(CatalogError):
    """A unique name is taken."""


class SchemaMismatch(CatalogError):
    """The database's schema is older or newer than this code; the message names the command to run."""


class BadDatabase(CatalogError):
    """The URL is malformed, the server unreachable, or the file is not a database."""


class InvalidCircuit(CatalogError):
    """A circuit (imported, published or discovered) is malformed or inconsistent; nothing was written."""
