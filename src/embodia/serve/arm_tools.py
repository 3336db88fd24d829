"""The agent tools on a real arm: `embodia mcp --robot so101 --follower PORT`.

The same seven tools as the simulated tabletop's `RobotTools` (observe, do, move_to, open_gripper,
close_gripper, reset, list_skills), acting on a connected `Robot` (an SO-101 follower, or the simulated
arm behind the same contract) at its control rate, every action through its safety layer:

    tools = ArmTools.load(FollowerArm(follower="/dev/ttyACM0").build, checkpoint="base")
    tools.do("pick up the red block")        # the policy for up to 10 s through the chunk runner
    tools.observe().images                    # the arm's cameras, as PNG

What a real arm cannot give, the tools say instead of inventing: no object positions (observe returns
the cameras and the arm's own state); no success judgement (do returns what ran, with its timing, and
the agent looks); no scene layout (reset sends the arm home and asks for a person to arrange the table).
The arm is connected once, for the session; `close` sends it to rest, then torque goes off.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embodia.eval.real import check_execution, run_on_robot
from embodia.policy.executor import ExecutionConfig
from embodia.robots.rate import LoopClock
from embodia.serve.tool_args import (
    DEFAULT_FREE_STEPS,
    GRIP,
    RobotError,
    ToolOutput,
    arm_state,
    catalogue_families,
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

INSTRUCTIONS = """\
You control a real SO-101 robot arm (or its stand-in) through its cameras and a vision-language-action
policy. Coordinates are metres in the robot base frame: x forward (away from the base), y to the
robot's left, z up; the table top is z = 0 and the arm reaches about 0.1-0.35 m forward. Nothing
measures the objects on a real table and nothing judges success: look with observe() before and after
each do("<one instruction>") and decide yourself. move_to / open_gripper / close_gripper drive the arm
directly; reset() sends the arm home (a person arranges the table); list_skills() says what the policy
was trained on."""

REAL_ARM_NOTE = "a real arm: no simulator measures the objects or judges success; look at the images"


class ArmTools:
    """Agent tools on one connected robot, optionally with a policy (`Policy` or `RemotePolicy`) for `do`."""

    instructions = INSTRUCTIONS

    def __init__(self, robot, policy=None, policy_error: str | None = None, policy_source: str = "",
                 execution: ExecutionConfig | None = None, out_dir: str | Path | None = None,
                 video: bool = True, seed: int = 0, task: str | None = None):  # fmt: skip
        self.robot = robot
        self.policy, self.policy_error, self.policy_source = policy, policy_error, policy_source
        self.execution = execution or ExecutionConfig()
        self.video, self._out_dir, self._run_dir = video, out_dir, None
        self._kin = None
        self._calls = int(seed)  # seeds each do() call's noise: a session replays from its seed
        self._do_count = 0
        self._ticks = 0
        self.instruction = instruction_text(task) if task else ""
        self._command = self._measured()  # the last goal sent: what the servos are holding

    @classmethod
    def load(cls, build_robot: Callable[[int], Any], checkpoint: str | Path | None = None,
             policy_url: str | None = None, api_key: str | None = None, **kwargs) -> ArmTools:  # fmt: skip
        """Load the policy (a checkpoint, the shipped base, or a server's URL), check it can run under
        `execution`, then build the robot for the policy's image size and connect it."""
        from embodia.policy.checkpoint import CheckpointError

        policy, error, size, source = None, None, 96, ""
        if policy_url is not None:
            if checkpoint is not None:
                raise ValueError("give either a checkpoint folder or a policy server URL, not both")
            from embodia.serve.client import RemotePolicy

            policy, source = RemotePolicy(policy_url, api_key=api_key), f"policy server {policy_url}"
            size = policy.image_size or size
        else:
            from embodia.policy.loading import load_policy

            try:
                policy = load_policy(checkpoint)
                shapes = list(policy.info.image_shapes.values())
                size, source = (int(shapes[0][0]) if shapes else 96), f"checkpoint {policy.path}"
            except CheckpointError as exc:
                if checkpoint is not None:
                    raise
                error = f"no policy is loaded, so do() cannot act ({exc}); the other tools work"
        if policy is not None:
            check_execution(policy, kwargs.get("execution") or ExecutionConfig())  # before the arm moves
        robot = build_robot(size)
        robot.connect()
        try:
            return cls(robot, policy, error, source, **kwargs)
        except BaseException:
            robot.disconnect()
            raise

    def close(self) -> None:
        """The arm to its rest pose (one that has one), then torque off and the link closed."""
        try:
            if hasattr(self.robot, "go_to_rest"):
                self.robot.go_to_rest()
        finally:
            self.robot.disconnect()
            if hasattr(self.policy, "close"):
                self.policy.close()

    # ------------------------------------------------------------------ tools
    def observe(self, include_wrist: bool = False) -> ToolOutput:
        """The front camera (and the wrist camera) as PNG, plus the arm's measured state."""
        obs = self.robot.get_observation()
        names = ["front"] + (["wrist"] if include_wrist else [])
        shown = [n for n in names if f"observation.images.{n}" in obs]
        data = self._state(obs["observation.state"]) | {"images": shown}
        if len(shown) < len(names):
            data["camera_note"] = f"this arm has no {' or '.join(sorted(set(names) - set(shown)))} camera"
        return ToolOutput(data, [png(obs[f"observation.images.{n}"]) for n in shown])

    def do(self, instruction: str, max_steps: int | None = None) -> ToolOutput:
        """Run the policy on `instruction` from where the arm is, for up to `max_steps` control ticks."""
        text = instruction_text(instruction)
        if self.policy is None:
            raise RobotError(self.policy_error or "no policy is loaded, so do() cannot act")
        limit = step_limit(max_steps, DEFAULT_FREE_STEPS)
        fps = float(self.robot.spec.fps)
        frames: list[np.ndarray] = []

        def on_tick(obs, sent):
            self._command = np.asarray(sent, np.float64)
            if self.video and any(k.startswith("observation.images.") for k in obs):
                frames.append(_frame(obs))

        try:
            report = run_on_robot(self.policy, self.robot, text, limit / fps, seed=self._calls,
                                  execution=self.execution, on_tick=on_tick)  # fmt: skip
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            raise RobotError(
                f"the policy failed: {exc}. Nothing non-finite was sent; the arm holds where it is. Try again, "
                "or reset()."
            ) from None
        finally:
            self._calls += 1
        ticks = report.timing["ticks"]
        self._ticks += ticks
        self.instruction = text
        video = self._write_video(frames) if frames else None
        t = report.timing
        summary = (
            f"{text!r}: ran {ticks} ticks ({report.seconds:.1f} s), {report.chunks} chunks; success is not "
            "judged on a real arm: observe() to check"
            + (f"; {t['ticks_missed']} ticks missed" if t["ticks_missed"] else "")
            + (f"; video: {video}" if video else "")
        )
        data = {
            "instruction": text, "success": None, "steps": ticks, "chunks": report.chunks,
            "timing": t | {"waits_for_a_chunk": report.waits, "chunk_ms_p50": round(report.chunk_ms_p50, 1)},
            "video": str(video) if video else None, "tool_xyz_m": rounded(self._fk(self._measured())),
            "summary": summary,
        }  # fmt: skip
        return ToolOutput(data)

    def move_to(self, x: float, y: float, z: float, pitch_deg: float | None = None) -> ToolOutput:
        """Move the grasp point to (x, y, z) metres in the robot base frame (inverse kinematics)."""
        target = check_xyz(x, y, z)
        goal = ik_goal(target, check_pitch(pitch_deg), self._measured(), self._command)
        ticks = self._drive(goal)
        return moved(target, self._fk(self._measured()), ticks, " by the joint encoders")

    def open_gripper(self) -> ToolOutput:
        return self._gripper(GRIP.action_open, "opened")

    def close_gripper(self) -> ToolOutput:
        return self._gripper(GRIP.action_closed, "closed")

    def reset(self, task: str | None = None, seed: int | None = None) -> ToolOutput:
        """The arm to its home pose; `task` becomes the current instruction. The table is a person's job."""
        check_seed(seed)
        text = instruction_text(task) if task is not None and str(task).strip() else None
        if hasattr(self.robot, "go_to_rest"):
            self.robot.go_to_rest()
            self._command = self._measured()
        if seed is not None:
            self._calls = seed
        self._ticks = 0
        self.instruction = text or self.instruction
        data = {
            "instruction": self.instruction, "seed": seed, "tool_xyz_m": rounded(self._fk(self._measured())),
            "summary": "the arm is at its home pose; a real table is not laid out by software: ask the person "
            "at the arm to arrange it" + (f" for {text!r}" if text else ""),
        }  # fmt: skip
        return ToolOutput(data)

    def list_skills(self) -> ToolOutput:
        from embodia.serve.robot_tools import trained_families

        policy: dict[str, Any] = {"loaded": False, "note": self.policy_error}
        if self.policy is not None:
            policy = {"loaded": True, "source": self.policy_source, **trained_families(self.policy)}
        data = {
            "families": catalogue_families(),
            "policy": policy,
            "robot": REAL_ARM_NOTE,
            "usage": "do() passes the instruction to the policy as written; it acts best on the phrasings it "
            "was trained on. One block per call.",
        }
        return ToolOutput(data)

    # ------------------------------------------------------------------ internals
    @property
    def kinematics(self):
        return grasp_kinematics()

    def _measured(self) -> np.ndarray:
        return np.asarray(self.robot.get_observation()["observation.state"], np.float64)

    def _fk(self, q: np.ndarray) -> np.ndarray:
        return self.kinematics.fk(q[:5])

    def _state(self, q) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            **arm_state(q),
            "tool_xyz_m": rounded(
                self._fk(np.asarray(q, np.float64))
            ),  # from the joint encoders through the arm's model
            "objects_xyz_m": None,
            "objects_note": REAL_ARM_NOTE,
            "ticks_since_reset": self._ticks,
            "frame": "metres, robot base frame: x forward, y to the robot's left, z up; table top at z = 0",
        }

    def _gripper(self, value: float, verb: str) -> ToolOutput:
        goal = self._command.copy()
        goal[GRIP.action_index] = value
        ticks = self._drive(goal, settle_joint=GRIP.state_index)
        state = self._state(self._measured())["gripper"]
        data = {"gripper": state, "ticks": ticks,
                "summary": f"gripper {verb}: opening {state['opening']:.2f} (0 closed, 1 open)"}  # fmt: skip
        return ToolOutput(data)

    def _drive(self, goal: np.ndarray, settle_joint: int | None = None) -> int:
        """From the goal held now to `goal`, paced by the robot's clock, then let the servos converge."""
        clock = LoopClock(self.robot)  # ticks from now on, not from the end of the previous call
        ticks = drive(
            self._command.copy(), goal, lambda a: self._send(a, clock), self._measured, settle_joint
        )
        self._ticks += ticks
        return ticks

    def _send(self, action: np.ndarray, clock: LoopClock) -> None:
        self._command = np.asarray(
            self.robot.send_action(action), np.float64
        )  # what the safety layer let through
        self.robot.advance()
        clock.after_advance()

    def _write_video(self, frames: list[np.ndarray]) -> Path:
        from embodia.report.video import write_mp4

        self._do_count += 1
        return write_mp4(self.run_dir / f"do_{self._do_count:03d}.mp4", frames, fps=self.robot.spec.fps)

    @property
    def run_dir(self) -> Path:
        """Where `do` videos go: --out, or ./embodia_runs/mcp/<time>-so101/ made on first use."""
        if self._run_dir is None:
            from embodia.runs import new_run_dir

            self._run_dir = Path(self._out_dir) if self._out_dir is not None else new_run_dir("mcp", "so101")
            self._run_dir.mkdir(parents=True, exist_ok=True)
        return self._run_dir


def _frame(obs: dict[str, Any]) -> np.ndarray:
    return np.concatenate([v for k, v in sorted(obs.items()) if k.startswith("observation.images.")], axis=1)
