"""NORA on transformers: configuration, checkpoint loading, prompt, constrained decoding, the
:class:`~nora_ros.policy.nora.policy.NoraPolicy` and a tiny random-weight checkpoint for tests.

May import policy.base, policy.fast, camera, trials.instruction and the package root;
torch and transformers are imported inside the functions that need them.
"""
