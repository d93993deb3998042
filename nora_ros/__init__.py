"""nora_ros: run the NORA vision-language-action model on an Interbotix WidowX arm.

The package root is ROS-free (see DESIGN.md section 2): every capability lives in a plain
module here, and the ROS 2 nodes in ``nora_ros.nodes`` are thin shells over them.
"""

__version__ = "0.1.0"
