"""Robot: the :class:`~nora_ros.robot.arm.Arm` interface, WidowX kinematics and IK, the
in-process kinematic arm and the Interbotix xs-driver adapter (the one core module that talks
to ROS, lazily, inside its functions).

May import the package root only.
"""
