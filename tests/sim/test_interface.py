import gymnasium as gym
import numpy as np

import embodia.sim  # noqa: F401  (registers the envs)
from embodia.robots.interface import Robot
from embodia.robots.spec import SO101
from embodia.sim.tabletop import TabletopEnv


def test_sim_arm_implements_the_robot_interface():
    env = TabletopEnv(image_size=32)
    try:
        env.reset(seed=0)
        robot = env.robot
        assert isinstance(robot, Robot) and robot.spec is SO101
        obs = robot.get_observation()
        assert set(obs) == {"observation.images.front", "observation.images.wrist", "observation.state"}
        sent = robot.send_action(np.full(6, 10.0))  # far outside the limits
        assert np.all(sent <= np.asarray(SO101.action_high)) and robot.safety.last_report.clamped_to_bounds
        before = robot.joint_positions()
        robot.advance()
        assert not np.allclose(before, robot.joint_positions())  # time passed, the arm moved
    finally:
        env.close()


def test_worlds_are_registered_with_gymnasium():
    env = gym.make("embodia/SO101Tabletop-v0", render=False)
    obs, _ = env.reset(seed=0)
    assert obs["observation.state"].shape == (6,)
    env.close()
    mw = gym.make("embodia/MetaWorld-v0", task="reach", render=False)
    obs, _ = mw.reset(seed=0)
    assert obs["observation.state"].shape == (4,) and obs["task"]
    mw.close()
