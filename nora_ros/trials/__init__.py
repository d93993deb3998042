"""Trials: the supervisor's state machine and its bookkeeping, operator inputs (instructions,
scores), the crash-safe results store, the results table (the NORA paper's Table 1) and the
figures of a trial.

May import the package root only; the loops and nodes drive it, it drives nothing.
"""
