"""Interface: the ROS-free half of the nodes: conversions between messages and the core's
dataclasses, and every node parameter's spec (type, default, range, description), from which
the nodes declare parameters and the YAML files and README tables are generated.

May import every core subpackage; only :mod:`nora_ros.nodes` and the commands import it.
"""
