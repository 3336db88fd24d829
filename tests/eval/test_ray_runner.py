"""`embodia eval --ray`: episodes on Ray actors of a real two-node cluster on this machine (not a mock).

The cluster (conftest's `ray_cluster`) is a head with no CPUs and two nodes of one CPU each, so the two
actors (one CPU each) run on different nodes, as on a real cluster. Checked: per-episode outcomes equal
a local run's with the same seeds; an actor process that dies mid-episode has its episode run again
elsewhere, every episode journalled once; `--resume` runs only the missing (task, seed) pairs; without
Ray, `--ray` is a clear error naming the extra.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from embodia.cli import main
from embodia.eval.config import EvalConfig
from embodia.eval.journal import JOURNAL

ray = pytest.importorskip("ray")

SUITE = "touch"  # the cheapest tabletop family
SMALL = {"image_size": 32, "max_steps": 12, "videos_per_task": 0}
OUTCOME = ("task", "seed", "success", "steps", "chunks", "failure", "stages", "measures", "instruction")


@pytest.fixture(scope="module")
def cluster(ray_cluster):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    return ray_cluster


def _load(path: str):
    from embodia.policy.policy import Policy

    return Policy.from_pretrained(path)


def _outcomes(result) -> list[tuple]:
    return [tuple(json.dumps(e.to_dict()[k], sort_keys=True) for k in OUTCOME) for e in result.episodes]


def _ray_eval(policy_dir: Path, out: Path, factory=None, on_pool=None, **cfg):
    from embodia.eval.ray_runner import evaluate_on_ray

    settings = {"suite": SUITE, "episodes": 20, "num_envs": 2, "out_dir": str(out), "ray": "auto"} | SMALL
    config = EvalConfig(**(settings | cfg))
    factory = factory or functools.partial(_load, str(policy_dir))
    return evaluate_on_ray(_load(str(policy_dir)), factory, config, show_progress=False, on_pool=on_pool)


def test_outcomes_equal_a_local_run_with_the_same_seeds(cluster, tiny_policy_dir, tmp_path):
    import torch

    from embodia.eval.run import evaluate

    # As many torch threads as an actor (its one CPU): another count sums in another order.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = evaluate(_load(str(tiny_policy_dir)), SUITE, episodes=20, num_envs=1, in_process=True,
                         out_dir=tmp_path / "local", show_progress=False, **SMALL)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    nodes, scratch = [], []

    def on_pool(pool):
        nodes.extend(_nodes(pool))
        scratch.extend(ray.get([a.__ray_call__.remote(lambda self: self._tmp) for a in pool.actors]))

    remote = _ray_eval(tiny_policy_dir, tmp_path / "ray", on_pool=on_pool)
    assert len(remote.episodes) == len(local.episodes) == 20
    # The actors' scratch folders (task files, their copy of the checkpoint) went with them.
    assert len(scratch) == 2 and not any(Path(folder).exists() for folder in scratch)
    assert _outcomes(remote) == _outcomes(local)
    assert len(set(nodes)) == 2  # one actor on each worker node
    data = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert data["ray"] == "auto" and data["overall"]["n"] == 20
    assert len((tmp_path / "ray" / JOURNAL).read_text().splitlines()) == 20


def _nodes(pool) -> list[str]:
    return ray.get(
        [a.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()) for a in pool.actors]
    )


@dataclass(frozen=True)
class CrashOnce:
    """A policy factory whose replicas kill their own process (os._exit, no cleanup) at their third
    chunk, once in the whole cluster (the first to create `marker` wins): a worker lost mid-episode."""

    checkpoint: str
    marker: str

    def __call__(self):
        policy = _load(self.checkpoint)
        predict = policy.predict_chunk
        calls = [0]

        @functools.wraps(predict)  # keeps the signature: the executor passes noise_seed= by it
        def crashing(*args, **kwargs):
            calls[0] += 1
            if calls[0] == 3:
                try:
                    os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    pass
                else:
                    os._exit(1)
            return predict(*args, **kwargs)

        policy.predict_chunk = crashing
        return policy


def test_an_actor_killed_mid_episode_is_replaced_and_every_episode_counted_once(
    cluster, tiny_policy_dir, tmp_path
):
    marker = tmp_path / "crashed"
    pools = []
    result = _ray_eval(tiny_policy_dir, tmp_path / "ray", factory=CrashOnce(str(tiny_policy_dir), str(marker)),
                       episodes=6, on_pool=pools.append)  # fmt: skip
    assert marker.exists() and pools[0].replaced == 1
    keys = [(e.task, e.seed) for e in result.episodes]
    assert len(keys) == len(set(keys)) == 6
    lines = [json.loads(x) for x in (tmp_path / "ray" / JOURNAL).read_text().splitlines()]
    assert sorted((r["task"], r["seed"]) for r in lines) == sorted(keys)
    # The episode that was cut short ran again from its start: outcomes as if nothing had happened.
    clean = _ray_eval(tiny_policy_dir, tmp_path / "clean", episodes=6)
    assert _outcomes(result) == _outcomes(clean)


def test_resume_runs_only_the_missing_pairs(cluster, tiny_policy_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["eval", str(tiny_policy_dir), "--suite", SUITE, "--episodes", "4", "--num-envs", "2",
            "--max-steps", "12", "--image-size", "32", "--videos", "1", "--ray", "auto"]  # fmt: skip
    assert main([*argv, "--out", str(out)]) == 0  # the CLI's actors load the checkpoint themselves
    journal = out / JOURNAL
    rows = journal.read_text().splitlines()
    assert len(rows) == 4 and len(list((out / "videos").glob("*.mp4"))) == 1  # the video came via Ray
    first = json.loads((out / "results.json").read_text())["episodes"]
    journal.write_text("\n".join(rows[:2]) + '\n{"task": "touch", "se')  # interrupted: a torn line
    assert main([*argv, "--resume", str(out)]) == 0
    after = journal.read_text().splitlines()
    assert after[:2] == rows[:2] and len(after) == 4  # kept lines untouched, the torn one dropped
    assert sorted(after[2:]) == sorted(r for r in rows[2:])  # the two missing ones, run again alike
    assert json.loads((out / "results.json").read_text())["episodes"] == first
    assert main([*argv, "--out", str(out)]) == 2  # a fresh run never mixes into an earlier one's journal
    assert "holds an evaluation already" in " ".join(capsys.readouterr().out.split())

    started = []
    cfg = {"suite": SUITE, "episodes": 4, "num_envs": 2, "ray": "auto", "resume": str(out)} | SMALL
    from embodia.eval.ray_runner import evaluate_on_ray

    policy = _load(str(tiny_policy_dir))
    res = evaluate_on_ray(policy, None, EvalConfig(**(cfg | {"videos_per_task": 1})), show_progress=False,
                          on_pool=started.append)  # fmt: skip
    assert started == [] and len(res.episodes) == 4  # nothing left to run: no actor started
    with pytest.raises(ValueError, match="other settings"):
        evaluate_on_ray(policy, None, EvalConfig(**(cfg | {"max_steps": 5})), show_progress=False)


def test_a_local_evaluation_journals_its_episodes_and_resumes_like_a_ray_one(
    tiny_policy_dir, tmp_path, capsys
):
    out = tmp_path / "ev"
    argv = ["eval", str(tiny_policy_dir), "--suite", SUITE, "--episodes", "4", "--num-envs", "2",
            "--max-steps", "12", "--image-size", "32", "--videos", "0"]  # fmt: skip
    assert main([*argv, "--out", str(out)]) == 0
    rows = (out / JOURNAL).read_text().splitlines()
    first = json.loads((out / "results.json").read_text())["episodes"]
    assert len(rows) == 4
    (out / JOURNAL).write_text("\n".join(rows[:1]) + "\n")  # as if it had been stopped after one episode
    assert main([*argv, "--resume", str(out)]) == 0
    assert (out / JOURNAL).read_text().splitlines()[0] == rows[0]
    assert json.loads((out / "results.json").read_text())["episodes"] == first
    assert json.loads((out / "manifest.json").read_text())["resumed"] is True
    assert main([*argv, "--out", str(out)]) == 2  # a fresh run never mixes into an earlier one's journal
    assert "holds an evaluation already" in " ".join(capsys.readouterr().out.split())


def test_without_ray_the_flag_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert (
        main(["eval", "no-such-checkpoint", "--suite", SUITE, "--ray", "local", "--out", str(tmp_path)]) == 2
    )
    assert "optional extra 'ray' (not installed): pip install ray==" in capsys.readouterr().out.replace(
        "\n", ""
    )


def test_a_lerobot_policy_runs_on_ray_actors_from_their_own_copy_of_its_folder(
    cluster, lerobot_policies, tmp_path
):
    """The CLI ships the checkpoint folder to the actors through Ray's object store and each loads its own
    copy; LeRobot's ACT, in LeRobot's own environment behind each actor (its location passed on in the
    actors' runtime_env), plays the same episodes as a local run."""
    argv = ["eval", str(lerobot_policies["act"]), "--suite", SUITE, "--episodes", "2", "--max-steps", "12",
            "--videos", "0"]  # fmt: skip
    assert main([*argv, "--num-envs", "2", "--ray", "auto", "--out", str(tmp_path / "ray")]) == 0
    assert main([*argv, "--num-envs", "1", "--out", str(tmp_path / "local")]) == 0
    remote, local = (json.loads((tmp_path / k / "results.json").read_text()) for k in ("ray", "local"))
    assert remote["overall"]["n"] == 2 and remote["checkpoint_hash"] == local["checkpoint_hash"]
    keys = ("task", "seed", "success", "steps", "chunks")
    assert [{k: e[k] for k in keys} for e in remote["episodes"]] == [
        {k: e[k] for k in keys} for e in local["episodes"]
    ]


def test_a_shipped_folder_arrives_whole_and_stays_inside_its_destination(tmp_path):
    from embodia.cluster import SHIP_LIMIT, pack_folder, unpack_folder

    src = tmp_path / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "sub" / "weights.bin").write_bytes(bytes(range(256)))
    files = pack_folder(src)
    copy = unpack_folder(files, tmp_path / "copy")
    assert pack_folder(copy) == files == {"config.json": b"{}", "sub/weights.bin": bytes(range(256))}
    with pytest.raises(ValueError, match="leaves its folder"):
        unpack_folder({"../escape": b"x"}, tmp_path / "other")
    assert not (tmp_path / "escape").exists()
    with open(src / "big.bin", "wb") as f:
        f.truncate(SHIP_LIMIT)  # a sparse file: its size counts, not the disk it takes
    with pytest.raises(ValueError, match="ships at most 2048 MiB to Ray workers"):
        pack_folder(src)
