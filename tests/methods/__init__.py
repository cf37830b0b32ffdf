"""Tests of the discovery methods, and the planted-circuit model (``planted.py``) other method tests reuse."""
