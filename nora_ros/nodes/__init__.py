"""The ROS 2 shells (DESIGN.md sections 2 and 5): thin rclpy nodes over the core.

Each node module defines a shell class (a plain object owning an ``rclpy`` node, its timers,
publishers and parameters) and ``main()``, which ``scripts/<node>`` runs. This is ROS land:
the modules import rclpy and the message packages at the top, like the ROS 2 examples. What
they compute lives in the ROS-free core (``control``, ``trials``, ``interface``, ``camera``),
tested without ROS; test/fake_rclpy.py stands in for rclpy to run the shells themselves.
"""
