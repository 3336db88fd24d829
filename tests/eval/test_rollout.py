"""Closed-loop rollouts on the tabletop: chunk batching and re-planning, bookkeeping, seeds, outputs."""

from __future__ import annotations

import json
import math

import av
import numpy as np
import pytest

from embodia.eval.rollout import EVAL_SEED_BASE, plan_episodes, run_rollouts
from embodia.eval.run import evaluate
from embodia.eval.suites import resolve_suite
from embodia.policy.executor import TemporalEnsemble
from embodia.sim.tabletop import TabletopEnv
from embodia.sim.tasks import FAMILIES, parse_instruction
from embodia.sim.vector import VectorRunner

SMALL = {"image_size": 32, "show_progress": False}


def test_hold_still_policy_end_to_end(tmp_path, hold_policy):
    policy = hold_policy(chunk_size=8, n_action_steps=4)
    res = evaluate(
        policy, "pick,touch", episodes=2, num_envs=2, replan_every=3, videos_per_task=1,
        out_dir=tmp_path, max_steps=20, in_process=True, **SMALL,
    )  # fmt: skip
    # Re-planning every 3 actions over 20 steps: ceil(20 / 3) = 7 chunks per episode, and the two envs
    # run in phase, so every call is a batch of 2.
    assert policy.resets == 1
    assert policy.calls == [2] * 14
    assert [e.chunks for e in res.episodes] == [math.ceil(20 / 3)] * 4
    assert [(e.index, e.task, e.group, e.seed) for e in res.episodes] == [
        (0, "pick", "pick", EVAL_SEED_BASE),
        (1, "pick", "pick", EVAL_SEED_BASE + 1),
        (2, "touch", "touch", EVAL_SEED_BASE),
        (3, "touch", "touch", EVAL_SEED_BASE + 1),
    ]
    assert all(e.steps == 20 and not e.success for e in res.episodes)  # the arm never moved
    for e in res.episodes:
        assert parse_instruction(e.instruction).family == e.task
    assert res.overall.successes == 0 and res.overall.n == 4

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema"] == "embodia.eval/1"
    assert data["suite"] == "pick,touch" and data["split"] == "train" and data["replan_every"] == 3
    assert data["checkpoint_hash"] == "0" * 64 and data["seed_base"] == EVAL_SEED_BASE
    assert set(data["tasks"]) == set(data["groups"]) == {"pick", "touch"}
    assert data["tasks"]["pick"] == {
        "successes": 0, "n": 2, "success_rate": 0.0, "ci95": [0.0, pytest.approx(0.6576, abs=1e-4)],
        "group": "pick",
    }  # fmt: skip
    assert data["overall"]["n"] == 4 and data["mean_task_success_rate"] == 0.0
    # Success per instruction template: every episode counted once, under its family's train templates.
    templates = data["templates"]
    assert sum(r["n"] for r in templates.values()) == 4
    assert all(
        name.startswith(("pick (train): ", "touch (train): ")) and "{color}" in name for name in templates
    )
    assert set(data["episodes"][0]) == {
        "index", "task", "group", "instruction", "seed", "success", "steps", "chunks", "video", "stages",
        "failure", "measures",
    }  # fmt: skip
    # The arm held still, so every episode stopped before reaching its block, and the env says so.
    assert [(e["stages"], e["failure"]) for e in data["episodes"]] == [([], "never reached")] * 4
    assert data["failures"] == {"pick": {"never reached": 2}, "touch": {"never reached": 2}}
    # Nothing to measure: the jaw never closed near a block (pick), touch has no measure.
    assert [e["measures"] for e in data["episodes"]] == [{}] * 4 and data["measures"] == {}
    assert data["provenance"]["versions"]["mujoco"] == "3.3.0" and "git_sha" in data["provenance"]
    assert json.loads((tmp_path / "manifest.json").read_text())["command"] == "eval"

    # One video per task (the first episode), decodable, one frame per step plus the first observation.
    videos = [e["video"] for e in data["episodes"]]
    assert videos == [
        f"videos/pick_seed{EVAL_SEED_BASE}.mp4",
        None,
        f"videos/touch_seed{EVAL_SEED_BASE}.mp4",
        None,
    ]
    with av.open(str(tmp_path / videos[0])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 21 and frames[0].shape == (32, 32, 3) and frames[0].std() > 3

    html = (tmp_path / "report.html").read_text()
    assert "<table>" in html and "<td>touch</td>" in html and "data:image/png;base64," in html
    assert f'src="{videos[0]}"' in html and "0.0% – 65.8%" in html
    assert "Why episodes failed" in html and "<td>never reached 2</td>" in html


def test_subprocess_envs_reuse_workers_for_uneven_plans(tmp_path, hold_policy):
    # 3 episodes on 2 worker processes: the env that finishes first takes the third episode.
    policy = hold_policy(chunk_size=4, n_action_steps=4)
    res = evaluate(
        policy, "push", episodes=3, num_envs=2, videos_per_task=0, out_dir=tmp_path, max_steps=6, **SMALL
    )
    assert [(e.seed, e.steps, e.chunks, e.success) for e in res.episodes] == [
        (EVAL_SEED_BASE + j, 6, 2, False) for j in range(3)
    ]
    # Episodes 0 and 1 share their calls (batch 2); episode 2 runs alone (batch 1).
    assert policy.calls == [2, 2, 1, 1]
    assert not (tmp_path / "videos").exists() and res.videos == []


def test_heldout_split_and_reproducible_seeds(tmp_path, hold_policy):
    runs = [
        evaluate(
            hold_policy(),
            "place,stack",
            episodes=3,
            num_envs=2,
            split="heldout",
            videos_per_task=0,
            out_dir=tmp_path / str(k),
            max_steps=1,
            seed=5,
            in_process=True,
            **SMALL,
        )  # fmt: skip
        for k in range(2)
    ]
    instructions = [[(e.seed, e.instruction) for e in r.episodes] for r in runs]
    assert instructions[0] == instructions[1]
    assert {s for s, _ in instructions[0]} == {EVAL_SEED_BASE + 5 + j for j in range(3)}
    for e in runs[0].episodes:
        assert parse_instruction(e.instruction).split == "heldout"


class _ExpertPolicy:
    """Asks the (in-process) env's scripted expert: proves success is detected and counted."""

    chunk_size = 4
    n_action_steps = 1
    embodiment = "so101"
    checkpoint_hash = "expert"

    def __init__(self):
        self.envs: list[TabletopEnv] = []

    def make_env(self) -> TabletopEnv:
        env = TabletopEnv(image_size=32, cameras=("front",))
        self.envs.append(env)
        return env

    def predict_chunk(self, observations):
        (env,) = self.envs  # one env: the observation can only be its
        assert observations[0]["task"] == env.instruction
        return np.repeat(env.expert_action()[None, None], self.chunk_size, axis=1).astype(np.float32)

    def reset(self):
        pass


def test_expert_policy_succeeds_and_episode_ends_on_success(tmp_path):
    policy = _ExpertPolicy()
    suite = resolve_suite("touch")
    plan = plan_episodes(suite, episodes=2, videos_per_task=1)
    with VectorRunner([policy.make_env], in_process=True) as runner:
        results = run_rollouts(
            policy, runner, plan, camera_key=suite.camera_key, fps=suite.fps, video_dir=tmp_path
        )
    assert [r.success for r in results] == [True, True]
    assert [(r.stages, r.failure) for r in results] == [(("reached",), None)] * 2
    limit = FAMILIES["touch"].max_steps
    assert all(0 < r.steps < limit and r.chunks == r.steps for r in results)  # replans every step
    assert results[0].video is not None and results[0].video.stat().st_size > 0


class _BadShape:
    chunk_size, n_action_steps, embodiment, checkpoint_hash = 4, 2, "so101", ""

    def predict_chunk(self, observations):
        return np.zeros((len(observations), 4, 4), np.float32)  # 4-D actions for a 6-D arm

    def reset(self):
        pass


def test_errors_are_clear(tmp_path, hold_policy):
    kw = {"out_dir": tmp_path, "episodes": 1, "in_process": True, "max_steps": 2, **SMALL}
    with pytest.raises(ValueError, match=r"action_dim=6.*got shape \(1, 4, 4\)"):
        evaluate(_BadShape(), "touch", **kw)
    with pytest.raises(ValueError, match=r"replan_every .* 1..chunk_size \(8\), got 9"):
        evaluate(hold_policy(chunk_size=8), "touch", replan_every=9, **kw)
    with pytest.raises(ValueError, match="embodiment 'sawyer'"):
        evaluate(hold_policy(embodiment="sawyer", action_dim=4), "touch", **kw)
    with pytest.raises(ValueError, match="valid: 'tabletop'"):
        evaluate(hold_policy(), "juggle", **kw)
    with pytest.raises(ValueError, match="Meta-World has one instruction per task"):
        evaluate(hold_policy(embodiment="sawyer", action_dim=4), "metaworld:reach", split="heldout", **kw)
    with pytest.raises(TypeError, match="not a ChunkPolicy"):
        evaluate(object(), "touch", **kw)


class _GuidablePolicy:
    """Holds still like HoldPolicy, but takes real-time-chunking guidance and records it: each chunk's
    first state dimension is offset by a call counter so the test can tell chunks apart."""

    chunk_size, n_action_steps, embodiment, checkpoint_hash = 8, 4, "so101", "0" * 64

    def __init__(self):
        self.chunks: list[np.ndarray] = []
        self.pending: list[np.ndarray | None] = []

    def predict_chunk(self, observations, pending=None, delay=0):
        assert delay == 0
        self.pending.append(None if pending is None else np.array(pending))
        out = np.stack([np.repeat(o["observation.state"][None], 8, 0) for o in observations]).astype(
            np.float32
        )
        out[:, :, 0] += 1e-4 * len(self.chunks) * np.arange(8)  # tiny: the arm barely moves
        self.chunks.append(out)
        return out

    def reset(self):
        pass


def test_guided_replanning_passes_the_rest_of_the_previous_chunk(tmp_path):
    policy = _GuidablePolicy()
    res = evaluate(
        policy, "touch", episodes=1, num_envs=1, replan_every=3, join="guided", videos_per_task=0,
        out_dir=tmp_path, max_steps=9, in_process=True, **SMALL,
    )  # fmt: skip
    assert res.episodes[0].chunks == 3  # ceil(9 / 3)
    assert policy.pending[0] is None  # the first chunk of an episode plans freely
    for call in (1, 2):  # later ones are guided by the 5 actions the previous chunk did not execute
        np.testing.assert_array_equal(policy.pending[call], policy.chunks[call - 1][:, 3:])
    assert json.loads((tmp_path / "results.json").read_text())["join"] == "guided"


def test_guided_replanning_needs_room_and_a_guidable_policy(hold_policy):
    with pytest.raises(ValueError, match="execute fewer than the chunk's 8"):
        evaluate(_GuidablePolicy(), "touch", episodes=1, replan_every=8, join="guided", **SMALL)
    with pytest.raises(TypeError, match="cannot be guided"):
        evaluate(hold_policy(chunk_size=8), "touch", episodes=1, replan_every=4, join="guided", **SMALL)


class _SeedPolicy(_GuidablePolicy):
    """Holds still, and records the noise seed of every row it is asked for, by episode (its seed
    is in the observation's scene: the state differs per episode, so key by the task text and call)."""

    def __init__(self):
        super().__init__()
        self.seeds: list[list[int]] = []

    def predict_chunk(self, observations, pending=None, delay=0, noise_seed=None):
        self.seeds.append(list(noise_seed))
        return super().predict_chunk(observations, pending, delay)


def test_each_episode_draws_its_own_noise_whatever_the_batching(tmp_path):
    """Noise seeds come from (episode seed, chunk index): the same with 1 or 2 envs, in any order,
    and different between episodes and chunks."""
    from embodia.policy.executor import noise_seed

    per_run = []
    for num_envs in (1, 2):
        policy = _SeedPolicy()
        res = evaluate(
            policy, "touch", episodes=3, num_envs=num_envs, videos_per_task=0, out_dir=tmp_path / str(num_envs),
            max_steps=8, in_process=True, **SMALL,
        )  # fmt: skip
        asked = sorted(s for call in policy.seeds for s in call)
        expected = sorted(noise_seed(e.seed, c) for e in res.episodes for c in range(e.chunks))
        assert asked == expected and len(set(asked)) == len(asked) == 6  # 3 episodes x 2 chunks
        per_run.append(asked)
    assert per_run[0] == per_run[1]
    assert max(len(call) for call in policy.seeds) == 2  # the 2-env run did batch


def test_temporal_ensemble_averages_what_each_chunk_predicted_for_the_step():
    chunks = [np.arange(4, dtype=np.float32)[:, None] + 10 * n for n in range(6)]  # chunk n: 10n, 10n+1, ...
    ens = TemporalEnsemble(0.0)
    # Step t is covered by chunks max(0, t - 3)..t, chunk n predicting 10n + (t - n) for it.
    for t, chunk in enumerate(chunks):
        expected = np.mean([10 * n + (t - n) for n in range(max(0, t - 3), t + 1)])
        assert ens.add(chunk)[0] == pytest.approx(expected)
    weighted = TemporalEnsemble(1.0)
    weighted.add(np.zeros((4, 1)))
    # Two chunks cover step 1: the older (weight 1) says 0, the newer (weight e^-1) says 1.
    assert weighted.add(np.ones((4, 1)))[0] == pytest.approx(np.exp(-1) / (1 + np.exp(-1)))
    with pytest.raises(ValueError, match=">= 0"):
        TemporalEnsemble(-0.5)


def test_ensembled_evaluation_replans_every_step_and_executes_the_mean(tmp_path):
    policy = _GuidablePolicy()
    res = evaluate(
        policy, "touch", episodes=1, num_envs=1, ensemble=0.0, videos_per_task=0,
        out_dir=tmp_path, max_steps=5, in_process=True, **SMALL,
    )  # fmt: skip
    assert res.episodes[0].chunks == 5 and policy.pending == [None] * 5  # every step, unguided
    data = json.loads((tmp_path / "results.json").read_text())
    assert (data["ensemble"], data["replan_every"]) == (0.0, 1)
    with pytest.raises(ValueError, match="replan_every 1"):
        evaluate(policy, "touch", episodes=1, ensemble=0.01, replan_every=4, **SMALL)
    with pytest.raises(ValueError, match="takes no join"):
        evaluate(policy, "touch", episodes=1, ensemble=0.01, replan_every=1, join="guided", **SMALL)
