"""``python -m nora_ros.bench sim``: what the simulator costs on this machine.

Figures (wall clock, this process, one CPU thread for physics, OSMesa for rendering):

- physics: one 0.2 s Bridge step of simulated time (100 physics steps of 2 ms plus the arm's
  profile updates), measured during scripted-expert trials, so the arm moves and grasps;
- render: one 480x640 RGB frame of the Bridge camera (the first call, which creates the GL
  context, is reported apart);
- trials: scripted-expert trials scored by the sim check, without rendering: successes and wall
  time per trial.

``nora-ros demo`` pays physics for every control tick and one render per camera frame; these
figures say how much of its time each takes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sim", help="MuJoCo physics step and 480x640 render cost, scripted-expert trials")
    p.add_argument("--trials", type=int, default=10, help="scripted-expert trials (default 10)")
    p.add_argument("--renders", type=int, default=50, help="frames to render (default 50)")
    p.add_argument("--task", default="carrot_in_pot", help="sim task (default carrot_in_pot)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first trial (default 0)")
    p.set_defaults(func=run)


def _ms(values: list[float]) -> str:
    a = np.asarray(values) * 1e3
    return f"median {np.median(a):7.2f} ms  p90 {np.percentile(a, 90):7.2f} ms  max {a.max():7.2f} ms  (n={a.size})"


def run(args: argparse.Namespace) -> int:
    from nora_ros.sim.arm import MujocoArm
    from nora_ros.sim.expert import ScriptedExpertPolicy
    from nora_ros.sim.rollout import execute_bridge_action
    from nora_ros.sim.world import SimWorld

    world = SimWorld(task=args.task, seed=args.seed)
    arm = MujocoArm(world)
    policy = ScriptedExpertPolicy()
    print(f"bench sim: task '{world.task.instruction}', timestep {world.timestep * 1e3:g} ms, "
          f"image {world.config.image_height}x{world.config.image_width}")

    step_costs: list[float] = []
    trial_walls: list[float] = []
    wins = 0
    for k in range(args.trials):
        t_trial = time.perf_counter()
        world.reset(args.seed + k)
        policy.reset(world.task.instruction)
        target = arm.state().ee_pose
        for _ in range(80):
            chunk = policy.act(world.observation(render=False), world.task.instruction)
            target, _held = execute_bridge_action(world, arm, target, chunk.actions[0], chunk.step_period, arm.state())
            t0 = time.perf_counter()
            world.step(chunk.step_period)
            step_costs.append(time.perf_counter() - t0)
            if world.success().success:
                wins += 1
                break
        trial_walls.append(time.perf_counter() - t_trial)

    t0 = time.perf_counter()
    world.render()
    first = time.perf_counter() - t0
    render_costs = []
    world.reset(args.seed)
    for _ in range(args.renders):
        world.step(0.02)
        t0 = time.perf_counter()
        world.render()
        render_costs.append(time.perf_counter() - t0)
    world.close()

    print(f"physics, one 0.2 s step : {_ms(step_costs)}  = {0.2 / np.median(step_costs):.0f}x real time")
    print(f"render 480x640, first   : {first * 1e3:7.2f} ms (creates the GL context)")
    print(f"render 480x640          : {_ms(render_costs)}")
    print(f"expert trials           : {wins}/{args.trials} succeeded; wall per trial {_ms(trial_walls)}")
    return 0
