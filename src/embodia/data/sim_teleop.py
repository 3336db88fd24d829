"""Demonstrate a task by hand in simulation: a person (or a script) drives the simulated SO-101's end
effector, sees the cameras and whether the task's success predicate holds, and saves the episodes worth
keeping to a LeRobotDataset v3.0.

    session = SimTeleop(SimTeleopConfig(task="open_drawer", dataset="my_demos"))
    with session.running():            # the 30 Hz loop in its own thread
        session.new_scene()            # a fresh scene (the next seed) and an instruction of the task
        session.start()                # recording on
        session.command(move=(1, 0, 0))
        ...
        session.save()                 # kept (committed to the dataset before it returns)

The episode controls are new scene, start, save and discard; the web page (`embodia teleop --sim`,
embodia.view.teleop) and a script call the same methods through the same HTTP API.

Saved episodes have the keys, units and camera size of a scripted recording (`embodia record`) of the
tabletop, plus `next.success` and `next.done` per frame, so they merge and train with scripted data.
A frame is the observation at the start of a tick and the joint goal sent in it (the leader's, before
the safety layer, as the scripted experts' are recorded). Idle frames before the first movement are
trimmed; an episode in which the task succeeded ends at its first success frame (as a scripted one
does), one that did not at its last movement. Each save is committed before `save()` returns, so a crash
loses at most the episode in progress.

The live cameras render at `view_size` (for the page); recorded frames at `record_size` (the policy's
input, 96 px like scripted data): two renderers, the second used only while recording.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodia.configs import nested, non_negative, non_negative_int, opt, positive_float, positive_int
from embodia.data.format import features_for
from embodia.data.record import RECORD_META, SUCCESS_FEATURES
from embodia.data.record_teleop import trim_idle
from embodia.data.writer import DatasetWriter
from embodia.robots.ee_teleop import EETeleopConfig, EndEffectorLeader
from embodia.robots.rate import Rate
from embodia.robots.spec import ACTION, OBS_STATE, SO101, TASK, image_key

SPLITS = ("train", "heldout", "all")


@dataclass(frozen=True)
class SimTeleopConfig:
    """The browser teleoperation session of the simulated arm (`embodia teleop --sim` without a leader)."""

    task: str | None = opt(None, "the task to demonstrate: a family name or an instruction (default: a family "
                           "at random each scene)")  # fmt: skip
    split: str = opt("train", "which templates instructions are drawn from", choices=SPLITS)
    seed: int = opt(0, "the first scene's seed; each new scene takes the next", parse=non_negative_int)
    dataset: str | None = opt(None, "record saved episodes into this LeRobotDataset folder", flag="record")
    resume: bool = opt(False, "append to the --record dataset")
    record_size: int = opt(
        96, "recorded camera frames' size, pixels (the base's input: 96)", parse=positive_int
    )
    view_size: int = opt(256, "the live cameras' size, pixels", parse=positive_int)
    max_episode_s: float = opt(180.0, "a recording stops growing after this long", parse=positive_float)
    idle_rad: float = opt(0.002, "a joint goal moving less than this per tick is idle (trimmed at the start)",
                          parse=non_negative)  # fmt: skip
    control: EETeleopConfig = nested(EETeleopConfig, "end-effector control")

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        for name in ("record_size", "view_size"):
            v = getattr(self, name)
            if v <= 0 or v % 2:
                raise ValueError(f"{name} must be positive and even (yuv420p video), got {v}")
        if self.max_episode_s <= 0 or self.idle_rad < 0:
            raise ValueError("max_episode_s must be positive and idle_rad not negative")
        if self.resume and self.dataset is None:
            raise ValueError("resume appends to a dataset: give the dataset too")


class TeleopError(ValueError):
    """A control that does not apply now (saving while not recording, ...): the client's mistake."""


class SimTeleop:
    """The tabletop, its arm under end-effector control, the episode controls and the recorder."""

    def __init__(self, cfg: SimTeleopConfig):
        from embodia.sim.tabletop import TabletopEnv
        from embodia.sim.tasks import FAMILIES, parse_instruction

        self.cfg = cfg
        family = cfg.task if cfg.task in FAMILIES else None
        self._fixed = None if family is not None else cfg.task
        if self._fixed is not None:
            parse_instruction(self._fixed)  # an instruction no family knows: ValueError naming valid ones
        self.writer = (
            self._open_writer() if cfg.dataset else None
        )  # a folder it must not touch: refused first
        self.env = TabletopEnv(family=family, split=cfg.split, image_size=cfg.record_size, render=False)
        self.spec = self.env.robot.spec
        self.leader = EndEffectorLeader(cfg.control, fps=self.spec.fps)
        self.cameras = self.spec.camera_names
        size = max(cfg.view_size, cfg.record_size)  # the offscreen framebuffer must hold the larger
        self.env.model.vis.global_.offwidth = max(self.env.model.vis.global_.offwidth, size)
        self.env.model.vis.global_.offheight = max(self.env.model.vis.global_.offheight, size)
        # An EGL context is current in one thread: the renderers are made (and closed) by the thread that
        # ticks (the loop's, under running()), so nothing else renders.
        self._renderers: dict[int, Any] = {}
        self.lock = threading.RLock()
        self.seed = cfg.seed - 1
        self.frames: list[dict[str, Any]] = []
        self.recording = False
        self.success = False
        self.ever_succeeded = False
        self.saved = 0
        self.discarded = 0
        self.last_saved: dict[str, Any] | None = None
        self.ticks = 0
        self.view_frames: dict[str, np.ndarray] = {}
        self.rate = Rate(self.spec.fps)
        self.new_scene()

    # ------------------------------------------------------------------ episode controls
    def new_scene(self, seed: int | None = None, task: str | None = None) -> dict[str, Any]:
        """A fresh scene: the next seed (or `seed`), an instruction of the configured task (or `task`: a
        family name or an instruction). Drops an unsaved recording."""
        from embodia.sim.tasks import FAMILIES

        with self.lock:
            seed = self.seed + 1 if seed is None else int(seed)
            options: dict[str, Any] = {}
            wanted = task if task is not None else self._fixed
            if wanted is not None:
                options = {"family": wanted} if wanted in FAMILIES else {"task": wanted}
            self.env.reset(seed=seed, options=options or None)  # an unknown task raises here: nothing changed
            self.seed = seed
            self.leader.sync(self.env.robot.joint_positions())
            self.frames, self.recording = [], False
            self.success = self.ever_succeeded = False
            return self.state()

    def start(self) -> dict[str, Any]:
        with self.lock:
            if self.recording:
                raise TeleopError("already recording: save or discard this episode first")
            # The task is judged from here: "moved", "lifted" count from where things are now.
            self.env.begin_task(self.env.task)
            self.frames, self.recording = [], True
            self.success = self.ever_succeeded = False
            return self.state()

    def discard(self) -> dict[str, Any]:
        with self.lock:
            if not self.recording and not self.frames:
                raise TeleopError("nothing to discard: start recording first")
            self.frames, self.recording = [], False
            self.discarded += 1
            return self.state()

    def save(self) -> dict[str, Any]:
        """Trim, write and commit the episode; recording stops. The scene stays as it is."""
        with self.lock:
            if not self.recording:
                raise TeleopError("not recording: start, demonstrate, then save")
            if self.writer is None:
                raise TeleopError("no dataset to save into: start the session with a dataset folder")
            frames, self.frames, self.recording = self.frames, [], False
            kept = _trimmed(frames, self.cfg.idle_rad)
            if len(kept) < 2:
                self.discarded += 1
                raise TeleopError("nothing moved in this episode: not saved")
            for i, frame in enumerate(kept):
                frame["next.done"] = np.array([i == len(kept) - 1])
                self.writer.add_frame(frame)
            from embodia.data.format import write_json
            from embodia.sim.task_files import task_files_record

            index = self.writer.save_episode()
            write_json(Path(self.cfg.dataset) / RECORD_META, {"next_seed": self.seed + 1,  # type: ignore[arg-type]
                                                               "task_files": task_files_record(), "source": "teleop"})  # fmt: skip
            self.saved += 1
            success = bool(kept[-1]["next.success"][0])
            self.last_saved = {"episode": index, "frames": len(kept), "trimmed": len(frames) - len(kept),
                               "success": success, "task": kept[0][TASK]}  # fmt: skip
            return self.state()

    # ------------------------------------------------------------------ driving
    def command(self, **kwargs) -> dict[str, Any]:
        """The end effector's velocity command (EndEffectorLeader.command's arguments)."""
        with self.lock:
            self.leader.command(**kwargs)
            return self.leader.status()

    def tick(self) -> None:
        """One control period: the leader's goal through the safety layer, physics, the predicate."""
        with self.lock:
            recording = self.recording and len(self.frames) < self.cfg.max_episode_s * self.spec.fps
            if recording:
                before = self._render(self.cfg.record_size) | {
                    OBS_STATE: self.env.robot.joint_positions().astype(np.float32)
                }
            action = self.leader.get_action()
            _, _, _, _, info = self.env.step(action)
            self.success = bool(info["success"])
            self.ever_succeeded |= self.success
            if recording:
                before[ACTION] = action.astype(np.float32)
                before[TASK] = self.env.instruction
                before["next.success"] = np.array([self.success])
                self.frames.append(before)
            self.ticks += 1
            self._render_view()

    @contextlib.contextmanager
    def running(self, on_tick=None):
        """The loop at the arm's rate in a thread of its own while the block runs; `on_tick(session)`
        after each tick (the live feed)."""
        stop = threading.Event()

        def loop() -> None:
            self.rate.restart()
            try:
                while not stop.is_set():
                    self.tick()
                    if on_tick is not None:
                        on_tick(self)
                    self.rate.wait()
            finally:
                self._close_renderers()

        thread = threading.Thread(target=loop, name="embodia-teleop", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=5.0)

    def state(self) -> dict[str, Any]:
        from embodia.sim.tasks import FAMILIES

        with self.lock:
            task = self.env.task
            fam = FAMILIES[task.family]
            return {
                "instruction": self.env.instruction,
                "family": task.family,
                "slots": task.values,
                "success_rule": fam.success,
                "seed": self.seed,
                "success": self.success,
                "succeeded": self.ever_succeeded,
                "recording": self.recording,
                "frames": len(self.frames),
                "saved": self.saved,
                "discarded": self.discarded,
                "last_saved": self.last_saved,
                "dataset": self.cfg.dataset,
                "ticks": self.ticks,
                "control": self.leader.status(),
                "scene": self._scene(),
                "timing": self.rate.stats(),
            }

    def close(self) -> None:
        with self.lock:
            if self.writer is not None:
                self.writer.__exit__(None, None, None)
                self.writer = None
            self._close_renderers()
            self.env.close()

    def __enter__(self) -> SimTeleop:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _open_writer(self) -> DatasetWriter:
        root = Path(self.cfg.dataset)  # type: ignore[arg-type]
        features = features_for(SO101, self.cfg.record_size, self.cfg.record_size, extra=SUCCESS_FEATURES)
        if self.cfg.resume:
            writer = DatasetWriter.resume(root)
            if writer.features != features:
                raise ValueError(
                    f"{root}: its features differ from this recording's; record into a new folder"
                )
            return writer
        if root.exists() and any(root.iterdir()):
            raise ValueError(f"{root} exists and is not empty: resume it, or record into a new folder")
        return DatasetWriter.create(root, features, fps=SO101.fps, robot_type=SO101.robot_type)

    def _render(self, size: int) -> dict[str, np.ndarray]:
        from embodia.sim.render import make_renderer

        if size not in self._renderers:
            self._renderers[size] = make_renderer(self.env.model, size, size)
        renderer, out = self._renderers[size], {}
        for cam in self.cameras:
            renderer.update_scene(self.env.data, camera=cam)
            out[image_key(cam)] = renderer.render()
        return out

    def _render_view(self) -> None:
        self.view_frames = self._render(self.cfg.view_size)

    def _close_renderers(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def _scene(self) -> dict[str, Any]:
        env = self.env
        blocks = {c: [round(float(v), 4) for v in env.block_position(c)] for c in env.present}
        objects = {o.name: [round(float(v), 4) for v in env.object_position(o.name)]
                   for o in _objects_of(env)}  # fmt: skip
        yaws = {c: round(env.block_yaw(c), 4) for c in env.present}
        return {"blocks": blocks, "block_yaw": yaws, "bowl": [round(float(v), 4) for v in env.bowl_position()],
                "objects": objects, "tool": [round(float(v), 4) for v in env.tool_position()],
                "jaw_yaw": round(env.robot.jaw_yaw(), 4)}  # fmt: skip


def _objects_of(env) -> tuple:
    from embodia.sim.tasks import FAMILIES

    return FAMILIES[env.task.family].objects


def _trimmed(frames: list[dict[str, Any]], idle_rad: float) -> list[dict[str, Any]]:
    """From the first movement to the first success frame (a success) or the last movement."""
    if not frames:
        return []
    actions = np.stack([f[ACTION] for f in frames])
    start, end = trim_idle(actions, idle_rad)
    wins = [i for i, f in enumerate(frames) if f["next.success"][0]]
    if wins:
        end = wins[0] + 1
    return frames[start:end] if start < end else []
