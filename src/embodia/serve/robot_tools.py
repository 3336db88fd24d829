"""The robot as a handful of agent-sized tools: observe, do, move_to, open/close the gripper, reset,
list_skills. Plain Python (no MCP here): `embodia.serve.mcp_server` exposes them over MCP.

    robot = RobotTools.load(checkpoint=None)          # simulated SO-101 tabletop + the VLA
    robot.reset(task="put the red block in the bowl", seed=0)
    out = robot.do("put the red block in the bowl")     # closed-loop VLA from the current state
    out.data["success"], out.data["summary"]

Every tool returns a `ToolOutput` (a JSON-ready dict plus optional PNG images) or raises `RobotError`
with a message meant for the agent that called it: what was wrong and what to do instead. The world
is one `TabletopEnv`; calls must come from one thread at a time (the MCP server runs them all on one
worker thread, which also keeps MuJoCo's GL context on a single thread).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from embodia.policy.executor import ExecutionConfig, executor_for, step_policy
from embodia.robots.spec import TASK
from embodia.serve.tool_args import (
    GRIP,
    RobotError,
    ToolOutput,
    arm_state,
    catalogue_families,
    catalogue_hint,
    check_pitch,
    check_seed,
    check_xyz,
    drive,
    grasp_kinematics,
    ik_goal,
    instruction_text,
    moved,
    png,
    rounded,
    step_limit,
)
from embodia.sim.tasks import COLORS, FAMILIES, parse_instruction


class RobotTools:
    """One simulated SO-101 tabletop, optionally with a policy (`Policy` or `RemotePolicy`) for `do`."""

    def __init__(
        self,
        env,
        policy=None,
        policy_error: str | None = None,
        policy_source: str = "",
        encoder=None,
        out_dir: str | Path | None = None,
        video: bool = True,
        seed: int = 0,
        task: str | None = None,
        execution: ExecutionConfig | None = None,
    ):
        self.env = env
        self.execution = execution
        self.policy = policy
        self.policy_error = policy_error
        self.policy_source = policy_source
        self._encoder = encoder
        self._out_dir = Path(out_dir) if out_dir is not None else None
        self._run_dir: Path | None = None
        self.video = video
        self._kin = None
        self._rng = np.random.default_rng()
        self._do_count = 0
        self._ticks = 0
        self._trained_on: dict[str, Any] | None = None
        self.instruction = ""
        self.reset(task=task, seed=seed)

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(
        cls,
        checkpoint: str | Path | None = None,
        policy_url: str | None = None,
        api_key: str | None = None,
        image_size: int | None = None,
        **kwargs,
    ) -> RobotTools:
        """The tabletop with a local checkpoint (a folder or a shipped name such as 'base'; None: the
        shipped base) or a served policy (URL).

        A missing shipped base is not fatal: the world tools work and `do` explains what is missing. An
        explicit checkpoint or URL that cannot be loaded raises, so a typo fails at startup."""
        from embodia.policy.checkpoint import CheckpointError
        from embodia.sim.tabletop import TabletopEnv

        policy, error, size, source = None, None, image_size, ""
        if policy_url is not None:
            if checkpoint is not None:
                raise ValueError("give either a checkpoint folder or a policy server URL, not both")
            from embodia.serve.client import RemotePolicy

            policy = RemotePolicy(policy_url, api_key=api_key)
            size = size or policy.image_size
            source = f"policy server {policy_url}"
        else:
            from embodia.policy.loading import load_policy

            try:
                policy = load_policy(checkpoint)
                source = f"checkpoint {policy.path}"
            except CheckpointError as exc:
                if checkpoint is not None:
                    raise
                error = (
                    f"no policy is loaded, so do() cannot act ({exc}). Start "
                    "`embodia mcp --checkpoint PATH` with a folder from `embodia train`, or "
                    "`embodia mcp --policy ws://HOST:PORT` for a running `embodia serve`. observe, move_to, "
                    "open_gripper, close_gripper, reset and list_skills work without a policy."
                )
            if policy is not None and size is None:
                shapes = list(policy.info.image_shapes.values())
                size = int(shapes[0][0]) if shapes else int(policy.cfg.image_size)
        env = TabletopEnv(image_size=size or 96, cameras=("front", "wrist"))
        return cls(env, policy, error, source, **kwargs)

    def close(self) -> None:
        self.env.close()
        if hasattr(self.policy, "close"):
            self.policy.close()

    @property
    def encoder(self):
        """The frozen sentence encoder that maps free text to catalogue tasks (the policy's, if local)."""
        if self._encoder is None:
            if self.policy is not None and not hasattr(self.policy, "client"):
                self._encoder = self.policy.encoder  # a local policy's own (loaded once, shared)
            else:
                from embodia.policy.language import InstructionEncoder

                self._encoder = InstructionEncoder()
        return self._encoder

    # ------------------------------------------------------------------ tools
    def observe(self, include_wrist: bool = False) -> ToolOutput:
        """Front camera (and optionally the wrist camera) as PNG, plus the arm's state."""
        robot = self.env.robot
        images = [png(robot.render("front"))]
        if include_wrist:
            images.append(png(robot.render("wrist")))
        data = self._state()
        data["images"] = ["front"] + (["wrist"] if include_wrist else [])
        data["camera_note"] = (
            "the front camera faces the robot, so the robot's left (+y) appears on the image's right"
        )
        return ToolOutput(data, images)

    def do(self, instruction: str, max_steps: int | None = None) -> ToolOutput:
        """Run the policy closed-loop on `instruction` from the current state (no reset)."""
        text = instruction_text(instruction)
        if self.policy is None:
            raise RobotError(self.policy_error or "no policy is loaded, so do() cannot act")
        reading = self._read(text)
        if not reading.in_scope:  # nothing the catalogue offers: say so, and do not act
            raise RobotError(reading.refusal() + " Nothing was done.")
        task, score = reading.task, reading.score
        missing = [c for c in task.colors_needed if c not in self.env.present]
        if missing:
            raise RobotError(
                f"{' and '.join(missing)} block{'s are' if len(missing) > 1 else ' is'} not on the table "
                f"in this scene (present: {', '.join(self.env.present)}). Call reset(task={text!r}) for "
                "a scene that has it."
            )
        words = text if reading.exact else reading.grounded  # what the policy reads
        limit = step_limit(max_steps, FAMILIES[task.family].max_steps)

        env, policy = self.env, self.policy
        env.begin_task(task)  # the environment judges success (info["success"]), from the scene as it is now
        obs = self._obs(words)
        frames = [self._frame(obs)] if self.video else []
        executor = executor_for(policy, self.execution)
        executor.reset(self._ticks)  # the tick count seeds this call's noise (reproducible sessions)
        steps = 0
        success = False
        policy.reset()
        while steps < limit:
            try:
                action = step_policy(policy, executor, obs)
            except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
                # NaN/inf actions are refused by the executor before they reach the arm.
                raise RobotError(
                    f"the policy failed after {steps} steps: {exc}; the chunk was not executed and the arm "
                    "holds its last target. Try again, or reset()."
                ) from None
            info = env.step(action)[-1]
            self._ticks += 1
            steps += 1
            obs = self._obs(words)
            if self.video:
                frames.append(self._frame(obs))
            if info["success"]:
                success = True
                break
        self.instruction = text
        video = self._write_video(frames, task.family) if self.video else None

        # Where a failed attempt stopped ("missed grasp", "wrong block", ...: embodia.sim.progress), so an
        # agent can tell a miss it may retry from an instruction the policy did not understand.
        stopped = env.progress(success)["failure"]
        how = "" if reading.exact else f", judged as {task.instruction!r} (similarity {score:.2f})"
        outcome = (
            f"succeeded after {steps} steps"
            if success
            else f"not achieved within {steps} steps (stopped at: {stopped})"
        ) + how
        chunks = executor.chunks
        summary = f"{text!r}: {outcome}; {chunks} chunks" + (f"; video: {video}" if video else "")
        data = {
            "instruction": text,
            "success": success,
            "steps": steps,
            "chunks": chunks,
            "judged_as": task.instruction,
            "policy_read": words,
            "failure": stopped,
            "similarity": round(score, 3),
            "video": str(video) if video else None,
            "tool_xyz_m": rounded(env.tool_position()),
            "summary": summary,
        }
        return ToolOutput(data)

    def move_to(self, x: float, y: float, z: float, pitch_deg: float | None = None) -> ToolOutput:
        """Move the grasp point (between the jaws) to (x, y, z) metres in the robot base frame."""
        target = check_xyz(x, y, z)
        goal = ik_goal(target, check_pitch(pitch_deg), self.env.joint_positions(), self._command())
        ticks = self._drive(goal)
        return moved(target, self.env.tool_position(), ticks)

    def open_gripper(self) -> ToolOutput:
        return self._gripper(GRIP.action_open, "opened")

    def close_gripper(self) -> ToolOutput:
        return self._gripper(GRIP.action_closed, "closed")

    def reset(self, task: str | None = None, seed: int | None = None) -> ToolOutput:
        """A new scene: `task` is an instruction (any phrasing) or a family name; None draws one."""
        seed = check_seed(seed)
        seed = int(self._rng.integers(2**31)) if seed is None else int(seed)
        options: dict[str, Any] = {}
        text = None
        if task is not None and str(task).strip():
            text = instruction_text(task)
            if text.lower() in FAMILIES:
                options["family"] = text.lower()
                text = None
            else:
                reading = self._read(text)
                if not reading.in_scope:
                    raise RobotError(reading.refusal())
                options["task"] = reading.task
        self.env.reset(seed=seed, options=options or None)
        self._ticks = 0
        self.instruction = text or self.env.instruction
        scene = self.env.task.instruction
        data = {
            "instruction": self.instruction,
            "scene_task": scene,
            "family": self.env.task.family,
            "seed": seed,
            "present_blocks": list(self.env.present),
            "summary": f"new scene (seed {seed}) for {self.instruction!r}"
            + ("" if scene == self.instruction else f" (laid out as {scene!r})")
            + f"; blocks on the table: {', '.join(self.env.present)}",
        }
        return ToolOutput(data)

    def list_skills(self) -> ToolOutput:
        families, colors = catalogue_families(), list(COLORS)
        data = {
            "families": families,
            "colors": colors,
            "directions": {
                "front": "away from the base (+x)",
                "back": "towards the base (-x)",
                "left": "the robot's left (+y)",
                "right": "the robot's right (-y)",
            },
            "policy": self._policy_summary(),
            "usage": "do() takes one instruction about one block per call; split compound requests "
            "(e.g. two blocks) into several do() calls.",
        }
        return ToolOutput(data)

    # ------------------------------------------------------------------ internals
    @property
    def kinematics(self):
        return grasp_kinematics()  # the point tool_position() reports and a grasped block's centre ends up at

    def _state(self) -> dict[str, Any]:
        env = self.env
        arm = arm_state(env.joint_positions())
        touching = [c for c, hit in env.scene_state().gripper_contact.items() if hit and c in env.present]
        objects = {f"{c}_block": rounded(env.block_position(c)) for c in env.present}
        objects["bowl"] = rounded(env.bowl_position())
        return {
            "instruction": self.instruction,
            "scene_task": env.task.instruction if env.task else None,
            "joints_rad": arm["joints_rad"],
            "gripper": arm["gripper"] | {"touching": touching},
            "tool_xyz_m": rounded(env.tool_position()),
            # Simulator ground truth (a real arm would have to estimate these from the cameras).
            "objects_xyz_m": objects,
            "ticks_since_reset": self._ticks,
            "frame": "metres, robot base frame: x forward, y to the robot's left, z up; table top at z = 0",
        }

    def _gripper(self, value: float, verb: str) -> ToolOutput:
        goal = self._command()
        goal[GRIP.action_index] = value
        ticks = self._drive(goal, settle_joint=GRIP.state_index)
        state = self._state()["gripper"]
        holding = f", touching the {' and '.join(state['touching'])} block" if state["touching"] else ""
        data = {
            "gripper": state,
            "ticks": ticks,
            "summary": f"gripper {verb}: opening {state['opening']:.2f} (0 closed, 1 open){holding}",
        }
        return ToolOutput(data)

    def _command(self) -> np.ndarray:
        """The joint targets the actuators hold now (the last command after the safety layer)."""
        return np.asarray(self.env.data.ctrl[:6], np.float64).copy()

    def _drive(self, goal: np.ndarray, settle_joint: int | None = None) -> int:
        """Step the env from the current command to `goal`, then let the servos converge (tool_args.drive)."""
        ticks = drive(self._command(), goal, self.env.step, self.env.joint_positions, settle_joint)
        self._ticks += ticks
        return ticks

    def _obs(self, text: str) -> dict[str, Any]:
        obs = self.env.robot.get_observation()
        obs[TASK] = text
        return obs

    @staticmethod
    def _frame(obs: dict[str, Any]) -> np.ndarray:
        views = [v for k, v in obs.items() if k.startswith("observation.images.")]
        return np.concatenate(views, axis=1)

    def _write_video(self, frames: list[np.ndarray], family: str) -> Path | None:
        from embodia.report.video import write_mp4

        self._do_count += 1
        path = self.run_dir / f"do_{self._do_count:03d}_{family}.mp4"
        return write_mp4(path, frames, fps=self.env.metadata["render_fps"])

    @property
    def run_dir(self) -> Path:
        """Where `do` videos go: --out, or ./embodia_runs/mcp/<time>-session/ made on first use."""
        if self._run_dir is None:
            from embodia.runs import new_run_dir, write_manifest

            if self._out_dir is not None:
                self._out_dir.mkdir(parents=True, exist_ok=True)
                self._run_dir = self._out_dir
            else:
                self._run_dir = new_run_dir("mcp", "session")
            write_manifest(self._run_dir, "mcp", {"policy": self.policy_source or None})
        return self._run_dir

    def _read(self, text: str):
        """The text read against the catalogue (embodia.eval.scope.Reading)."""
        from embodia.eval.scope import Reading, read_instruction

        try:  # an exact template needs no encoder (loading it takes seconds)
            task = parse_instruction(text)
            return Reading(text, task, 1.0, task.instruction, ((task.instruction, 1.0),))
        except ValueError as exc:
            # A known phrasing with an unknown colour or direction ("pick up the orange block") is
            # not a paraphrase to guess at: say which values exist.
            if not str(exc).startswith("unknown task"):
                raise RobotError(f"{exc}. {catalogue_hint()}") from None
        return read_instruction(text, self.encoder)

    def _policy_summary(self) -> dict[str, Any]:
        if self.policy is None:
            return {"loaded": False, "note": self.policy_error}
        if self._trained_on is None:
            self._trained_on = trained_families(self.policy)
        return {"loaded": True, "source": self.policy_source, **self._trained_on}


def trained_families(policy) -> dict[str, Any]:
    """Which task families a policy was trained on, as far as its checkpoint says.

    Checked in order: `families` or `tasks` in the checkpoint metadata, then the task lists of the
    training datasets named in the metadata (when those folders exist on this machine)."""
    meta = dict(getattr(policy, "metadata", None) or {})
    if meta.get("families"):
        return {"trained_on": sorted(meta["families"]), "trained_on_source": "checkpoint metadata"}
    tasks, source = list(meta.get("tasks") or []), "checkpoint metadata"
    if not tasks and meta.get("datasets"):
        from embodia.data.reader import LeRobotDataset

        source = "the training datasets' task lists"
        for root in meta["datasets"]:
            try:
                tasks.extend(LeRobotDataset.open(root).tasks)
            except Exception:  # best effort: the dataset may live on another machine
                continue
    families = set()
    for t in tasks:
        try:
            families.add(parse_instruction(t).family)
        except ValueError:
            continue
    if not families:
        return {"trained_on": None, "trained_on_note": "the checkpoint's metadata does not say"}
    return {"trained_on": sorted(families), "trained_on_source": source}
