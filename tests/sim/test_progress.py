"""Where a tabletop episode stopped: milestones and failure labels from scripted scene sequences, and the
env reporting them at the end of real episodes (the scripted expert's, an idle arm's)."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.sim.progress import FAILURE_LABELS, TaskProgress
from embodia.sim.tabletop import TabletopEnv
from embodia.sim.tasks import COLORS, FAMILIES, SceneState, make_task

H = 0.0125  # block half-size
START = {
    "red": np.array([0.20, 0.00, H]),
    "green": np.array([0.20, 0.10, H]),
    "blue": np.array([0.28, -0.08, H]),
    "purple": np.array([0.12, -0.10, H]),
}
BOWL = np.array([0.30, 0.08, 0.0])
FAR = np.array([0.05, 0.0, 0.25])  # the tool, away from everything


def scene(tool=FAR, contact=(), gripper=0.6, block_yaw=None, jaw_yaw=None, **moved) -> SceneState:
    """A scene with the blocks at START except those given (colour=position)."""
    pos = {c: np.asarray(moved.get(c, START[c]), float) for c in COLORS}
    return SceneState(
        block_pos=pos,
        block_vel={c: np.zeros(3) for c in COLORS},
        block_start=START,
        gripper_contact={c: c in contact for c in COLORS},
        tool_pos=np.asarray(tool, float),
        bowl_pos=BOWL,
        table_z=0.0,
        block_half=H,
        bowl_inner_radius=0.036,
        bowl_rim_z=0.03,
        gripper_joint=gripper,
        block_yaw=block_yaw,
        jaw_yaw=jaw_yaw,
    )


def run(task, *scenes) -> TaskProgress:
    progress = TaskProgress(task, present=tuple(COLORS))
    for s in scenes:
        progress.update(s)
    return progress


RED = START["red"]
UP = np.array([0.0, 0.0, 1.0])
pick = make_task("pick", "red")
place = make_task("place", "red")
stack = make_task("stack", "red", other="green")
touch = make_task("touch", "red")
push_left = make_task("push", "red", direction="left")  # +y


@pytest.mark.parametrize(
    ("task", "scenes", "label"),
    [
        (pick, [scene()], "never reached"),
        (pick, [scene(tool=START["green"])], "wrong block"),
        (pick, [scene(tool=RED + 0.01 * UP, contact=("red",))], "no grasp attempt"),  # touched, jaw open
        # A jaw rests on the top face (tool 2 cm above the centre, touching), then closes there.
        (
            pick,
            [scene(tool=RED + 0.02 * UP, contact=("red",)), scene(tool=RED + 0.02 * UP, gripper=0.1)],
            "landed on block",
        ),
        (stack, [scene(tool=RED + 0.02 * UP, contact=("red",))], "landed on block"),
        (pick, [scene(tool=RED + 0.02 * UP, gripper=0.1)], "missed grasp"),  # closed at it, never lifted
        (
            pick,
            [scene(tool=RED + 0.05 * UP, gripper=0.1), scene(tool=RED)],
            "no grasp attempt",
        ),  # closed too far
        (pick, [scene(tool=RED, contact=("red",), red=RED + 0.03 * UP)], "not lifted"),
        (pick, [scene(tool=RED, contact=("red",), red=RED + 0.06 * UP), scene(tool=RED)], "dropped"),
        (place, [scene(tool=RED, contact=("red",), red=RED + 0.03 * UP)], "not carried"),
        (
            place,
            [scene(tool=RED, contact=("red",), red=RED + 0.03 * UP), scene(red=BOWL + 0.05 * UP)],
            "not set down",
        ),
        (stack, [scene(tool=RED, contact=("red",), red=RED + 0.03 * UP)], "not carried"),
        (
            stack,
            [scene(contact=("red",), red=RED + 0.03 * UP), scene(red=START["green"] + 0.04 * UP)],
            "not set down",
        ),
        (push_left, [scene(tool=RED + [0, -0.04, 0], contact=("red",))], "not pushed"),
        (push_left, [scene(contact=("red",), red=RED + [0, 0.05, 0])], "pushed short"),
        (push_left, [scene(contact=("red",), red=RED + [0.1, 0.0, 0])], "wrong direction"),
        (touch, [scene(tool=RED, contact=("red",), red=RED + [0.04, 0, 0])], "knocked away"),
        (touch, [scene(tool=RED), scene()], "not held"),
    ],
)
def test_each_failure_gets_the_label_of_where_it_stopped(task, scenes, label):
    assert label in FAILURE_LABELS
    assert run(task, *scenes).failure() == label


def test_stack_does_not_count_its_base_block_as_the_wrong_block():
    # Going to the green block first is part of neither task's success, but for "red on green" green is
    # the goal, not a distractor.
    assert run(stack, scene(tool=START["green"])).failure() == "never reached"
    assert run(pick, scene(tool=START["green"])).failure() == "wrong block"


def test_the_first_grasp_attempt_is_measured():
    yaws = {c: 0.0 for c in COLORS} | {"red": np.radians(80)}  # 10 degrees from a face (90-periodic)
    p = run(
        pick,
        scene(tool=RED + [0.0, 0.0, 0.08], gripper=0.1, block_yaw=yaws, jaw_yaw=0.0),  # too far: not one
        scene(tool=RED + [0.012, 0.005, 0.02], gripper=0.3, block_yaw=yaws, jaw_yaw=0.0),
        scene(tool=RED, gripper=0.1, block_yaw=yaws, jaw_yaw=np.radians(80)),  # a later attempt: not kept
    )
    assert p.summary(success=False)["measures"] == {
        "grasp": {"offset_cm": 1.3, "height_cm": 2.0, "jaw_deg": 10.0}
    }
    # A block held across its diagonal keeps the jaw wider (~0.4 rad): still a closing jaw.
    diagonal = run(pick, scene(tool=RED, gripper=0.42, contact=("red",)))
    assert diagonal.measures() == {"grasp": {"offset_cm": 0.0, "height_cm": 0.0}}
    assert "closed_near" in diagonal.stages
    # Without yaws (an env that does not know them) the jaw angle is left out.
    q = run(place, scene(tool=RED + [0.0, 0.01, 0.0], gripper=0.1))
    assert q.measures() == {"grasp": {"offset_cm": 1.0, "height_cm": 0.0}}


def test_a_push_is_measured_by_its_slide_and_angle():
    short = run(push_left, scene(contact=("red",), red=RED + [0.03, 0.04, 0]))  # +y is left
    assert short.measures() == {"push": {"slid_cm": 5.0, "off_deg": 36.9}}
    nudge = run(push_left, scene(contact=("red",), red=RED + [0.0, -0.01, 0]))
    assert nudge.measures() == {"push": {"slid_cm": 1.0}}  # too small a slide to have a direction


def test_milestones_are_listed_in_the_order_they_happened():
    p = run(
        pick,
        scene(tool=START["blue"]),  # another block first, then the right one: not "wrong block"
        scene(tool=RED, contact=("red",)),
        scene(tool=RED, contact=("red",), red=RED + 0.02 * UP),
        scene(tool=RED, contact=("red",), red=RED + 0.06 * UP),
    )
    assert p.summary(success=True) == {
        "stages": ["other_reached", "reached", "grasped", "lifted"],
        "failure": None,
        "measures": {},  # the jaw never closed: no grasp attempt to measure
    }
    assert p.summary(success=False)["failure"] == "dropped"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_env_reports_progress_when_an_episode_ends(family):
    env = TabletopEnv(family=family, render=False)
    try:
        env.reset(seed=3)
        info, steps = {}, 0
        while True:
            _, _, terminated, truncated, info = env.step(env.expert_action())
            steps += 1
            if terminated or truncated:
                break
            assert "progress" not in info  # only when the episode ends
        assert terminated and info["progress"]["failure"] is None
        stages = info["progress"]["stages"]
        assert stages[0] == "reached"
        if family in ("pick", "place", "stack"):  # the expert closes the jaw at the block, then lifts it
            assert stages[1:3] == ["closed_near", "grasped"]
            grasp = info["progress"]["measures"]["grasp"]  # centred, the jaws square to the block's faces
            assert grasp["offset_cm"] < 1.0 and abs(grasp["height_cm"]) < 1.0 and grasp["jaw_deg"] < 3.0
        elif family == "push":  # the block ended >= 8 cm the named direction, within 45 degrees
            push = info["progress"]["measures"]["push"]
            assert push["slid_cm"] >= 8.0 and push["off_deg"] <= 45.0
        else:
            assert info["progress"]["measures"] == {}
        expected_last = {"pick": "lifted", "place": "over_goal", "stack": "over_goal", "push": "moved"}
        assert info["progress"]["stages"][-1] == expected_last.get(family, "reached")

        env.reset(seed=3)
        hold = env.joint_positions()
        while True:
            _, _, terminated, truncated, info = env.step(hold)
            if terminated or truncated:
                break
        assert (
            truncated and info["progress"]["stages"] == [] and info["progress"]["failure"] == "never reached"
        )
        assert info["progress"]["measures"].get("grasp") is None
    finally:
        env.close()
