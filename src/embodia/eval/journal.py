"""The episode journal of an evaluation: `episodes.jsonl`, one line per finished episode, appended as
each finishes, so that an interrupted evaluation keeps what it measured and `--resume RUN_DIR` runs
only the (task, seed) pairs the journal lacks.

Each line is `EpisodeResult.to_dict()` (video relative to the run folder), written with one
`os.write` on a file opened with O_APPEND and fsynced: a crash can tear at most the last line, which
`read_journal` drops (and `open_journal` cuts away before new lines are appended).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from embodia.eval.rollout import EpisodeResult, EpisodeSpec
from embodia.runs import atomic_write_text

JOURNAL = "episodes.jsonl"
# Settings a resumed run must share with the run it continues (else its episodes are not comparable).
RESUME_KEYS = ("suite", "split", "checkpoint_hash", "image_size", "max_steps", "seed", "replan_every",
               "join", "ensemble", "delay", "episodes_per_task", "embodiment")  # fmt: skip


def episode_from_dict(row: dict[str, Any], run_dir: Path) -> EpisodeResult:
    """An `EpisodeResult` back from its journal line (the video path relative to `run_dir`)."""
    return EpisodeResult(
        index=int(row["index"]),
        task=str(row["task"]),
        group=str(row["group"]),
        instruction=str(row["instruction"]),
        seed=int(row["seed"]),
        success=bool(row["success"]),
        steps=int(row["steps"]),
        chunks=int(row["chunks"]),
        video=run_dir / row["video"] if row.get("video") else None,
        stages=tuple(row.get("stages") or ()),
        failure=row.get("failure"),
        measures=row.get("measures") or {},
    )


def read_journal(run_dir: Path) -> list[dict[str, Any]]:
    """The journal's complete lines (a torn last line, from a crash mid-write, is dropped); the first
    line per (task, seed) wins."""
    path = Path(run_dir) / JOURNAL
    if not path.exists():
        return []
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "task" in row and "seed" in row:
            rows.setdefault((str(row["task"]), int(row["seed"])), row)
    return list(rows.values())


class Journal:
    """Appends finished episodes to `run_dir/episodes.jsonl`, each (task, seed) once."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / JOURNAL
        self.done: dict[tuple[str, int], EpisodeResult] = {}
        rows = read_journal(self.run_dir)
        if rows or self.path.exists():  # rewrite without a torn line, so appends start on a fresh line
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        for row in rows:
            ep = episode_from_dict(row, self.run_dir)
            self.done[(ep.task, ep.seed)] = ep

    def remaining(self, plan: list[EpisodeSpec]) -> list[EpisodeSpec]:
        """The planned episodes the journal has no result for."""
        return [s for s in plan if (s.task.name, s.seed) not in self.done]

    def append(self, episode: EpisodeResult) -> bool:
        """Record a finished episode; False (and nothing written) if its (task, seed) is already in."""
        key = (episode.task, episode.seed)
        if key in self.done:
            return False
        line = (json.dumps(episode.to_dict(relative_to=self.run_dir)) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.done[key] = episode
        return True

    def episodes(self) -> list[EpisodeResult]:
        return sorted(self.done.values(), key=lambda e: e.index)


def check_resumable(run_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume a run whose recorded settings differ from this one's in what decides outcomes."""
    path = Path(run_dir) / "manifest.json"
    if not path.exists():
        raise ValueError(f"--resume {run_dir}: no manifest.json there (not an evaluation's folder)")
    before = json.loads(path.read_text()).get("inputs", {})
    differ = [k for k in RESUME_KEYS if k in before and before[k] != settings.get(k)]
    if differ:
        pairs = ", ".join(f"{k}: {before[k]!r} then, {settings.get(k)!r} now" for k in differ)
        raise ValueError(f"--resume {run_dir}: the run was made with other settings ({pairs})")
