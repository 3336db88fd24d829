"""Meta-World suites: a smoke evaluation, difficulty groups, and the task-switching env."""

from __future__ import annotations

import json

import pytest

from embodia.eval.rollout import plan_episodes, run_rollouts
from embodia.eval.run import evaluate
from embodia.eval.suites import MetaWorldTasks, resolve_suite
from embodia.sim.vector import VectorRunner


def test_metaworld_smoke(tmp_path, hold_policy):
    policy = hold_policy(chunk_size=4, n_action_steps=2, embodiment="sawyer", action_dim=4)
    res = evaluate(
        policy, "metaworld:reach", episodes=1, num_envs=1, videos_per_task=1, out_dir=tmp_path,
        image_size=32, max_steps=10, show_progress=False,  # subprocess: MetaWorldTasks must pickle
    )  # fmt: skip
    (ep,) = res.episodes
    assert (ep.task, ep.group, ep.steps, ep.chunks, ep.success) == ("reach-v3", "easy", 10, 5, False)
    assert ep.instruction == "reach the goal position"
    assert ep.video is not None and ep.video.name == f"reach-v3_seed{ep.seed}.mp4"
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["groups"]) == {"easy"} and data["split"] is None and data["kind"] == "metaworld"


def test_multi_embodiment_policy_is_evaluated_as_the_suites(tmp_path, hold_policy):
    # A cross-embodiment checkpoint whose default is the SO-101 still runs Meta-World as the Sawyer.
    policy = hold_policy(chunk_size=2, n_action_steps=2, embodiment="so101", action_dim=4)
    policy.embodiments = {"so101": None, "sawyer": None}
    seen = []
    predict = policy.predict_chunk
    policy.predict_chunk = lambda obs: (seen.append(policy.embodiment), predict(obs))[1]
    res = evaluate(
        policy, "metaworld:reach", episodes=1, num_envs=1, videos_per_task=0, out_dir=tmp_path,
        image_size=32, max_steps=2, in_process=True, show_progress=False,
    )  # fmt: skip
    assert seen == ["sawyer"] and policy.embodiment == "so101"  # restored afterwards
    assert json.loads(res.results_path.read_text())["embodiment"] == "sawyer"


def test_metaworld_groups_are_difficulties():
    suite = resolve_suite("metaworld:reach,assembly,shelf-place")
    assert [(t.name, t.group) for t in suite.tasks] == [
        ("reach-v3", "easy"),
        ("assembly-v3", "hard"),
        ("shelf-place-v3", "very_hard"),
    ]
    assert suite.groups == ["easy", "hard", "very_hard"]
    assert suite.camera_key == "observation.images.corner2" and suite.fps == 80
    assert len(resolve_suite("metaworld:mt10").tasks) == 10
    with pytest.raises(ValueError, match="unknown Meta-World task"):
        resolve_suite("metaworld:juggle")


class _MetaWorldExpert:
    chunk_size, n_action_steps, embodiment, checkpoint_hash = 1, 1, "sawyer", "expert"

    def __init__(self):
        self.envs: list[MetaWorldTasks] = []

    def make_env(self):
        env = MetaWorldTasks("reach", image_size=32)
        self.envs.append(env)
        return env

    def predict_chunk(self, observations):
        (env,) = self.envs
        assert observations[0]["task"] == env.instruction  # the switched task's instruction
        return env.expert_action()[None, None]

    def reset(self):
        pass


def test_one_worker_switches_between_tasks():
    policy = _MetaWorldExpert()
    suite = resolve_suite("metaworld:reach,drawer-close")
    plan = plan_episodes(suite, episodes=1, videos_per_task=0)
    with VectorRunner([policy.make_env], in_process=True) as runner:
        results = run_rollouts(policy, runner, plan, camera_key=suite.camera_key, fps=suite.fps)
        assert runner.get_attr("task_name") == ["drawer-close-v3"]
    assert [(r.task, r.success) for r in results] == [("reach-v3", True), ("drawer-close-v3", True)]
