"""circuit-catalog's store: circuits as nodes and edges in SQL, and the questions asked of them.

Never imports torch: a catalog of published circuits works on a machine with no model at all.
"""
