"""Meta-World (v3, metaworld==3.1.1) behind embodia's observation/action conventions.

Every embodia world is a `gymnasium.Env` with the same keys a LeRobot dataset uses:

- `observation.images.corner2`: uint8 (H, W, 3), default 96x96 (absent when `render=False`);
- `observation.state`: float32 (4,) = Meta-World's obs[0:4] (hand x, y, z, normalised finger opening);
- `task`: the natural-language instruction (a `gymnasium.spaces.Text`).

The action is Meta-World's own: float32 (4,) in [-1, 1] = end-effector delta xyz (1 unit = 1 cm per step)
and a gripper effort (-1 open, +1 close). Every action passes through `SafetyLayer(SAWYER)`.

The 39-dim Meta-World observation holds privileged simulator state (object poses, the goal). It is kept
inside the env only to drive the scripted expert (`expert_action()`); it never reaches a policy, neither
through the observation nor through `info`.

Settings, chosen to match LeRobot's Meta-World environment so success rates compare with its published
numbers (LeRobot reports 98.4 % for these experts with the same metaworld version):

- the scene comes from `metaworld.MT1(task, seed=42)`; the env class is built with
  `render_mode="rgb_array", camera_name="corner2"` and `set_task(mt1.train_tasks[0])`;
- the corner2 camera is moved to `cam_pos = [0.75, 0.075, 0.7]` (looked up by name, it is camera 2);
- after one reset with the task's frozen random vector, `_freeze_rand_vec = False`, so every reset draws
  a new object/goal placement;
- images from corner2 are flipped on both axes (`np.flip(img, (0, 1))`): Meta-World's corner2 camera
  renders upside-down;
- control at 80 fps (Meta-World's frame_skip 5 x 2.5 ms), episodes truncated after 400 steps (LeRobot's
  `episode_length`; Meta-World's own limit is 500);
- `terminated` = Meta-World's physics-based `info["success"]`, as in LeRobot.

Where we differ from LeRobot, on purpose:

- Seeding. Meta-World ignores `reset(seed=...)` and draws placements from the global `np.random`, so
  LeRobot's episodes are not reproducible per seed. Here the placement is drawn from the env's own
  `np_random` (Meta-World's `seeded_rand_vec` path), so `reset(seed=s)` fixes the scene exactly.
  The distribution of placements is the same uniform one; only the stream differs.
- Rendering. Images are rendered directly at the requested size with one `mujoco.Renderer` per env,
  with shadows, reflections, skybox and multisample anti-aliasing off. On a 2-core CPU (llvmpipe EGL)
  a 96x96 frame takes ~13 ms (~75 frames/s) instead of ~210 ms with MuJoCo's defaults. The look
  differs from LeRobot's (480x480, default effects): no shadows, and a black background where the
  skybox was grey. Success is unaffected (it is physics-based); models trained on LeRobot's rendered
  datasets would see a domain shift.

MuJoCo picks its GL backend when first imported: import embodia (which sets MUJOCO_GL=egl) before
anything that imports mujoco or metaworld, or set MUJOCO_GL yourself.
"""

from __future__ import annotations

import functools
import string
import warnings
from typing import Any

import gymnasium as gym
import metaworld
import metaworld.env_dict
import metaworld.policies
import mujoco
import numpy as np
from gymnasium import spaces

from embodia.robots.safety import SafetyLayer
from embodia.robots.spec import OBS_STATE, SAWYER, TASK, EmbodimentSpec, image_key
from embodia.sim.render import make_renderer

# --------------------------------------------------------------------------------------------------
# Task catalogue

SUFFIX = "-v3"
CAMERA = "corner2"
# LeRobot moves corner2 here (similar to https://arxiv.org/abs/2206.14244): a closer, centred view.
CORNER2_POS = (0.75, 0.075, 0.7)
SCENE_SEED = 42  # LeRobot's `metaworld.MT1(task, seed=42)`
DEFAULT_MAX_EPISODE_STEPS = 400  # LeRobot's `episode_length` for Meta-World
DEFAULT_IMAGE_SIZE = 96
FPS = SAWYER.fps  # 80: Meta-World steps 5 x 2.5 ms of physics per action

MT50: tuple[str, ...] = tuple(sorted(metaworld.env_dict.ALL_V3_ENVIRONMENTS))
# Read from the package so it cannot drift from Meta-World's definition.
MT10: tuple[str, ...] = tuple(metaworld.env_dict.MT10_V3)

# LeRobot's grouping (from the Meta-World paper's difficulty split of the expert-solvable tasks).
DIFFICULTY: dict[str, tuple[str, ...]] = {
    group: tuple(f"{name}{SUFFIX}" for name in names)
    for group, names in {
        "easy": (
            "button-press",
            "button-press-topdown",
            "button-press-topdown-wall",
            "button-press-wall",
            "coffee-button",
            "dial-turn",
            "door-close",
            "door-lock",
            "door-open",
            "door-unlock",
            "drawer-close",
            "drawer-open",
            "faucet-close",
            "faucet-open",
            "handle-press",
            "handle-press-side",
            "handle-pull",
            "handle-pull-side",
            "lever-pull",
            "plate-slide",
            "plate-slide-back",
            "plate-slide-back-side",
            "plate-slide-side",
            "reach",
            "reach-wall",
            "window-close",
            "window-open",
            "peg-unplug-side",
        ),
        "medium": (
            "basketball",
            "bin-picking",
            "box-close",
            "coffee-pull",
            "coffee-push",
            "hammer",
            "peg-insert-side",
            "push-wall",
            "soccer",
            "sweep",
            "sweep-into",
        ),
        "hard": ("assembly", "hand-insert", "pick-out-of-hole", "pick-place", "push", "push-back"),
        "very_hard": ("shelf-place", "disassemble", "stick-pull", "stick-push", "pick-place-wall"),
    }.items()
}

# One instruction per task, lower-case imperative; distinct wherever the tasks differ, so a
# language-conditioned policy can tell every pair apart (e.g. push vs push-back, plate-slide variants).
INSTRUCTIONS: dict[str, str] = {
    "assembly-v3": "pick up the nut and place it onto the peg",
    "basketball-v3": "dunk the basketball into the basket",
    "bin-picking-v3": "pick the puck from one bin and place it into the other bin",
    "box-close-v3": "grasp the lid and close the box with it",
    "button-press-topdown-v3": "press the button from the top",
    "button-press-topdown-wall-v3": "reach over the wall and press the button from the top",
    "button-press-v3": "press the button",
    "button-press-wall-v3": "reach around the wall and press the button",
    "coffee-button-v3": "push the button on the coffee machine",
    "coffee-pull-v3": "pull the mug away from the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "turn the dial",
    "disassemble-v3": "pick the nut up off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "lock the door by turning the lock",
    "door-open-v3": "open the door",
    "door-unlock-v3": "unlock the door by turning the lock",
    "drawer-close-v3": "close the drawer",
    "drawer-open-v3": "open the drawer",
    "faucet-close-v3": "close the faucet by turning it clockwise",
    "faucet-open-v3": "open the faucet by turning it counter-clockwise",
    "hammer-v3": "hammer the nail into the wall",
    "hand-insert-v3": "insert the gripper into the hole",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "peg-unplug-side-v3": "unplug the peg from the side",
    "pick-out-of-hole-v3": "pick the puck up out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "pick-place-wall-v3": "pick up the puck, lift it over the wall and place it at the goal",
    "plate-slide-back-side-v3": "slide the plate out of the cabinet from the side",
    "plate-slide-back-v3": "slide the plate out of the cabinet",
    "plate-slide-side-v3": "slide the plate into the cabinet from the side",
    "plate-slide-v3": "slide the plate into the cabinet",
    "push-back-v3": "push the puck back toward the robot to the goal",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck around the wall to the goal",
    "reach-v3": "reach the goal position",
    "reach-wall-v3": "reach over the wall to the goal position",
    "shelf-place-v3": "pick up the puck and place it on the shelf",
    "soccer-v3": "push the ball into the goal",
    "stick-pull-v3": "grasp the stick and pull the box with it",
    "stick-push-v3": "grasp the stick and push the box with it",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-close-v3": "slide the window closed",
    "window-open-v3": "slide the window open",
}

# Meta-World's scripted policies, one class per task (the package's own task -> class map).
EXPERT_POLICIES: dict[str, type] = dict(metaworld.policies.ENV_POLICY_MAP)

# The instruction space's alphabet: letters, digits, space and the punctuation instructions use.
INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " ,.;:'!?-()"
INSTRUCTION_MAX_LENGTH = 200

GROUPS: dict[str, tuple[str, ...]] = {**DIFFICULTY, "mt10": MT10, "mt50": MT50}

# Fail at import, not mid-benchmark, if the catalogue and the installed package ever disagree.
assert set(INSTRUCTIONS) == set(MT50) == set(EXPERT_POLICIES), "task catalogue out of sync with metaworld"
assert sorted(t for g in DIFFICULTY.values() for t in g) == list(MT50), "difficulty groups must cover MT50"


def normalize_task_name(name: str) -> str:
    """`drawer-open` or `drawer-open-v3` -> `drawer-open-v3`; unknown names raise ValueError."""
    key = name.strip()
    if not key.endswith(SUFFIX):
        key += SUFFIX
    if key not in INSTRUCTIONS:
        valid = ", ".join(t.removesuffix(SUFFIX) for t in MT50)
        raise ValueError(
            f"unknown Meta-World task {name!r}; valid tasks (the '{SUFFIX}' suffix is optional): {valid}"
        )
    return key


def resolve_tasks(spec: str) -> list[str]:
    """Expand a task spec into task names (with the -v3 suffix), in order and without duplicates.

    `spec` is a task name, a group (easy, medium, hard, very_hard, mt10, mt50) or a comma-separated
    mix of both, e.g. "easy,pick-place".
    """
    out: list[str] = []
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"empty task spec {spec!r}; give a task name or one of the groups {sorted(GROUPS)}")
    for part in parts:
        group = GROUPS.get(part.lower())
        if group is None:
            try:
                group = (normalize_task_name(part),)
            except ValueError as exc:
                raise ValueError(f"{exc}; or a group: {', '.join(GROUPS)}") from None
        out.extend(t for t in group if t not in out)
    return out


def difficulty_of(task: str) -> str:
    name = normalize_task_name(task)
    return next(group for group, tasks in DIFFICULTY.items() if name in tasks)


@functools.cache
def _scene_task(name: str) -> metaworld.Task:
    """LeRobot's `MT1(name, seed=42).train_tasks[0]`, cached: building MT1 resets the env 50 times
    (~1.3 s), and the result is fully determined by (name, seed), so every env of a task can share it."""
    return metaworld.MT1(name, seed=SCENE_SEED).train_tasks[0]


# --------------------------------------------------------------------------------------------------
# The environment


class MetaWorldEnv(gym.Env):
    """One Meta-World v3 task with embodia's observation keys, safety layer and a scripted expert.

    Args:
        task: task name, with or without the `-v3` suffix.
        image_size: side of the square corner2 image.
        render: False drops the image from the observation (and its space): fast expert rollouts.
        max_episode_steps: truncation limit (LeRobot: 400).
        antialias: multisample anti-aliasing when rendering (off by default: ~2x slower on CPU).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(
        self,
        task: str,
        *,
        image_size: int = DEFAULT_IMAGE_SIZE,
        render: bool = True,
        max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS,
        antialias: bool = False,
        render_mode: str | None = "rgb_array",
    ) -> None:
        super().__init__()
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.task_name: str = normalize_task_name(task)
        self.instruction: str = INSTRUCTIONS[self.task_name]
        self.embodiment: EmbodimentSpec = SAWYER
        self.image_size = int(image_size)
        self.render_images = bool(render)
        self.antialias = bool(antialias)
        self.render_mode = render_mode
        self.image_key = image_key(CAMERA)

        # Build the scene exactly as LeRobot does (see the module docstring).
        env_cls = metaworld.env_dict.ALL_V3_ENVIRONMENTS[self.task_name]
        self._mw = env_cls(render_mode="rgb_array", camera_name=CAMERA)
        self._mw.set_task(_scene_task(self.task_name))
        self._cam_id = mujoco.mj_name2id(self._mw.model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA)
        if self._cam_id < 0:
            raise RuntimeError(f"{self.task_name}: the Meta-World model has no camera {CAMERA!r}")
        self._mw.model.cam_pos[self._cam_id] = CORNER2_POS
        self._mw.reset()
        self._mw._freeze_rand_vec = False
        # Draw placements from our np_random (assigned at each reset) instead of the global np.random,
        # so that reset(seed=...) fixes the scene.
        self._mw.seeded_rand_vec = True

        if not 0 < max_episode_steps <= self._mw.max_path_length:
            # Meta-World itself refuses to step past its own max_path_length (500).
            raise ValueError(
                f"max_episode_steps must be in [1, {self._mw.max_path_length}], got {max_episode_steps}"
            )
        self.max_episode_steps = int(max_episode_steps)

        self._safety = SafetyLayer(SAWYER)
        self._expert = EXPERT_POLICIES[self.task_name]()
        self._renderer: mujoco.Renderer | None = None
        self._last_obs: np.ndarray | None = None  # privileged 39-dim obs; only the expert reads it
        self._elapsed_steps = 0

        low, high = SAWYER.action_bounds()
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        obs_spaces: dict[str, spaces.Space] = {}
        if self.render_images:
            obs_spaces[self.image_key] = spaces.Box(
                0, 255, (self.image_size, self.image_size, 3), dtype=np.uint8
            )
        obs_spaces[OBS_STATE] = spaces.Box(
            np.asarray(SAWYER.state_low, np.float32),
            np.asarray(SAWYER.state_high, np.float32),
            dtype=np.float32,
        )
        obs_spaces[TASK] = spaces.Text(max_length=INSTRUCTION_MAX_LENGTH, charset=INSTRUCTION_CHARSET)
        self.observation_space = spaces.Dict(obs_spaces)

    # ---------------------------------------------------------------------------------------------
    # gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        # Meta-World ignores reset's seed; it reads `self.np_random` when seeded_rand_vec is set. Sharing
        # the generator object means an unseeded reset continues the seeded stream.
        self._mw.np_random = self.np_random
        raw, _ = self._mw.reset()
        self._last_obs = np.asarray(raw, np.float64)
        self._elapsed_steps = 0
        self._safety.reset()
        return self._observation(), {"success": False, "is_success": False}

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._last_obs is None:
            raise RuntimeError("call reset() before step()")
        try:
            safe = self._safety(action)
        except ValueError as exc:
            # Name the contract in every rejection (the NaN message alone does not state the shape).
            raise ValueError(
                f"{self.task_name}: action must be a finite float vector of shape ({SAWYER.action_dim},) "
                f"[{', '.join(SAWYER.action_names)}] in [-1, 1]; {exc}"
            ) from None
        raw, reward, _, _, mw_info = self._mw.step(safe.astype(np.float32))
        self._last_obs = np.asarray(raw, np.float64)
        self._elapsed_steps += 1

        success = bool(mw_info.get("success", 0.0))
        # Meta-World's info holds reward terms only (no object poses), so passing it on leaks nothing.
        info = {k: float(v) for k, v in mw_info.items() if k != "success"}
        info["success"] = success
        info["is_success"] = success  # LeRobot's key
        info["clamped"] = self._safety.last_report.clamped_to_bounds
        terminated = success
        truncated = self._elapsed_steps >= self.max_episode_steps
        return self._observation(), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The current corner2 frame (also available with render=False: the renderer is made on demand)."""
        if self.render_mode is None:
            return None
        return self._render_frame()

    def close(self) -> None:
        self._close_renderer()
        if getattr(self, "_mw", None) is not None:
            self._mw.close()
            self._mw = None
        super().close()

    # ---------------------------------------------------------------------------------------------
    # embodia extras

    @property
    def spec_embodiment(self) -> EmbodimentSpec:
        """Alias of `embodiment` (gymnasium already uses `spec` for the registration EnvSpec)."""
        return self.embodiment

    @property
    def elapsed_steps(self) -> int:
        return self._elapsed_steps

    def expert_action(self) -> np.ndarray:
        """Meta-World's scripted policy applied to the last privileged observation, clipped to [-1, 1]."""
        if self._last_obs is None:
            raise RuntimeError("call reset() before expert_action()")
        with warnings.catch_warnings():
            # The policies warn whenever their P-controller saturates, i.e. on most steps; the env clips.
            warnings.simplefilter("ignore", UserWarning)
            action = self._expert.get_action(self._last_obs)
        return np.clip(np.asarray(action, np.float32), -1.0, 1.0)

    # ---------------------------------------------------------------------------------------------
    # internals

    def _observation(self) -> dict[str, Any]:
        assert self._last_obs is not None
        obs: dict[str, Any] = {}
        if self.render_images:
            obs[self.image_key] = self._render_frame()
        obs[OBS_STATE] = self._last_obs[:4].astype(np.float32)
        obs[TASK] = self.instruction
        return obs

    def _render_frame(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = self._make_renderer()
        self._renderer.update_scene(self._mw.data, camera=self._cam_id)
        # corner2 renders upside-down (both axes); copy so the observation owns contiguous memory.
        return np.ascontiguousarray(np.flip(self._renderer.render(), (0, 1)))

    def _make_renderer(self) -> mujoco.Renderer:
        model = self._mw.model
        # The offscreen buffer must hold the image; MSAA (offsamples) is read when the context is made.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.image_size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.image_size)
        if not self.antialias:
            model.vis.quality.offsamples = 0
        # Without shadows, reflections and skybox; closed at exit before EGL goes even if the env never
        # is (see embodia.sim.render).
        return make_renderer(model, self.image_size, self.image_size)

    def _close_renderer(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None

    def __repr__(self) -> str:
        return f"MetaWorldEnv({self.task_name!r}, image_size={self.image_size}, render={self.render_images})"


def make_env(task: str, **kwargs: Any) -> MetaWorldEnv:
    """Convenience factory (e.g. for `gymnasium.vector.SyncVectorEnv([lambda: make_env(t)] * n)`)."""
    return MetaWorldEnv(task, **kwargs)
