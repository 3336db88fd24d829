import numpy as np
import pytest

from embodia.robots.safety import SafetyLayer
from embodia.robots.so101 import from_lerobot_units, to_lerobot_units
from embodia.robots.spec import EMBODIMENTS, SAWYER, SO101, get_embodiment


def test_so101_uses_lerobot_names_and_official_limits():
    assert SO101.robot_type == "so101_follower"
    assert SO101.state_names == (
        "shoulder_pan.pos",
        "shoulder_lift.pos",
        "elbow_flex.pos",
        "wrist_flex.pos",
        "wrist_roll.pos",
        "gripper.pos",
    )
    assert SO101.action_kind == "joint_abs" and SO101.fps == 30
    assert SO101.camera_names == ("front", "wrist")
    # ranges of so101_new_calib (radians)
    assert SO101.state_low[0] == pytest.approx(-1.91986) and SO101.state_high[4] == pytest.approx(2.84121)


def test_sawyer_is_ee_delta_with_corner2_camera():
    assert SAWYER.action_kind == "ee_delta" and SAWYER.fps == 80
    assert SAWYER.camera_names == ("corner2",)
    assert SAWYER.gripper.action_open == -1.0 and SAWYER.gripper.action_closed == 1.0


def test_specs_serialise_and_lookup():
    for spec in EMBODIMENTS.values():
        d = spec.to_dict()
        assert len(d["state"]["names"]) == spec.state_dim and len(d["action"]["units"]) == spec.action_dim
    with pytest.raises(ValueError, match="valid embodiments"):
        get_embodiment("ur5")


def test_lerobot_unit_round_trip():
    rng = np.random.default_rng(0)
    q = rng.uniform(SO101.state_low, SO101.state_high, size=(50, 6))
    lr = to_lerobot_units(q)
    assert np.allclose(from_lerobot_units(lr), q)
    assert np.all((lr[:, 5] >= 0) & (lr[:, 5] <= 100))
    assert to_lerobot_units(np.array([np.pi / 2, 0, 0, 0, 0, SO101.state_low[5]]))[[0, 5]] == pytest.approx(
        [90.0, 0.0]
    )
    with pytest.raises(ValueError, match="6 entries"):
        to_lerobot_units(np.zeros(5))


def test_safety_rejects_bad_shape_and_nan_with_expected_shape():
    layer = SafetyLayer(SO101)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        layer(np.zeros(5))
    with pytest.raises(ValueError, match="NaN or inf"):
        layer(np.array([0, 0, np.nan, 0, 0, 0]))
    with pytest.raises(ValueError, match="inf"):
        layer(np.array([0, 0, 0, np.inf, 0, 0]))
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        layer("not an action")


def test_safety_clamps_to_limits_and_rate_limits():
    layer = SafetyLayer(SO101)
    layer.reset(np.zeros(6))
    out = layer(np.array([10.0, 0, 0, 0, 0, 0]))
    assert out[0] == pytest.approx(SO101.max_action_change[0])  # one tick can move only so far
    assert layer.last_report.clamped_to_bounds and layer.last_report.rate_limited
    for _ in range(20):
        out = layer(np.array([10.0, 0, 0, 0, 0, 0]))
    assert out[0] == pytest.approx(SO101.state_high[0])  # and never past the joint limit
    ee = SafetyLayer(SAWYER)
    assert np.allclose(ee(np.array([2.0, -3.0, 0.5, 0.0])), [1.0, -1.0, 0.5, 0.0])


def test_ee_variant_keeps_state_and_moves_gripper_index():
    from embodia.robots.spec import SO101_EE

    assert SO101_EE.state_names == SO101.state_names and SO101_EE.action_dim == 4
    assert SO101_EE.gripper.state_index == 5 and SO101_EE.gripper.action_index == 3
    assert SAWYER.gripper.state_index == SAWYER.gripper.action_index == 3
