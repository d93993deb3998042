"""Experiments run in the simulator: grids of settings, one result line per trial, tables and plots.

May import the core (control, policy, sim, trials, runner); nothing imports it but ``commands``.
"""
