"""Sweeps: a research grid as one command, each job's key the hash of what determines its circuit, run on Ray.

- ``spec``: the TOML spec, expanded and checked into run configurations (torch-free).
- ``worker``: one process holding one model, resolving job keys and running jobs on it.
- ``pools``: where workers live (Ray actors, or this process).
- ``plan``: each job's key and where the catalog stands on it.
- ``runner``: the driver: skip what is done, run the rest, retry what a fault stopped, stop cleanly.

``circuits sweep`` (``cli.sweep_cmds``) is the command; docs/sweeps.md the guide. Importing this package imports
nothing heavy.
"""
