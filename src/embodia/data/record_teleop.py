"""Recording human demonstrations: a person moves the leader, the follower (real or simulated) does it,
and every tick becomes a frame of a LeRobotDataset v3.0.

    result = record_teleop(leader, follower, root, TeleopRecordConfig(task="pick up the red block", episodes=50),
                           TerminalControls())

The dataset has the same keys, units (radians), `robot_type` and camera names as a simulated recording
of the same embodiment, so the two merge and train together (`embodia dataset merge`). A frame is the
observation read at the start of the tick and the action sent in it, as LeRobot records.

Episode controls (`Controls.poll()` once per tick): "next" ends the episode and keeps it, "rerecord"
drops it and starts it again after the reset period, "stop" keeps the current one and ends the
recording. `TerminalControls` reads them from the keyboard (ENTER, r ENTER, q ENTER): no display
needed; tests script them. Between episodes a reset period (`reset_s`, or until "next") keeps the
follower under teleoperation without recording, so the scene can be put back.

Idle frames at the start and end of an episode (no joint of the action moving more than `idle_rad` per
tick: the person had not started, or had already finished) are trimmed. Each episode is committed when
it ends, so a crash, a lost arm or Ctrl-C loses at most the episode in progress.
"""

from __future__ import annotations

import select
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from embodia.data.format import features_for
from embodia.data.writer import DatasetWriter
from embodia.robots.rate import LoopClock
from embodia.robots.spec import ACTION, OBS_STATE, TASK, image_key

COMMANDS = ("next", "rerecord", "stop")


@dataclass(frozen=True)
class TeleopRecordConfig:
    task: str
    episodes: int
    episode_s: float = 30.0
    reset_s: float = 10.0
    image_size: int = 96
    trim_idle: bool = True
    idle_rad: float = 0.002  # per tick: about 0.1 degree

    def __post_init__(self) -> None:
        if not self.task.strip():
            raise ValueError("a recording needs a task: the instruction the demonstrations carry out")
        if self.episodes <= 0 or self.episode_s <= 0 or self.reset_s < 0 or self.idle_rad < 0:
            raise ValueError("episodes and episode_s must be positive, reset_s and idle_rad not negative")
        if self.image_size <= 0 or self.image_size % 2:
            raise ValueError(f"image_size must be positive and even (yuv420p video), got {self.image_size}")


@dataclass
class TeleopRecordResult:
    root: str
    saved: int = 0
    rerecorded: int = 0
    frames: int = 0
    trimmed: int = 0
    stopped: bool = False
    timing: dict = field(default_factory=dict)


class ScriptedControls:
    """Controls for tests and scripts: {(episode, tick): command} (episode counts every attempt)."""

    def __init__(self, script: dict[tuple[int, int], str]):
        bad = [c for c in script.values() if c not in COMMANDS]
        if bad:
            raise ValueError(f"unknown controls {bad}; valid: {COMMANDS}")
        self.script, self.attempt, self.tick = dict(script), 0, 0

    def start(self, attempt: int) -> None:
        self.attempt, self.tick = attempt, 0

    def poll(self) -> str | None:
        self.tick += 1
        return self.script.get((self.attempt, self.tick))


class TerminalControls:
    """ENTER: next; r ENTER: re-record; q ENTER: stop. Non-blocking reads of stdin (no display needed)."""

    KEYS = {"": "next", "r": "rerecord", "q": "stop"}

    def __init__(self, stdin=sys.stdin):
        self.stdin = stdin

    def start(self, attempt: int) -> None:
        pass

    def poll(self) -> str | None:
        if not select.select([self.stdin], [], [], 0)[0]:
            return None
        line = self.stdin.readline()
        return "stop" if line == "" else self.KEYS.get(line.strip().lower())  # EOF stops


def trim_idle(actions: np.ndarray, idle_rad: float) -> tuple[int, int]:
    """[start, end) of the frames between the first and the last movement of the action."""
    if len(actions) < 2:
        return 0, len(actions)
    moving = np.flatnonzero(np.abs(np.diff(actions, axis=0)).max(axis=1) > idle_rad)
    if moving.size == 0:
        return 0, 0
    return int(moving[0]), int(moving[-1]) + 2


def _check_cameras(obs: dict, spec, size: int) -> None:
    want = [image_key(c) for c in spec.camera_names]
    missing = [k for k in want if k not in obs]
    if missing:
        raise ValueError(
            f"the follower gives {sorted(k for k in obs if k.startswith('observation.images.'))}; a dataset that "
            f"merges with simulated {spec.name} data needs {want}: configure a camera for each"
        )
    wrong = {k: obs[k].shape for k in want if obs[k].shape != (size, size, 3)}
    if wrong:
        raise ValueError(f"camera frames must be ({size}, {size}, 3) to match image_size; got {wrong}")


def record_teleop(leader, follower, root, cfg: TeleopRecordConfig, controls, resume: bool = False,
                  say=print) -> TeleopRecordResult:  # fmt: skip
    """Record `cfg.episodes` demonstrations into `root` (a new dataset, or an existing one with `resume`).
    Both arms must be connected."""
    spec = follower.spec
    _check_cameras(follower.get_observation(), spec, cfg.image_size)
    features = features_for(spec, cfg.image_size, cfg.image_size)
    if resume:
        writer = DatasetWriter.resume(root)
        if writer.features != features:
            raise ValueError(f"{root}: its features differ from this recording's; record into a new folder")
    else:
        writer = DatasetWriter.create(root, features, fps=spec.fps, robot_type=spec.robot_type)
    result = TeleopRecordResult(root=str(root))
    clock = LoopClock(follower)
    attempt = 0
    with writer:  # leaving commits every saved episode
        while result.saved < cfg.episodes:
            controls.start(attempt)
            say(
                f"episode {result.saved + 1}/{cfg.episodes}: {cfg.task!r} (ENTER ends it, r re-records, q stops)"
            )
            frames, command = _episode(leader, follower, cfg, controls, clock)
            attempt += 1
            if command == "rerecord":
                result.rerecorded += 1
                say("re-recording this episode")
            elif frames:
                actions = np.stack([f[ACTION] for f in frames])
                start, end = trim_idle(actions, cfg.idle_rad) if cfg.trim_idle else (0, len(frames))
                result.trimmed += len(frames) - (end - start)
                if end - start >= 2:
                    for frame in frames[start:end]:
                        writer.add_frame(frame)
                    writer.save_episode()
                    result.saved += 1
                    result.frames += end - start
                else:
                    say("nothing moved in this episode: not saved")
            if command == "stop":
                result.stopped = True
                break
            if result.saved < cfg.episodes and cfg.reset_s > 0:
                say(f"reset the scene ({cfg.reset_s:g} s, ENTER when ready)")
                _reset_period(leader, follower, cfg.reset_s, controls, clock)
    result.timing = clock.stats()
    return result


def _episode(leader, follower, cfg: TeleopRecordConfig, controls, clock: LoopClock):
    frames, start, command = [], time.monotonic(), None
    while time.monotonic() - start < cfg.episode_s:
        obs = follower.get_observation()
        sent = follower.send_action(leader.get_action())
        frame = {k: v for k, v in obs.items() if k.startswith("observation.images.")}
        frames.append(frame | {OBS_STATE: np.asarray(obs[OBS_STATE], np.float32),
                               ACTION: np.asarray(sent, np.float32), TASK: cfg.task})  # fmt: skip
        follower.advance()
        clock.after_advance()
        command = controls.poll()
        if command is not None:
            break
    return frames, command


def _reset_period(leader, follower, seconds: float, controls, clock: LoopClock) -> None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        follower.send_action(leader.get_action())
        follower.advance()
        clock.after_advance()
        if controls.poll() == "next":
            return
