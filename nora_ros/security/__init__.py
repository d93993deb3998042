"""Security of the ROS graph (no ROS imported here): who may reach the arm.

- :mod:`~nora_ros.security.policy`: the SROS2 permission policy (``config/nora_policy.xml``),
  rendered from the access table (:mod:`nora_ros.interface.access`);
- :mod:`~nora_ros.security.keystore`: ``nora-ros security init``, a thin wrapper over
  ``ros2 security create_keystore / create_enclave / create_permission`` (no crypto of ours);
- :mod:`~nora_ros.security.discovery`: discovery scope for the launch files (localhost by
  default, the domain-0 warning).

The safety node's graph guard (foreign publishers, unexpected service callers) is part of the
safety layer: :mod:`nora_ros.safety.graph_guard`. May import the interface and bag tables.
"""
