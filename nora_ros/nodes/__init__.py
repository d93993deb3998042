"""The ROS 2 shells (DESIGN.md sections 2 and 5): thin rclpy nodes over the core.

Each node module defines a shell class (a plain object owning an ``rclpy`` node, its timers,
publishers and parameters) and ``main()``, which ``scripts/<node>`` runs. The shells import
ROS inside their functions, so every module here imports on a machine without ROS; what they
compute lives in ROS-free modules (``policy_loop``, ``safety_loop``, ``supervisor_inputs``,
``ros_convert``, ``camera_sources``, ``node_params``), tested without ROS.
"""
