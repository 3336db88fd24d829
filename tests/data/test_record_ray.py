"""`embodia record --ray`: expert episodes played by Ray actors of a real two-node cluster on this machine
(conftest's `ray_cluster`, not a mock), committed by one writer in seed order.

Checked: the recording passes `embodia doctor data` and equals a local recording of the same seeds in
every non-video column; a worker whose process dies mid-episode (a user task file's predicate kills it,
once in the whole cluster) is replaced and the recording completes with every episode exactly once,
equal to a local recording; without Ray, `--ray` is a clear error naming the extra and writes nothing.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from embodia.cli import main
from embodia.data.format import read_json
from embodia.data.record import RecordConfig, record

ray = pytest.importorskip("ray")

SMALL = {"image_size": 32, "keep_failures": True, "num_envs": 2}

# A user task family whose success predicate kills its process at its 40th call (mid-episode), once
# in the whole cluster: the first process to create MARKER dies, every later one records normally.
CRASHING_FAMILY = """
import dataclasses, os
from embodia.tasks import FAMILIES

_touch = FAMILIES["touch"]
_calls = [0]


def _dies_once(state, task):
    _calls[0] += 1
    if _calls[0] == 40:
        try:
            os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os._exit(1)
    return _touch.predicate(state, task)


FAMILY = dataclasses.replace(
    _touch, name="touch_crash", train_templates=("graze the {color} block",),
    heldout_templates=("graze the {color} cube once",), augment_templates=(), predicate=_dies_once,
)
"""


def _rows(root) -> dict:
    """Every non-video column of the dataset: its frames (data/) and its tasks, as Python lists."""
    frames = pq.read_table(sorted((root / "data").rglob("*.parquet"))).to_pydict()
    tasks = pq.read_table(root / "meta" / "tasks.parquet").to_pydict()
    return {
        "frames": frames,
        "tasks": tasks,
        "total_episodes": read_json(root / "meta/info.json")["total_episodes"],
    }


def test_a_ray_recording_passes_the_doctor_and_equals_a_local_one(ray_cluster, tmp_path):
    cfg = {"tasks": "touch,push", "episodes": 6, "seed": 40} | SMALL
    local = record(RecordConfig(**cfg), tmp_path / "local")
    scratch = set(Path(tempfile.gettempdir()).glob("embodia-ray-record-*"))
    remote = record(RecordConfig(**cfg, ray="auto"), tmp_path / "ray")
    # The actors (on this machine) removed their scratch folders before they ended.
    assert set(Path(tempfile.gettempdir()).glob("embodia-ray-record-*")) <= scratch
    assert (remote.attempted, remote.saved) == (local.attempted, local.saved) == (6, 6)
    assert remote.per_task == local.per_task
    ours, theirs = _rows(tmp_path / "ray"), _rows(tmp_path / "local")
    assert set(ours["frames"]) >= {
        "observation.state",
        "action",
        "episode_index",
        "task_index",
        "next.success",
    }
    assert ours == theirs  # every frame's state, action, index, timestamp and label
    assert read_json(tmp_path / "ray" / "meta/embodia_record.json")["next_seed"] == 46
    assert main(["doctor", "data", str(tmp_path / "ray"), "--out", str(tmp_path / "doctor")]) == 0


def test_a_worker_killed_mid_episode_is_replaced_and_every_episode_kept_once(
    ray_cluster,
    tmp_path,
    monkeypatch,
    task_registry,  # the crashing family is gone after the test
):
    marker = tmp_path / "crashed"
    task_file = tmp_path / "crash_tasks.py"
    task_file.write_text(f"MARKER = {str(marker)!r}\n{CRASHING_FAMILY}")
    cfg = {"tasks": "touch_crash", "episodes": 4, "seed": 7, "task_files": [str(task_file)]} | SMALL
    pools = []
    import embodia.data.record_ray as record_ray

    real = record_ray.record_on_ray
    monkeypatch.setattr(record_ray, "record_on_ray", lambda *a, **k: real(*a, **k, on_pool=pools.append))
    remote = record(RecordConfig(**cfg, ray="auto"), tmp_path / "ray")
    assert marker.exists() and pools[0].replaced == 1  # one worker died, and was replaced
    record(RecordConfig(**cfg), tmp_path / "local")  # the marker exists: nobody dies here
    assert remote.attempted == remote.saved == 4
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")  # each episode once, as if nothing happened


def test_without_ray_the_flag_is_a_clear_error_and_writes_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["record", "touch", "--episodes", "1", "--ray", "--out", str(tmp_path / "ds")]) == 2
    assert "optional extra 'ray' (not installed)" in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "ds").exists()


def test_a_driver_stopped_mid_recording_resumes_on_ray_to_the_local_dataset(
    ray_cluster, tmp_path, monkeypatch
):
    """The driver stops (Ctrl-C) after its third commit while workers still hold staged episodes: what
    was committed stays, `--resume` on Ray records from the first uncommitted seed, and the dataset
    equals one local recording of all the seeds."""
    from embodia.data.record import Committer

    cfg = {"tasks": "touch,push", "seed": 70, "commit_every": 1} | SMALL
    commit, commits = Committer._commit, []

    def stop_after_three(self, episode):
        if len(commits) == 3:
            raise KeyboardInterrupt
        commits.append(episode["seed"])
        commit(self, episode)

    monkeypatch.setattr(Committer, "_commit", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        record(RecordConfig(**cfg, episodes=6, ray="auto"), tmp_path / "ray")
    monkeypatch.setattr(Committer, "_commit", commit)
    assert commits == [70, 71, 72] and read_json(tmp_path / "ray" / "meta/info.json")["total_episodes"] == 3
    assert read_json(tmp_path / "ray" / "meta/embodia_record.json")["next_seed"] == 73
    record(RecordConfig(**cfg, episodes=3, ray="auto"), tmp_path / "ray", resume=True)
    record(RecordConfig(**cfg, episodes=6), tmp_path / "local")
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")
