"""Free-text instructions map to the catalogue task they mean; one-episode runner mechanics."""

import numpy as np
import pytest

from embodia.eval.episode import run_episode
from embodia.eval.scope import all_tasks, interpret
from embodia.policy.language import InstructionEncoder
from embodia.policy.policy import Policy
from embodia.sim.tabletop import TabletopEnv


@pytest.fixture(scope="module")
def encoder():
    return InstructionEncoder()


def test_catalogue_covers_every_family_and_split():
    tasks = all_tasks()
    assert {t.family for t in tasks} == {"pick", "place", "push", "stack", "touch"}
    assert {t.split for t in tasks} == {"train", "heldout"}
    assert len({t.instruction for t in tasks}) == len(tasks)


@pytest.mark.parametrize(
    ("text", "family", "color"),
    [
        ("pick up the red block", "pick", "red"),  # an exact template
        ("could you lift the blue block", "pick", "blue"),
        ("grab the red cube", "pick", "red"),
        ("poke the blue block", "touch", "blue"),
        ("drop the red block into the bowl", "place", "red"),
    ],
)
def test_interpret_paraphrases(encoder, text, family, color):
    task, score = interpret(text, encoder)
    assert (task.family, task.color) == (family, color)
    assert 0.5 < score <= 1.0


def test_run_episode_feeds_the_users_words_and_stops_at_the_limit(tiny_policy_dir):
    policy = Policy.from_pretrained(tiny_policy_dir)
    seen = []
    original = policy.predict_chunk

    def spy(observations, **kw):
        seen.extend(o["task"] for o in observations)
        return original(observations, **kw)

    policy.predict_chunk = spy
    env = TabletopEnv(image_size=64)
    try:
        ep = run_episode(
            policy, env, seed=3, task="touch the green block", instruction="poke green", max_steps=9
        )
    finally:
        env.close()
    assert ep.steps == 9 and ep.chunks == 3  # n_action_steps 4 -> chunks at steps 0, 4, 8
    assert set(seen) == {"poke green"} and ep.task.family == "touch"
    assert len(ep.frames) == 10 and ep.frames[0].shape == (64, 128, 3)


def test_the_same_seed_replays_the_same_episode(tiny_policy_dir):
    policy = Policy.from_pretrained(tiny_policy_dir)
    env = TabletopEnv(image_size=64)
    try:
        runs = []
        for _ in range(2):
            ep = run_episode(policy, env, seed=3, task="touch the green block", max_steps=6)
            runs.append(ep.frames[-1])
    finally:
        env.close()
    # A tiny untrained flow policy: the arm's last pose depends on the noise it drew.
    np.testing.assert_array_equal(runs[0], runs[1])
