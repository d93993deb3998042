"""The operator web console: a page served next to the robot to run, watch, stop and score
trials and whole evaluation series (issue 13).

ROS-free, like the rest of the core: the server (:mod:`.server`) talks to the system only
through :class:`~nora_ros.console.port.ConsolePort`. :mod:`.sim_port` implements it in-process
over the runner (``nora-ros sim --console``); the ROS console node implements it over the topics
and services of DESIGN.md section 5, so the safety node stays the only way to the motors.
May import the trials, safety, camera and runner modules; never ``rclpy``.
"""
