"""Control: the action scheduler (how a chunk is executed tick by tick), the policy loop (the
control tick the policy node and the runner run) and the safety loop (the safety node's tick,
start-pose moves), and the offline safety replay of a recorded episode through the scheduler
and the safety filter (nora-ros safety-replay).

May import camera, policy, safety, robot and the package root; nothing here knows ROS or a node.
"""
