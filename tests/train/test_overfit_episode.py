"""The issue's overfit sanity check, end to end: a tiny flow-matching VLA trained through the real training
path on one recorded episode reproduces that episode's actions (every chunk of it, open loop, with a fixed
noise seed) to a normalised MAE under 0.05, where 1.0 is half the action's q01..q99 range."""

from pathlib import Path

from embodia.data.reader import LeRobotDataset
from embodia.policy.policy import Policy
from embodia.train.doctor import open_loop_replay, train_on_one_episode

TINY_DATASET = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"


def test_tiny_flow_model_reproduces_the_one_episode_it_was_trained_on(tmp_path):
    one, run = train_on_one_episode(TINY_DATASET, tmp_path, steps=400, seed=0, head="flow")
    policy = Policy.from_pretrained(run)
    assert policy.cfg.head == "flow"
    replay = open_loop_replay(policy, one, episodes=[0], every=1, seed=0)
    n = LeRobotDataset.open(one).episodes[0]["length"]
    assert replay["chunks"] == n - policy.chunk_size  # every chunk start of the episode
    print(f"one-episode overfit: normalised action MAE {replay['mae']:.4f} over {replay['chunks']} chunks")
    assert replay["mae"] < 0.05
