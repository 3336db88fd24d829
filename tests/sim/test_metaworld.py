"""Meta-World adapter: gymnasium contract, embodia conventions, seeding, safety and the experts."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

# embodia sets MUJOCO_GL=egl when imported; nothing above this line may import mujoco (metaworld does).
from embodia.robots.spec import OBS_STATE, SAWYER, TASK
from embodia.sim.metaworld import (
    DIFFICULTY,
    INSTRUCTION_CHARSET,
    INSTRUCTION_MAX_LENGTH,
    INSTRUCTIONS,
    MT10,
    MT50,
    MetaWorldEnv,
    normalize_task_name,
    resolve_tasks,
)

IMAGE = "observation.images.corner2"


@pytest.fixture(scope="module")
def env():
    e = MetaWorldEnv("drawer-open")
    yield e
    e.close()


def test_check_env_passes(env):
    check_env(env.unwrapped, skip_render_check=True)


def test_observation_keys_shapes_dtypes(env):
    obs, info = env.reset(seed=0)
    assert set(obs) == {IMAGE, OBS_STATE, TASK}
    assert obs[IMAGE].shape == (96, 96, 3) and obs[IMAGE].dtype == np.uint8
    assert obs[OBS_STATE].shape == (4,) and obs[OBS_STATE].dtype == np.float32
    assert obs[TASK] == env.instruction == "open the drawer"
    assert isinstance(env.observation_space[TASK], spaces.Text)
    assert env.observation_space.contains(obs)
    assert info["success"] is False
    assert env.action_space == spaces.Box(-1, 1, (4,), np.float32)
    assert env.metadata == {"render_modes": ["rgb_array"], "render_fps": 80}
    assert env.max_episode_steps == 400
    assert env.embodiment is SAWYER and env.spec_embodiment is SAWYER
    assert env.task_name == "drawer-open-v3"
    np.testing.assert_array_equal(env.render(), obs[IMAGE])


def test_state_is_hand_and_gripper_only(env):
    obs, _ = env.reset(seed=3)
    obs, *_, info = env.step(np.zeros(4, np.float32))
    # Meta-World's privileged vector has 39 entries; only its first 4 are exposed.
    assert env._last_obs.shape == (39,)
    np.testing.assert_allclose(obs[OBS_STATE], env._last_obs[:4].astype(np.float32))
    assert all(np.ndim(v) == 0 for v in info.values()), "info must not carry object poses"


def test_seed_fixes_the_scene(env):
    a, _ = env.reset(seed=7)
    priv_a = env._last_obs.copy()
    b, _ = env.reset(seed=7)
    np.testing.assert_array_equal(a[OBS_STATE], b[OBS_STATE])
    np.testing.assert_array_equal(a[IMAGE], b[IMAGE])
    np.testing.assert_array_equal(priv_a, env._last_obs)
    c, _ = env.reset(seed=8)
    # The hand always starts at the same place; the drawer moves, and with it the picture.
    assert not np.array_equal(priv_a[4:7], env._last_obs[4:7])
    assert not np.array_equal(a[IMAGE], c[IMAGE])


@pytest.mark.parametrize(
    "bad",
    [np.zeros(3), np.zeros((1, 4)), np.array([0.0, np.nan, 0.0, 0.0]), np.array([np.inf, 0, 0, 0])],
    ids=["short", "batched", "nan", "inf"],
)
def test_bad_action_is_rejected(env, bad):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        env.step(bad)


def test_out_of_range_action_is_clamped(env):
    env.reset(seed=0)
    *_, info = env.step(np.array([5.0, 0.0, 0.0, -3.0]))
    assert info["clamped"] is True


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="valid tasks") as exc:
        MetaWorldEnv("make-coffee")
    assert "drawer-open" in str(exc.value) and "pick-place" in str(exc.value)
    with pytest.raises(ValueError, match="valid tasks"):
        resolve_tasks("easy,make-coffee")


def test_task_names_and_groups():
    import metaworld.env_dict

    assert normalize_task_name("reach") == normalize_task_name("reach-v3") == "reach-v3"
    sizes = {g: len(t) for g, t in DIFFICULTY.items()}
    assert sizes == {"easy": 28, "medium": 11, "hard": 6, "very_hard": 5}
    union = [t for g in DIFFICULTY.values() for t in g]
    assert len(union) == len(set(union)) == 50
    assert set(union) == set(MT50) == set(metaworld.env_dict.ALL_V3_ENVIRONMENTS)
    assert list(MT10) == list(metaworld.env_dict.MT10_V3) and len(MT10) == 10
    assert resolve_tasks("mt50") == list(MT50)
    assert resolve_tasks("hard") == list(DIFFICULTY["hard"])
    assert resolve_tasks("reach, push-v3,reach") == ["reach-v3", "push-v3"]
    assert len(resolve_tasks("easy,medium,hard,very_hard")) == 50


def test_instructions_are_unique_lowercase_and_fit_the_space():
    assert len(set(INSTRUCTIONS.values())) == len(INSTRUCTIONS) == 50
    space = spaces.Text(max_length=INSTRUCTION_MAX_LENGTH, charset=INSTRUCTION_CHARSET)
    for name, instruction in INSTRUCTIONS.items():
        assert instruction == instruction.lower(), name
        assert space.contains(instruction), name


def test_render_false_drops_the_image():
    e = MetaWorldEnv("reach", render=False)
    try:
        obs, _ = e.reset(seed=0)
        assert IMAGE not in obs and IMAGE not in e.observation_space.spaces
        assert e.observation_space.contains(obs)
        assert e._renderer is None
    finally:
        e.close()


@pytest.mark.parametrize("task", ["reach", "drawer-open", "button-press-topdown"])
def test_expert_solves_easy_tasks(task):
    e = MetaWorldEnv(task, render=False)
    try:
        for seed in (0, 1):
            e.reset(seed=seed)
            terminated = truncated = False
            while not (terminated or truncated):
                action = e.expert_action()
                assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
                _, _, terminated, truncated, info = e.step(action)
            assert terminated and info["success"], (
                f"{task} seed {seed}: no success in {e.elapsed_steps} steps"
            )
            assert e.elapsed_steps < e.max_episode_steps
    finally:
        e.close()


def test_truncates_at_the_step_limit():
    e = MetaWorldEnv("reach", render=False, max_episode_steps=5)
    try:
        e.reset(seed=0)
        flags = [e.step(np.zeros(4))[3] for _ in range(5)]
        assert flags == [False] * 4 + [True]
    finally:
        e.close()
