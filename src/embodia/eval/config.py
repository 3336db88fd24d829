"""What a closed-loop evaluation runs: `evaluate(policy, cfg)` and `embodia eval`'s options are this
one dataclass (see embodia.configs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from embodia.configs import nested, opt, positive_int, ray_option, task_files
from embodia.policy.executor import ExecutionConfig


@dataclass(frozen=True)
class EvalConfig:
    suite: str = opt(
        "tabletop", "'tabletop' (all families), families like 'pick,place', or 'metaworld:<task|group|list>'"
    )
    split: Literal["train", "heldout", "all"] = opt("train", "instruction templates (tabletop)")
    episodes: int = opt(50, "episodes per task", parse=positive_int)
    num_envs: int = opt(2, "environments run in parallel (subprocesses)", parse=positive_int)
    execution: ExecutionConfig = nested(ExecutionConfig, "how chunks are executed")
    videos_per_task: int = opt(1, "episodes filmed per task", flag="videos", parse=int)
    image_size: int = opt(96, "camera image side, pixels; must match what the policy was trained on",
                          parse=positive_int)  # fmt: skip
    max_steps: int | None = opt(None, "override each episode's step limit", parse=positive_int)
    seed: int = opt(0, "offset of the evaluation seeds (episode j of a task uses 10,000,000 + seed + j)")
    out_dir: str | None = opt(None, "output folder (default: ./embodia_runs/eval/<time>-<suite>)", flag="out")
    task_files: list[str] = task_files()
    # Where the episodes run (embodia.eval.ray_runner; `evaluate()` itself always runs them locally).
    ray: str | None = ray_option("episodes")
    resume: str | None = opt(None, "continue the evaluation in this run folder (local or --ray), running only "
                             "the (task, seed) pairs its episodes.jsonl lacks", metavar="RUN_DIR")  # fmt: skip

    def __post_init__(self) -> None:
        if self.image_size % 2:
            raise ValueError(
                f"image_size must be a positive even number (yuv420p video), got {self.image_size}"
            )
        if self.videos_per_task < 0:
            raise ValueError(f"videos must be >= 0, got {self.videos_per_task}")
