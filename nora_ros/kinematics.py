"""WidowX kinematics (wx250s, wx250): product-of-exponentials FK and IK seeded from the joints.

API CONTRACT (implementation in progress; signatures are fixed, other modules depend on them):

    model = WidowXModel.from_name("wx250s")       # or "wx250"
    model.name, model.n_joints, model.joint_names
    model.lower, model.upper                       # (n,) joint limits, rad
    model.max_joint_velocity                       # rad/s (pi)
    model.home_joints, model.sleep_joints          # (n,)
    model.fk(joints) -> 4x4 pose
    model.ik(pose, seed, *, max_joint_step=None, margin=0.0) -> IKResult
        IKResult(success: bool, joints: np.ndarray | None, reason: str,
                 position_error: float, rotation_error: float)
        seeded from ``seed`` (the current joints), with fallback seeds; respects limits minus
        ``margin`` and, when given, |joints - seed| <= max_joint_step (joint velocity limit
        times the step's duration). Never raises for an unreachable pose: success=False.
    model.within_limits(joints, margin=0.0) -> bool
"""
