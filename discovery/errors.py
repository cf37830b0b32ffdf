"""Errors discovery raises on purpose; the CLI prints each as one line and exits non-zero."""

from __future__ import annotations


class DiscoveryError(Exception):
    """Base for every expected failure of discovery (bad model, bad task, bad prompts, bad settings)."""


class ModelNotAvailable(DiscoveryError):
    """A model cannot be loaded here: not in the local cache, not a folder, or not a supported architecture."""


class TaskError(DiscoveryError):
    """A task or its prompts cannot be used with this model (unknown task, multi-token answer, length mismatch)."""


class SettingsError(DiscoveryError):
    """A method was given settings it cannot run with."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm, Ray and Kubernetes send on pre-emption), raised where the program is, so that a run
    ends ``interrupted`` exactly as on Ctrl-C (``cli.entry`` installs the handler)."""


class OutputError(DiscoveryError):
    """A file the user asked for cannot be written (no such folder, no space, no permission); nothing was left."""
