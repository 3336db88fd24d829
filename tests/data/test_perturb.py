"""Recovery-data perturbations: bursty action noise, and the structured approach error that moves each
grasp's or push's approach sideways and turns the wrist, fading out as the tool comes down to the block
(and, optionally, the carry of a held block, fading out before it is set down)."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.data.perturb import ActionNoise, ApproachError, Perturbations
from embodia.data.record import PerturbConfig, RecordConfig, record
from embodia.robots.kinematics import SO101Kinematics, approach_pitch
from embodia.robots.so101 import GRASP_SITE, GRIPPER_SITE
from embodia.robots.spec import SAWYER, SO101
from embodia.sim.tabletop import TabletopEnv
from embodia.sim.tasks import DIRECTIONS


def test_action_noise_comes_in_reproducible_bursts_and_spares_the_gripper():
    def run(seed: int) -> np.ndarray:
        noise = ActionNoise(0.02, action_dim=6, gripper_index=5, fps=30)
        noise.reset(0, seed)
        return np.stack([noise(0, np.zeros(6)) for _ in range(30 * 600)])

    z = run(1)
    np.testing.assert_array_equal(z, run(1))
    assert not np.array_equal(z, run(2))
    assert np.all(z[:, 5] == 0)
    quiet = np.abs(z[:, :5]).max(axis=1) < 1e-3
    assert 0.4 < quiet.mean() < 0.95  # off between bursts (the arm returns to the expert's path)
    assert 0.005 < np.abs(z[~quiet, :5]).std() < 0.02  # bursts reach about half the stationary std


def _expert_episode(family: str, seed: int, perturb) -> tuple[list, list, dict]:
    """Run the expert with `perturb` on what is executed: (labels, executed, final info)."""
    env = TabletopEnv(family=family, render=False)
    try:
        env.reset(seed=seed)
        perturb.reset(0, seed, {"family": family})
        labels, executed = [], []
        while True:
            a = env.expert_action()
            e = perturb(0, a)
            labels.append(np.asarray(a, float))
            executed.append(np.asarray(e, float))
            _, _, terminated, truncated, info = env.step(e)
            if terminated or truncated:
                return labels, executed, info
    finally:
        env.close()


def test_approach_error_moves_the_approach_and_is_gone_when_the_jaw_closes():
    err = ApproachError(SO101, lateral_m=0.02, roll_deg=25)
    labels, executed, info = _expert_episode("pick", 4, err)
    assert info["success"]  # the expert still grasps: its labels bring the arm back on the way down
    st = err._state[0]
    assert 0 < np.linalg.norm(st["offset"]) <= 0.02 and 0 < abs(st["roll"]) <= np.radians(25)

    kin = SO101Kinematics(site=GRASP_SITE)
    diff = np.array(executed) - np.array(labels)
    assert np.all(diff[:, 5] == 0)  # the gripper is never perturbed
    close = next(t for t, a in enumerate(labels) if a[5] < 0.2)  # the expert starts closing the jaw
    # High up, the whole error: the tool is `offset` away horizontally, at the same height and approach
    # pitch, with the wrist turned by `roll`.
    high = [t for t in range(15, close) if kin.fk(labels[t])[2] > 0.05]
    assert high
    for t in high[-3:]:
        (p_label, r_label), (p_exec, r_exec) = kin.fk_pose(labels[t]), kin.fk_pose(executed[t])
        np.testing.assert_allclose(p_exec - p_label, [*st["offset"], 0.0], atol=1e-3)
        assert approach_pitch(r_exec) == pytest.approx(approach_pitch(r_label), abs=0.01)
        assert diff[t, 4] == pytest.approx(st["roll"])
    # At the block, none: the jaw closes where the expert put it, and stays unperturbed after.
    assert np.all(diff[close:] == 0)
    low = [t for t in range(close) if kin.fk(labels[t])[2] < 0.02]
    assert low and np.all(diff[low] == 0)


def test_approach_error_is_reproducible_and_leaves_touches_alone():
    a = _expert_episode("pick", 7, ApproachError(SO101, 0.02, 25))[1]
    b = _expert_episode("pick", 7, ApproachError(SO101, 0.02, 25))[1]
    np.testing.assert_array_equal(np.array(a), np.array(b))
    labels, executed, _ = _expert_episode("touch", 7, ApproachError(SO101, 0.02, 25, carry_m=0.02))
    np.testing.assert_array_equal(np.array(executed), np.array(labels))
    # A pick has no carry to a target: the carry error leaves it alone after the close.
    labels, executed, _ = _expert_episode("pick", 7, ApproachError(SO101, 0.02, 25, carry_m=0.02))
    close = next(t for t, a in enumerate(labels) if a[5] < 0.2)
    np.testing.assert_array_equal(np.array(executed[close:]), np.array(labels[close:]))


def test_approach_error_moves_a_push_start_and_leaves_the_push_clean():
    err = ApproachError(SO101, lateral_m=0.02, roll_deg=25)
    labels, executed, info = _expert_episode("push", 4, err)
    assert info["success"]
    st = err._state[0]
    tip = SO101Kinematics(site=GRIPPER_SITE)
    z = np.array([tip.fk(q)[2] for q in labels])
    down = int(np.argmax(z < 0.02))  # the fingertips come down beside the block
    assert down > 0
    high = [t for t in range(15, down) if z[t] > 0.05]
    assert high
    for t in high[-3:]:
        np.testing.assert_allclose(tip.fk(executed[t]) - tip.fk(labels[t]), [*st["offset"], 0.0], atol=1e-3)
    np.testing.assert_array_equal(np.array(executed[down:]), np.array(labels[down:]))


def test_carry_error_moves_the_carried_block_and_is_gone_before_it_is_set_down():
    err = ApproachError(SO101, lateral_m=0.0, roll_deg=25, carry_m=0.02)
    labels, executed, info = _expert_episode("stack", 5, err)
    assert info["success"]  # the expert still stacks: its labels bring the block back over the target
    st = err._state[0]
    assert 0 < np.linalg.norm(st["carry"]) <= 0.02 and 0 < abs(st["carry_roll"]) <= np.radians(25)
    kin = SO101Kinematics(site=GRASP_SITE)
    diff = np.array(executed) - np.array(labels)
    close = next(t for t, a in enumerate(labels) if a[5] < 0.2)
    release = next(t for t in range(close, len(labels)) if labels[t][5] > 0.2)
    assert np.all(diff[:close] == 0)  # no approach error asked for
    carried = [t for t in range(close, release) if kin.fk(labels[t])[2] > 0.085]
    assert len(carried) > 10
    for t in carried[-3:]:
        np.testing.assert_allclose(kin.fk(executed[t]) - kin.fk(labels[t]), [*st["carry"], 0.0], atol=1e-3)
        assert diff[t, 4] == pytest.approx(st["carry_roll"])
    # Lowered onto the other block, and after the release: exactly the expert.
    set_down = [t for t in range(close + 1, len(labels)) if kin.fk(labels[t])[2] < 0.06]
    assert set_down and np.all(diff[set_down] == 0) and np.all(diff[release:] == 0)


def test_perturbations_chain_in_order_and_an_empty_chain_is_off():
    assert not Perturbations(None, None)
    action = np.array([0.0, -1.0, 1.0, 0.5, 0.0, 0.6])  # high above the table, jaw open
    chain = Perturbations(ApproachError(SO101, 0.02, 25), ActionNoise(0.05, 6, 5, 30))
    assert chain
    chain.reset(0, 1, {"family": "pick"})
    approach, noise = ApproachError(SO101, 0.02, 25), ActionNoise(0.05, 6, 5, 30)
    approach.reset(0, 1, {"family": "pick"})
    noise.reset(0, 1)
    for _ in range(20):  # the approach error first, then the noise on top of it
        out = chain(0, action)
        np.testing.assert_array_equal(out, noise(0, approach(0, action)))
    assert out[5] == 0.6 and not np.array_equal(out, action)


def test_approach_error_is_recorded_as_clean_labels_with_moved_states(tmp_path):
    from embodia.data.reader import LeRobotDataset

    base = dict(tasks="pick", episodes=1, num_envs=1, image_size=32, keep_failures=True, seed=3)
    record(RecordConfig(**base), tmp_path / "clean")
    record(RecordConfig(**base, perturb=PerturbConfig(approach_error=0.02)), tmp_path / "moved")
    clean = LeRobotDataset.open(tmp_path / "clean").episode_data(0)
    moved = LeRobotDataset.open(tmp_path / "moved").episode_data(0)
    n = 30  # the first second: the approach, before any block is touched
    np.testing.assert_array_equal(moved["action"][:n], clean["action"][:n])
    assert (
        np.abs(moved["observation.state"][:n, [0, 4]] - clean["observation.state"][:n, [0, 4]]).max() > 0.02
    )


def test_bad_approach_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="approach_error is metres"):
        RecordConfig(perturb=PerturbConfig(approach_error=0.2))
    with pytest.raises(ValueError, match="carry_error is metres"):
        RecordConfig(perturb=PerturbConfig(carry_error=-0.01))
    with pytest.raises(ValueError, match="stroke_error is metres"):
        RecordConfig(perturb=PerturbConfig(stroke_error=0.08))
    with pytest.raises(ValueError, match="approach_roll is degrees"):
        RecordConfig(perturb=PerturbConfig(approach_error=0.01, approach_roll=90))
    with pytest.raises(ValueError, match="SO-101"):
        record(
            RecordConfig(tasks="metaworld:reach", episodes=1, perturb=PerturbConfig(approach_error=0.01)),
            tmp_path / "mw",
        )
    with pytest.raises(ValueError, match="SO-101"):
        record(
            RecordConfig(tasks="metaworld:reach", episodes=1, perturb=PerturbConfig(carry_error=0.01)),
            tmp_path / "mw",
        )
    with pytest.raises(ValueError, match="SO-101"):
        record(
            RecordConfig(tasks="metaworld:reach", episodes=1, perturb=PerturbConfig(stroke_error=0.01)),
            tmp_path / "mw",
        )
    assert not (tmp_path / "mw").exists()
    with pytest.raises(ValueError, match="SO-101"):
        ApproachError(SAWYER, 0.01, 10)


def test_stroke_error_moves_the_pusher_on_the_table_and_is_gone_on_the_way_up():
    err = ApproachError(SO101, lateral_m=0.0, roll_deg=0.0, stroke_m=0.02)
    labels, executed, info = _expert_episode("push", 4, err)
    assert info["success"]
    offset = err._state[0]["stroke"]
    assert 0 < np.linalg.norm(offset) <= 0.02
    tip = SO101Kinematics(site=GRIPPER_SITE)
    z = np.array([tip.fk(q)[2] for q in labels])
    down = int(np.argmax(z < 0.02))
    assert down > 0
    # With no approach error the approach is the expert's.
    np.testing.assert_allclose(np.array(executed[:down]), np.array(labels[:down]), atol=1e-9)
    # On the table, once faded in, the fingertips are `offset` off the expert's, at the same height.
    on_table = [t for t in range(down + err.ramp_ticks, len(labels)) if z[t] < 0.02]
    assert len(on_table) > 10
    for t in on_table:
        np.testing.assert_allclose(tip.fk(executed[t]) - tip.fk(labels[t]), [*offset, 0.0], atol=1.5e-3)


def test_a_push_whose_stroke_lags_is_pushed_on_by_the_expert():
    """The expert reads where the block is: a stroke executed 4 cm behind its plan leaves the block short,
    and the labels push on past the planned stroke instead of lifting off."""
    tip = SO101Kinematics(site=GRIPPER_SITE)

    class Lagging(ApproachError):
        def reset(self, env: int, seed: int, options: dict | None = None) -> None:
            super().reset(env, seed, options)
            self._state[env]["stroke"] = -lag * direction

    reached = {}
    for lag in (0.0, 0.04):
        world = TabletopEnv(family="push", render=False)
        world.reset(seed=6)
        direction = np.asarray(DIRECTIONS[world.task.direction])
        world.close()
        labels, _, info = _expert_episode("push", 6, Lagging(SO101, 0.0, 0.0, stroke_m=0.01))
        assert info["success"]
        reached[lag] = max(float(direction @ tip.fk(q)[:2]) for q in labels)
    assert reached[0.04] > reached[0.0] + 0.02
