"""Benchmarks that print figures: ``python -m nora_ros.bench {policy,safety,loop,fast,kinematics,sim,ros,replay,robots}``.

Each module defines ``register(subparsers)`` like the CLI commands. Benchmarks are scripts,
not tests: the figures in notes and README come from here.
"""

BENCHES = ("policy", "safety", "loop", "fast", "kinematics", "sim", "ros", "replay", "robots", "console", "models")
