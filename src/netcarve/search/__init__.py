"""Design-space search (README: Search): spaces, samplers, metrics, Optuna studies driven by ask/tell.

Entry points are in :mod:`netcarve.search.api` (start, resume, join, finish); the CLI renders them.
"""
