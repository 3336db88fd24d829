"""A policy acting on a real robot (or anything with the `Robot` contract) for a fixed time, at the
robot's control rate, through the one chunk executor, with the loop's timing.

    report = run_on_robot(policy, follower, "pick up the red block", seconds=60)
    report = run_on_robot(RemotePolicy("ws://gpu-box:8000"), follower, "...", 60,
                          execution=ExecutionConfig(delay=3))   # inference hidden behind 3 ticks

The chunks come through a `ChunkRunner` (embodia.policy.runner): with `delay` d > 0 the next chunk is
fetched in a thread d ticks before it is due while the arm keeps executing the current one, which is
how a policy served on another machine (`embodia serve`) or a slow one keeps a 30 Hz arm moving.

No simulator decides success here: the report is how punctual the loop was (ticks, lateness p50/p99,
ticks missed), how long each chunk took to come (inference or the round trip) and how often the loop
had to wait for one; a person judges the outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from embodia.eval.stats import wilson_interval
from embodia.policy.executor import ExecutionConfig, check_guidable
from embodia.policy.runner import ChunkRunner
from embodia.robots.rate import LoopClock
from embodia.robots.spec import TASK


@dataclass
class RobotRunReport:
    instruction: str
    seconds: float
    fps: float
    chunks: int
    timing: dict
    execution: dict  # the ExecutionConfig the chunks ran under
    policy_ms_p50: float  # the loop's wait on the policy per tick (a queue pop, or a chunk not yet there)
    policy_ms_p99: float
    chunk_ms_p50: float  # one chunk's fetch: inference, or the round trip to a policy server
    chunk_ms_max: float
    waits: int = 0  # ticks that waited for a chunk that was due (the first one excepted)
    wait_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        t = self.timing
        return (f"{t['ticks']} ticks at {self.fps:g} Hz in {self.seconds:.1f} s, {self.chunks} chunks; tick lateness "
                f"p50 {t['lateness_ms_p50']:.1f} ms, p99 {t['lateness_ms_p99']:.1f} ms, {t['ticks_missed']} ticks "
                f"missed; policy per tick p50 {self.policy_ms_p50:.1f} ms, p99 {self.policy_ms_p99:.1f} ms; "
                f"per chunk p50 {self.chunk_ms_p50:.1f} ms, max {self.chunk_ms_max:.1f} ms; "
                f"{self.waits} ticks waited for a chunk ({self.wait_s * 1e3:.0f} ms)")  # fmt: skip


def check_execution(policy, execution: ExecutionConfig) -> None:
    """Raise ValueError/TypeError if `policy` cannot run under `execution` (call it before a motor moves)."""
    execution.actions_per_chunk(policy.chunk_size, policy.n_action_steps)
    if execution.join == "guided":
        check_guidable(policy)


def runner_for(policy, execution: ExecutionConfig | None = None) -> ChunkRunner:
    """The threaded chunk runner for `policy` under `execution`, checked."""
    execution = execution or ExecutionConfig()
    check_execution(policy, execution)
    return ChunkRunner(policy, policy.chunk_size, policy.n_action_steps, config=execution)


def run_on_robot(policy, robot, instruction: str, seconds: float, seed: int = 0,
                 execution: ExecutionConfig | None = None, on_tick=None,
                 should_stop: Callable[[], bool] | None = None) -> RobotRunReport:  # fmt: skip
    """Act for `seconds` on a connected robot. Every action goes through the robot's `send_action`
    (its safety layer)."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    execution = execution or ExecutionConfig()
    with runner_for(policy, execution) as runner:
        # Warm up on a real observation before the clock starts: a policy's first chunk builds its fast
        # path (seconds), and a server's first answer may be slow; neither may land on the arm's first tick.
        runner.act({**robot.get_observation(), TASK: instruction})
        runner.reset(seed)
        policy.reset()
        fps = float(robot.spec.fps)
        clock = LoopClock(robot)  # starts now, after the warm-up
        per_tick = []
        start = time.monotonic()
        while time.monotonic() - start < seconds and not (should_stop and should_stop()):
            obs = robot.get_observation()
            t0 = time.perf_counter()
            action = runner.act({**obs, TASK: instruction})
            per_tick.append((time.perf_counter() - t0) * 1e3)
            sent = robot.send_action(action)
            if on_tick is not None:
                on_tick(obs, sent)
            robot.advance()
            clock.after_advance()
        tick, chunk = np.asarray(per_tick or [0.0]), np.asarray(runner.fetch_ms or [0.0])
        return RobotRunReport(
            instruction=instruction, seconds=time.monotonic() - start, fps=fps, chunks=runner.chunks,
            timing=clock.stats(), execution=asdict(execution), policy_ms_p50=float(np.percentile(tick, 50)),
            policy_ms_p99=float(np.percentile(tick, 99)), chunk_ms_p50=float(np.percentile(chunk, 50)),
            chunk_ms_max=float(chunk.max()), waits=runner.stalls, wait_s=runner.stall_s,
        )  # fmt: skip


@dataclass
class RobotEvalResult:
    instruction: str
    successes: int = 0
    episodes: list[dict] = field(default_factory=list)
    interval: tuple[float, float] = (0.0, 1.0)

    @property
    def n(self) -> int:
        return len(self.episodes)

    def to_dict(self) -> dict:
        return asdict(self) | {"n": self.n, "success_rate": self.successes / max(self.n, 1)}

    def summary(self) -> str:
        lo, hi = self.interval
        return (f"{self.successes}/{self.n} episodes succeeded ({self.successes / max(self.n, 1):.0%}, Wilson 95 % "
                f"{lo:.0%}-{hi:.0%}), as labelled by the person watching")  # fmt: skip


def evaluate_on_robot(policy, robot, instruction: str, episodes: int, episode_s: float,
                      ready: Callable[[int], None], label: Callable[[int], bool],
                      stop_early: Callable[[], bool] | None = None,
                      execution: ExecutionConfig | None = None) -> RobotEvalResult:  # fmt: skip
    """Real-arm evaluation with human labels. For each episode: `ready(i)` returns once the person has
    reset the scene; the policy acts for up to `episode_s` (or until `stop_early()`); the arm goes to its
    rest pose (a robot that has one); `label(i)` is the person's verdict. Success rate with its Wilson
    interval; each episode's timing is kept."""
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    result = RobotEvalResult(instruction)
    for i in range(episodes):
        ready(i)
        report = run_on_robot(policy, robot, instruction, episode_s, seed=i, execution=execution,
                              should_stop=stop_early)  # fmt: skip
        if hasattr(robot, "go_to_rest"):
            robot.go_to_rest()
        success = bool(label(i))
        result.successes += success
        result.episodes.append({"seed": i, "success": success, "seconds": report.seconds, "chunks": report.chunks,
                                "timing": report.timing, "chunk_ms_p50": report.chunk_ms_p50,
                                "waits": report.waits})  # fmt: skip
        result.interval = wilson_interval(result.successes, result.n)
    return result
