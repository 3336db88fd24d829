"""End-effector teleoperation: velocity commands move the grasp point by speed x time in the robot's
frame through the IK, unreachable targets are refused (the arm holds), a stale command stops the arm,
and bad input is refused before anything moves."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.robots.ee_teleop import GRIPPER, EETeleopConfig, EndEffectorLeader
from embodia.robots.so101 import HOME_QPOS


@pytest.fixture(scope="module")
def kin():
    from embodia.robots.kinematics import SO101Kinematics
    from embodia.robots.so101 import GRASP_SITE

    return SO101Kinematics(site=GRASP_SITE)


def leader(kin, **cfg):
    cfg.setdefault("ramp_s", 1e-3)  # no ramp: steps are exact (test_commands_ramp checks the ramp)
    now = [0.0]
    lead = EndEffectorLeader(EETeleopConfig(**cfg), fps=30, clock=lambda: now[0], kinematics=kin)
    lead.sync(HOME_QPOS)
    return lead, now


@pytest.mark.parametrize(
    ("move", "axis", "sign"), [((1, 0, 0), 0, 1), ((0, -1, 0), 1, -1), ((0, 0, -1), 2, -1)]
)
def test_a_command_moves_the_grasp_point_along_the_robots_axes(kin, move, axis, sign):
    lead, _ = leader(kin)
    start = lead.target.copy()
    lead.command(move=move)
    for _ in range(15):  # 0.5 s at 0.1 m/s: 5 cm
        q = lead.get_action()
    moved = kin.fk(q) - start
    assert moved[axis] * sign == pytest.approx(0.05, abs=0.004)
    assert np.abs(np.delete(moved, axis)).max() < 0.004  # and not sideways
    assert lead.status()["reachable"] and q[5] == HOME_QPOS[5]


def test_an_unreachable_target_is_refused_and_the_arm_holds(kin):
    lead, _ = leader(kin, speed=0.5)
    lead.command(move=(1, 0, 1))  # up and away: beyond the arm's reach within a second
    goals = [lead.get_action() for _ in range(60)]
    status = lead.status()
    assert not status["reachable"] and status["refused_ticks"] > 0
    assert np.array_equal(goals[-1], goals[-2])  # the last reachable goal, sent again
    assert np.linalg.norm(kin.fk(goals[-1]) - lead.target) < 0.004  # where the arm is asked to be
    lead.command(move=(-1, 0, -1))  # coming back is accepted at once
    lead.get_action()
    assert lead.status()["reachable"]


def test_a_stale_command_stops_the_arm(kin):
    lead, now = leader(kin)
    lead.command(move=(1, 0, 0))
    a = lead.get_action()
    now[0] = 0.6  # no command for longer than timeout_s (a lost page, a key release never received)
    b, c = lead.get_action(), lead.get_action()
    assert not np.array_equal(a, HOME_QPOS) and np.array_equal(b, c) and not lead.status()["moving"]


def test_gripper_and_rates_and_bad_input(kin):
    lead, _ = leader(kin)
    lead.command(gripper="close")
    assert lead.get_action()[5] == GRIPPER["close"] and lead.status()["gripper"] == "closed"
    lead.command(roll=1.0)
    roll0 = lead.q[4]
    q = [lead.get_action() for _ in range(3)][-1]
    assert q[4] - roll0 == pytest.approx(3 * 2.0 / 30, abs=1e-6)  # roll_speed 2 rad/s, 3 ticks
    before = lead.q.copy()
    for bad in ({"move": (np.nan, 0, 0)}, {"move": (1, 0)}, {"gripper": "half"}, {"pitch": np.inf}):
        with pytest.raises(ValueError):
            lead.command(**bad)
    assert np.array_equal(lead.q, before)
    lead.command(move=(5, 0, 0))  # clipped to full speed
    assert np.array_equal(lead._move, [1, 0, 0])
    with pytest.raises(ValueError):
        EETeleopConfig(speed=0)
    with pytest.raises(ValueError):
        lead.sync(np.zeros(5))


def test_commands_ramp_to_full_speed_and_back(kin):
    """A key press is a step; the goal accelerates over ramp_s (here 0.2 s: 6 ticks), so no joint goal jumps."""
    lead, now = leader(kin, ramp_s=0.2)
    xs = [lead.target[0]]
    lead.command(move=(1, 0, 0))
    for _ in range(10):
        lead.get_action()
        xs.append(lead.target[0])
    v = np.diff(xs) * 30 / 0.1  # fraction of full speed, per tick
    assert np.allclose(v[:6], np.arange(1, 7) / 6, atol=0.05) and np.allclose(v[6:], 1.0, atol=0.05)
    now[0] = 1.0  # the command went stale: it ramps down, then stops
    ys = []
    for _ in range(8):
        lead.get_action()
        ys.append(lead.target[0])
    assert np.allclose(np.diff(ys) * 30 / 0.1, [4 / 6, 3 / 6, 2 / 6, 1 / 6, 0, 0, 0], atol=0.05)
    assert not lead.status()["moving"]
