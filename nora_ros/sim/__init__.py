"""A simulated WidowX 250 6-DoF (wx250s) in MuJoCo: scene, world, arm, tasks, scripted expert.

Anyone without a robot, GPU or ROS runs the same components closed-loop here (issue 5):

- :mod:`nora_ros.sim.scene` builds the MJCF in code from the wx250s kinematics (DESIGN.md 6);
- :mod:`nora_ros.sim.tasks` places the objects from a seed and scores trials from the physics;
- :mod:`nora_ros.sim.world` owns ``MjModel``/``MjData``: reset, deterministic stepping in sim
  time, the Bridge-like camera rendered on the CPU, ground truth for scripted policies;
- :mod:`nora_ros.sim.arm` is :class:`~nora_ros.robot.arm.Arm` backed by the world's position servos;
- :mod:`nora_ros.sim.expert` is a scripted expert policy that reads the ground truth;
- :mod:`nora_ros.sim.rollout` drives arm and policy step by step with Bridge semantics.

Importing this package does not import MuJoCo; the modules above do. Rendering offscreen on a
machine without a display needs ``MUJOCO_GL=osmesa`` (Debian's libosmesa6) set before MuJoCo
is first imported; :func:`nora_ros.sim.world.configure_gl` does that when nothing is set.
"""
