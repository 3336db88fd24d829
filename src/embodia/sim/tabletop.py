"""The SO-101 tabletop world: a Gymnasium environment with language tasks.

Observation (embodia's naming convention, shared with datasets and the policy server):
    observation.images.front   uint8 (H, W, 3)   fixed third-person camera facing the robot
    observation.images.wrist   uint8 (H, W, 3)   camera on the gripper, looking along the fingers
    observation.state          float32 (6,)      joint positions, radians (5 arm joints + gripper)
    task                       str               the instruction
Action (`action_mode="joint_abs"`, default): absolute joint-position targets, radians (6,).
Action (`action_mode="ee_delta"`): tool-point delta (dx, dy, dz) in metres (at most 2 cm per tick) in
the base frame plus the absolute gripper target (radians); the IK turns it into joint targets.

Every action passes the safety layer (shape/NaN check, joint limits, rate limit) before it reaches the
actuators, exactly as it would on the real arm.

Seeding: `reset(seed=s)` fixes the scene (block and bowl positions, which distractor is absent, the
arm's start). The task is drawn from an independent stream of the same seed, or given in
`options={"task": ...}`; giving a different task with the same seed keeps the scene (the basis of the
counterfactual tests: same seed, other colour -> the expert goes for the other block).
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from embodia.robots.so101 import HOME_QPOS, PAN_AXIS_XY
from embodia.robots.spec import OBS_STATE, SO101, TASK, image_key
from embodia.sim.objects import PlacedObjects, check_unique
from embodia.sim.progress import TaskProgress
from embodia.sim.scene import (
    BLOCK_HALF,
    BOWL_RADIUS,
    BOWL_WALL_HEIGHT,
    CONTROL_FPS,
    PARKED,
    SUBSTEPS,
    tabletop_mjcf,
)
from embodia.sim.sim_robot import SimSO101
from embodia.sim.tasks import (
    COLORS,
    FAMILIES,
    SceneState,
    SuccessCheck,
    TaskInstance,
    parse_instruction,
    sample_task,
)

TASK_CHARSET = string.ascii_letters + string.digits + " .,'-!?"
CAMERAS = ("front", "wrist")
# Blocks and the bowl are placed in a ring sector around the shoulder-pan axis where the arm can grasp
# from above at a steep pitch (see the reachability map in docs/architecture.md).
PLACE_R = (0.13, 0.225)
PLACE_ANGLE = np.radians(55)
MIN_BLOCK_GAP = 0.055
MIN_BOWL_GAP = BOWL_RADIUS + 0.05


class TabletopEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FPS}

    def __init__(
        self,
        task: str | TaskInstance | None = None,
        family: str | None = None,
        split: str = "train",
        image_size: int | tuple[int, int] = 96,
        cameras: tuple[str, ...] = CAMERAS,
        render: bool = True,
        action_mode: str = "joint_abs",
        max_episode_steps: int | None = None,
        render_mode: str | None = "rgb_array",
    ):
        if family is not None and family not in FAMILIES:
            raise ValueError(f"unknown task family {family!r}; valid task families: {sorted(FAMILIES)}")
        if split not in ("train", "heldout", "all"):
            raise ValueError(f"unknown template split {split!r}; valid: ['all', 'heldout', 'train']")
        for cam in cameras:
            if cam not in CAMERAS:
                raise ValueError(f"unknown camera {cam!r}; valid cameras: {list(CAMERAS)}")
        if action_mode not in ("joint_abs", "ee_delta"):
            raise ValueError(f"unknown action_mode {action_mode!r}; valid: ['ee_delta', 'joint_abs']")
        self._fixed_task = self._as_task(task) if task is not None else None
        self.family = family
        self.split = split
        self.height, self.width = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.cameras = tuple(cameras) if render else ()
        self.action_mode = action_mode
        self._max_steps_override = max_episode_steps
        self.render_mode = render_mode

        # Every registered family's objects are in the model (parked when their family is not the task's).
        self.objects = check_unique([o for f in FAMILIES.values() for o in f.objects])
        xml = tabletop_mjcf(self.height, self.width, self.objects)
        try:
            self.model = mujoco.MjModel.from_xml_string(xml)
        except ValueError as exc:
            names = ", ".join(o.name for o in self.objects)
            raise ValueError(
                f"the tabletop with the scene objects {names or '(none)'} does not compile: {exc}"
            ) from None
        self.data = mujoco.MjData(self.model)
        self._placed = PlacedObjects(self.model, self.objects)
        self.robot = SimSO101(
            self.model,
            self.data,
            cameras=self.cameras,
            height=self.height,
            width=self.width,
            substeps=SUBSTEPS,
            action_mode=action_mode,
        )
        self._cache_ids()

        obs_spaces: dict[str, spaces.Space] = {
            image_key(c): spaces.Box(0, 255, (self.height, self.width, 3), np.uint8) for c in self.cameras
        }
        # State bounds get a margin: joints can sit slightly past their limits under contact forces.
        obs_spaces[OBS_STATE] = spaces.Box(
            np.asarray(SO101.state_low, np.float32) - 0.2,
            np.asarray(SO101.state_high, np.float32) + 0.2,
            dtype=np.float32,
        )
        obs_spaces[TASK] = spaces.Text(max_length=160, min_length=1, charset=TASK_CHARSET)
        self.observation_space = spaces.Dict(obs_spaces)
        self.embodiment = self.robot.spec
        low, high = self.embodiment.action_bounds()
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

        self.task: TaskInstance | None = None
        self.present: tuple[str, ...] = ()
        self.block_start: dict[str, np.ndarray] = {}
        self._check: SuccessCheck | None = None
        self._progress: TaskProgress | None = None
        self._steps = 0
        self._seed: int | None = None
        self._expert = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task", "family"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: ['family', 'task']")
        # Two independent streams from one seed: the scene never depends on which task was asked for.
        base = int(self.np_random.integers(2**31)) if seed is None else int(seed)
        self._seed = base
        scene_rng = np.random.default_rng([base, 0])
        task_rng = np.random.default_rng([base, 1])

        if options.get("task") is not None:
            task = self._as_task(options["task"])
        elif self._fixed_task is not None:
            task = self._fixed_task
        else:
            family = options.get("family") or self.family
            if family is None:
                family = str(task_rng.choice(sorted(FAMILIES)))
            task = sample_task(task_rng, family, self.split)
        self.task = task

        mujoco.mj_resetData(self.model, self.data)
        self._layout_scene(scene_rng, task)
        self.robot.place(HOME_QPOS + scene_rng.normal(0, 0.03, 6) * np.array([1, 1, 1, 1, 1, 0]))
        mujoco.mj_forward(self.model, self.data)
        # Let the blocks settle so that "where it rested" is a physical rest pose, not the spawn pose.
        for _ in range(20):
            mujoco.mj_step(self.model, self.data)
        self.block_start = {c: self.data.xpos[self._block_body[c]].copy() for c in COLORS}
        self.body_start = self._placed.positions(self.data)
        self.joint_start = self._placed.joint_values(self.data)
        self.robot.start_episode()
        self._check = SuccessCheck(task)
        self._progress = TaskProgress(task, self.present)
        self._steps = 0
        self._expert = None
        return self._observation(), self._info(False)

    def step(self, action):
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        self.robot.send_action(action)
        self.robot.advance()
        self._steps += 1
        scene = self.scene_state()
        success = self._check.update(scene)
        self._progress.update(scene)
        truncated = self._steps >= self.max_episode_steps and not success
        info = self._info(success)
        if success or truncated:  # why it failed (or the milestones of a success): embodia eval counts them
            info["progress"] = self.progress(success)
        return self._observation(), float(success), success, truncated, info

    def begin_task(self, task: str | TaskInstance) -> TaskInstance:
        """Switch to a new instruction in the current scene, without a reset (an agent chains
        instructions: "pick up the red block", then "put it in the bowl"). From here `step` judges the
        new task in `info["success"]`, measured from where the blocks are now ("lift" means above where
        the block lies now), and the step counter restarts."""
        task = self._as_task(task)
        if self.task is None:
            raise RuntimeError("call reset() before begin_task()")
        self.task = task
        self.block_start = {c: self.block_position(c) for c in COLORS}
        self._check = SuccessCheck(task)
        self._progress = TaskProgress(task, self.present)
        self._steps = 0
        self._expert = None  # its plan was for the previous task
        return task

    def progress(self, success: bool) -> dict[str, Any]:
        """The current task's milestones so far and, if `success` is False, where it stopped
        (embodia.sim.progress); the same dict `step` puts in `info["progress"]` when an episode ends."""
        if self._progress is None:
            raise RuntimeError("call reset() before progress()")
        return self._progress.summary(success)

    def render(self):
        return self.robot.render("front")

    def close(self):
        self.robot.disconnect()

    # ------------------------------------------------------------------ helpers used by experts/eval
    @property
    def max_episode_steps(self) -> int:
        if self._max_steps_override is not None:
            return self._max_steps_override
        return (
            FAMILIES[self.task.family].max_steps if self.task else max(f.max_steps for f in FAMILIES.values())
        )

    @property
    def instruction(self) -> str:
        return self.task.instruction if self.task else ""

    def joint_positions(self) -> np.ndarray:
        return self.robot.joint_positions()

    def tool_position(self) -> np.ndarray:
        return self.robot.tool_position()

    def block_position(self, color: str) -> np.ndarray:
        return self.data.xpos[self._block_body[color]].copy()

    def block_yaw(self, color: str) -> float:
        m = self.data.xmat[self._block_body[color]].reshape(3, 3)
        return float(np.arctan2(m[1, 0], m[0, 0]))

    def bowl_position(self) -> np.ndarray:
        return self.data.mocap_pos[0].copy()

    def object_position(self, name: str) -> np.ndarray:
        """A scene object's origin (by the object's name) or any named body or site inside it."""
        if name in self._placed.bodies:
            return self.data.xpos[self._placed.bodies[name]].copy()
        try:
            return self.data.site(name).xpos.copy()
        except KeyError:
            raise ValueError(
                f"no scene object, body or site {name!r}; bodies: {sorted(self._placed.bodies)}"
            ) from None

    def object_rotation(self, name: str) -> np.ndarray:
        """A scene object's (or its body's) orientation, a 3x3 rotation matrix in the base frame."""
        if name not in self._placed.bodies:
            raise ValueError(f"no scene object or body {name!r}; bodies: {sorted(self._placed.bodies)}")
        return self.data.xmat[self._placed.bodies[name]].reshape(3, 3).copy()

    def joint_value(self, name: str) -> float:
        """A scene object's hinge (radians) or slide (metres) joint."""
        if name not in self._placed.joints:
            raise ValueError(f"no scene-object joint {name!r}; joints: {sorted(self._placed.joints)}")
        return float(self.data.qpos[self._placed.joints[name]])

    def expert_action(self) -> np.ndarray:
        """The scripted expert's next joint-position target (privileged: reads the simulator state)."""
        from embodia.sim.experts import TabletopExpert

        if self._expert is None:
            self._expert = TabletopExpert(self, seed=self._seed)
        return self._expert.act()

    def scene_state(self) -> SceneState:
        d = self.data
        contact = dict.fromkeys(COLORS, False)
        for i in range(d.ncon):
            g1, g2 = d.contact[i].geom1, d.contact[i].geom2
            for a, b in ((g1, g2), (g2, g1)):
                color = self._geom_block.get(a)
                if color is not None and b in self._gripper_geoms:
                    contact[color] = True
        vel = {}
        for c in COLORS:
            adr = self._block_dof[c]
            vel[c] = d.qvel[adr : adr + 3].copy()
        return SceneState(
            block_pos={c: self.block_position(c) for c in COLORS},
            block_vel=vel,
            block_start=self.block_start,
            gripper_contact=contact,
            tool_pos=self.tool_position(),
            bowl_pos=self.bowl_position(),
            table_z=0.0,
            block_half=BLOCK_HALF,
            bowl_inner_radius=BOWL_RADIUS - BLOCK_HALF * 0.5,
            bowl_rim_z=BOWL_WALL_HEIGHT,
            gripper_joint=float(self.robot.joint_positions()[SO101.gripper.state_index]),
            block_yaw={c: self.block_yaw(c) for c in COLORS},
            jaw_yaw=self.robot.jaw_yaw(),
            bodies=self._placed.positions(d) if self.objects else {},
            body_start=self.body_start,
            joints=self._placed.joint_values(d) if self.objects else {},
            joint_start=self.joint_start,
        )

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _as_task(task) -> TaskInstance:
        if isinstance(task, TaskInstance):
            return task
        if isinstance(task, str):
            return parse_instruction(task)
        raise ValueError(f"task must be an instruction string or a TaskInstance, got {type(task).__name__}")

    def _cache_ids(self) -> None:
        m = self.model
        self._block_body = {c: m.body(f"block_{c}").id for c in COLORS}
        self._block_qadr = {c: m.jnt_qposadr[m.joint(f"block_{c}").id] for c in COLORS}
        self._block_dof = {c: m.jnt_dofadr[m.joint(f"block_{c}").id] for c in COLORS}
        self._geom_block = {m.geom(f"block_{c}").id: c for c in COLORS}
        gripper_bodies = {m.body("gripper").id, m.body("moving_jaw").id}
        self._gripper_geoms = {g for g in range(m.ngeom) if m.geom_bodyid[g] in gripper_bodies}

    def _layout_scene(self, rng: np.random.Generator, task: TaskInstance) -> None:
        """The task family's objects (if any: the others are parked), then the bowl and four block
        positions by rejection sampling clear of them, then drop at most one distractor."""
        self._placed.park_all(self.data)
        mine = [o.name for o in FAMILIES[task.family].objects]
        missing = [n for n in mine if n not in self._placed.objects]
        if missing:
            raise ValueError(f"task family {task.family!r} needs the scene objects {missing}, which this env was "
                             "built without: load its task file before building the env")  # fmt: skip
        obstacles = self._placed.place(self.data, rng, mine) if mine else []
        points = self._sample_points(rng, obstacles)
        yaws = rng.uniform(-np.pi / 4, np.pi / 4, len(COLORS))
        order = rng.permutation(len(COLORS))
        drop_one = rng.random() < 0.5
        colors = list(COLORS)
        absent = None
        if drop_one:
            absent = next(colors[i] for i in order if colors[i] not in task.colors_needed)
        self.data.mocap_pos[0] = [points[0][0], points[0][1], 0.0]
        present = []
        for i, c in enumerate(colors):
            adr = self._block_qadr[c]
            if c == absent:
                pos = PARKED + np.array([0.05 * i, 0, 0])
            else:
                pos = np.array([points[1 + i][0], points[1 + i][1], BLOCK_HALF + 0.0005])
                present.append(c)
            self.data.qpos[adr : adr + 3] = pos
            self.data.qpos[adr + 3 : adr + 7] = [np.cos(yaws[i] / 2), 0, 0, np.sin(yaws[i] / 2)]
        self.present = tuple(present)

    @staticmethod
    def _sample_points(rng: np.random.Generator, obstacles=()) -> list[np.ndarray]:
        """Rejection-sample the bowl then the four blocks in the reachable sector, clear of `obstacles`
        ((xy, radius) of scene objects); if a layout gets stuck, start it over rather than accept
        overlapping objects."""
        for _ in range(1000):
            points: list[np.ndarray] = []
            for k in range(1 + len(COLORS)):
                for _ in range(100):
                    r = rng.uniform(*PLACE_R)
                    a = rng.uniform(-PLACE_ANGLE, PLACE_ANGLE)
                    p = PAN_AXIS_XY + r * np.array([np.cos(a), np.sin(a)])
                    gaps = [MIN_BOWL_GAP if (i == 0 or k == 0) else MIN_BLOCK_GAP for i in range(len(points))]
                    own = BOWL_RADIUS + 0.01 if k == 0 else BLOCK_HALF * 1.5
                    if all(np.linalg.norm(p - q) >= g for q, g in zip(points, gaps, strict=True)) and all(
                        np.linalg.norm(p - xy) >= r + own for xy, r in obstacles
                    ):
                        points.append(p)
                        break
                else:
                    break
            if len(points) == 1 + len(COLORS):
                return points
        raise RuntimeError("could not lay out the tabletop scene; the workspace constants are inconsistent")

    def _observation(self) -> dict[str, Any]:
        obs = self.robot.get_observation()
        obs[TASK] = self.instruction
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        return {
            "success": bool(success),
            "task": self.instruction,
            "family": self.task.family if self.task else None,
            "present_blocks": self.present,
            "safety": vars(self.robot.safety.last_report).copy(),
        }
