"""Circuit discovery: the component graph, models, tasks, metrics, the patching engine and the methods.

Importing this package imports nothing heavy; ``discovery.graph`` and ``discovery.results`` are torch-free
so the catalog can use them.
"""
